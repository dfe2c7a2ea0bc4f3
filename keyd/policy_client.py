"""keyd's side of the policy worker: spawn, supervise, and talk to the sandboxed rules engine.

The worker is untrusted: every frame it sends is validated (sandbox.policy_protocol), a
violation gets it killed, and a worker that dies, hangs past its deadline or misbehaves is
replaced. No caller ever hangs on it: a rule call that cannot complete returns None, which
sends the request to the UI (manual), as the reference does for any rule failure.

Rule evaluations and notifications go to the worker one at a time and alone (nothing else is
in flight meanwhile), so their order is the order of the calls and storage access is tied to
them. validate_tx requests (no storage, no order) are pipelined: several may be in flight, and
the worker, which is synchronous, answers them in the order sent. Each request's deadline
starts when the worker starts on it (when the answer before it arrived), so it still measures
the worker's own time, not the queue's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeVar

import trio

from clef.errors import ProtocolViolation
from policy.rules import RuleStorageLike, load_bignumber_js
from sandbox.frames import FrameChannel
from sandbox.policy_protocol import (
    Init,
    Learn,
    Log,
    Notify,
    NotifyDone,
    Ready,
    Rule,
    RuleResult,
    StorageAck,
    StorageGet,
    StoragePut,
    StorageValue,
    ValidateResult,
    ValidateTx,
    parse_from_worker,
)
from sandbox.spawn import WorkerProcess, spawn_worker

log = logging.getLogger("clef.rules")
worker_log = logging.getLogger("clef.policy.worker")

DEADLINE_GRACE: Final = 2.0
STARTUP_TIMEOUT: Final = 30.0
RESTART_BACKOFF: Final = (0.05, 0.2, 1.0, 5.0)
MAX_STDERR_LINE: Final = 2048
WORKER_UNAVAILABLE: Final = "policy worker unavailable"

_R = TypeVar("_R", RuleResult, NotifyDone, ValidateResult)


class _WorkerGone(Exception):
    """The worker died, was killed, or missed its deadline while a call was in flight."""


class _Pending:
    """One request in flight: the reply type keyd expects and where the reply goes."""

    __slots__ = ("kind", "send")

    def __init__(self, kind: type[Any], send: trio.MemorySendChannel[Any]) -> None:
        self.kind = kind
        self.send = send


class _Generation:
    """One worker process and the state of its conversation with keyd."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.channel = FrameChannel(
            trio.SocketStream(trio.socket.from_stdlib_socket(process.sock)))
        self.ready = trio.Event()
        self.dead = trio.Event()
        self.settled = trio.Event()  # ready or dead, whichever comes first
        # Requests in flight, in the order sent (= the order the worker answers them).
        self.waiting: dict[int, _Pending] = {}
        self.in_call = False  # a rule/notify call (the only one in flight) is being evaluated
        self.deadline = math.inf  # when the request at the head of `waiting` must be answered
        self.missed_deadline = False
        self.watchdog: trio.CancelScope | None = None

    def kill(self, reason: str) -> None:
        if not self.dead.is_set():
            log.warning("policy worker %d stopped: %s", self.process.pid, reason)
        self.process.kill()
        self.dead.set()
        self.settled.set()
        # Everyone waiting learns at once (EndOfChannel), not at their deadline.
        for pending in self.waiting.values():
            pending.send.close()
        self.waiting.clear()

    def set_deadline(self, deadline: float) -> None:
        self.deadline = deadline
        if self.watchdog is not None:
            self.watchdog.deadline = deadline


class PolicyClient:
    """Supervises the policy worker and offers rule(), notify() and validate_tx() to keyd.

    storage (keyd.vault.RuleStorage in production) answers the worker's storage requests; its
    methods run in a trio worker thread, one call at a time, so they may block on disk I/O but
    must be safe to call from a thread other than keyd's event loop.
    """

    def __init__(
        self,
        *,
        ruleset: str | None,
        storage: RuleStorageLike,
        timeout: float = 1.0,
        bignumber_js: str | None = None,
        spawn: Callable[[], WorkerProcess] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self._init = Init(ruleset=ruleset,
                          bignumber=bignumber_js if bignumber_js is not None
                          else load_bignumber_js(),
                          timeout=timeout)
        self._storage = storage
        self._spawn = spawn or (lambda: spawn_worker("policy", "policy.worker"))
        self._startup_timeout = startup_timeout
        self._ids = itertools.count(1)
        # Held for the whole of a rule/notify call; validate_tx only passes through it.
        self._lock = trio.Lock()
        self._shared = 0
        self._drained = trio.Event()
        self._drained.set()
        self._current: _Generation | None = None
        self._changed = trio.Event()
        self._closed = False
        self._failing = False
        self.restarts = 0

    @property
    def has_rules(self) -> bool:
        """Whether a ruleset is active (without one every rule() is None)."""
        return self._init.ruleset is not None

    @property
    def pid(self) -> int | None:
        """The running worker's pid (None while none is up)."""
        current = self._current
        if current is None or current.dead.is_set():
            return None
        return current.process.pid

    @property
    def deadline(self) -> float:
        """How long keyd waits for one answer before it kills the worker."""
        return self._init.timeout + DEADLINE_GRACE

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a worker running until cancelled.

        started() is signalled once the first worker is ready, or after it failed to start (rule
        calls then return None until a replacement is up), so keyd never blocks on a bad worker.
        """
        started = False
        failures = 0

        def on_ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        try:
            while True:
                generation = await self._run_generation(on_ready)
                if generation is not None and generation.ready.is_set():
                    failures = 0
                else:
                    # Until a replacement is ready, calls fail at once (-> manual) instead of
                    # each waiting out a startup that keeps failing.
                    failures += 1
                    self._failing = True
                    self._notify_changed()
                    on_ready()
                self.restarts += 1
                await trio.sleep(RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)])
        finally:
            self._closed = True
            self._notify_changed()

    async def rule(self, fn: str, request: Any) -> str | None:
        """Run an approval function: "Approve"/"Reject", or None (manual) on anything else."""
        if not self.has_rules:
            return None
        try:
            reply = await self._call(lambda i: Rule(id=i, fn=fn, request=request), RuleResult,
                                     exclusive=True)
        except (_WorkerGone, ProtocolViolation) as exc:
            log.warning("Rule-based approval error, going to manual: %s", exc)
            return None
        if reply.error is not None:
            log.warning("Rule-based approval error, going to manual: %s", reply.error)
        return reply.decision

    async def notify(self, fn: str, request: Any) -> bool:
        """Deliver OnSignerStartup/OnApprovedTx; True if the rule ran to completion.

        If the worker dies before answering, the notification is delivered once more to its
        replacement, so a rate-limit rule does not silently miss a signed transaction (a
        double record only makes such a rule stricter). False means it was not recorded.
        """
        if not self.has_rules:
            return True
        for attempt in range(2):
            try:
                reply = await self._call(lambda i: Notify(id=i, fn=fn, request=request),
                                         NotifyDone, exclusive=True)
            except _WorkerGone as exc:
                log.warning("%s not delivered (attempt %d): %s", fn, attempt + 1, exc)
                continue
            except ProtocolViolation as exc:
                log.warning("%s not delivered: %s", fn, exc)
                return False
            if reply.error is not None:
                log.warning("%s failed: %s", fn, reply.error)
                return False
            return True
        return False

    async def validate_tx(self, tx: dict[str, Any], selector: str | None,
                          chain_id: int | None) -> ValidateResult:
        """call_info messages for a transaction; error set when validation was impossible."""
        try:
            return await self._call(
                lambda i: ValidateTx(id=i, tx=tx, selector=selector, chain_id=chain_id),
                ValidateResult, exclusive=False)
        except (_WorkerGone, ProtocolViolation) as exc:
            log.warning("transaction validation unavailable: %s", exc)
            return ValidateResult(id=0, messages=(), error=WORKER_UNAVAILABLE)

    async def learn(self, selector: str, signature: str) -> None:
        """Tell the running worker about a selector keyd recorded (best effort, no reply: a
        worker started later reads the custom file itself)."""
        current = self._current
        if current is None or current.dead.is_set() or not current.ready.is_set():
            return
        try:
            await current.channel.send(Learn(selector=selector, signature=signature).to_wire())
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            current.kill("could not send to the worker")

    # ---- internals ---------------------------------------------------------------------

    async def _ready_generation(self) -> _Generation:
        with trio.move_on_after(self._startup_timeout):
            while True:
                current = self._current
                if self._closed:
                    raise _WorkerGone("policy client is closed")
                if current is not None and not current.dead.is_set():
                    # Only when idle: with calls in flight a death is seen through the channel
                    # (and poll() is a waitpid system call on every request otherwise).
                    if not current.waiting and current.process.proc.poll() is not None:
                        # Died while idle and keyd has not read the EOF yet: do not hand it a
                        # request that would be lost; wait for the replacement instead.
                        current.kill("it exited")
                    elif current.ready.is_set():
                        return current
                if self._failing:
                    raise _WorkerGone("the policy worker is failing to start")
                await self._changed.wait()
        raise _WorkerGone("no policy worker became ready in time")

    async def _call(self, build: Callable[[int], Any], kind: type[_R], *, exclusive: bool) -> _R:
        if not exclusive:
            if self._lock.locked():
                async with self._lock:  # wait while a rule/notify call is in flight
                    pass
            self._shared += 1
            self._drained = trio.Event() if self._drained.is_set() else self._drained
            try:
                return await self._exchange(build, kind, exclusive=False)
            finally:
                self._shared -= 1
                if self._shared == 0:
                    self._drained.set()
        async with self._lock:
            await self._drained.wait()
            return await self._exchange(build, kind, exclusive=True)

    async def _exchange(self, build: Callable[[int], Any], kind: type[_R], *,
                        exclusive: bool) -> _R:
        generation = await self._ready_generation()
        message = build(next(self._ids))
        send, receive = trio.open_memory_channel[_R](1)
        if not generation.waiting:
            generation.set_deadline(trio.current_time() + self.deadline)
        generation.waiting[message.id] = _Pending(kind, send)
        generation.in_call = exclusive
        try:
            try:
                await generation.channel.send(message.to_wire())
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                generation.kill("could not send to the worker")
                raise _WorkerGone("the policy worker is gone") from None
            try:
                return await receive.receive()
            except trio.EndOfChannel:
                if generation.missed_deadline:
                    raise _WorkerGone("the policy worker missed its deadline") from None
                raise _WorkerGone("the policy worker died during the call") from None
        finally:
            # A caller that gives up (cancelled) leaves its entry: the worker will still answer
            # it, in order, and that answer is then dropped rather than taken as unsolicited.
            receive.close()
            if exclusive:
                generation.in_call = False

    async def _watchdog(self, generation: _Generation) -> None:
        """Kill the worker when the request it is working on is not answered in time."""
        while True:
            with trio.CancelScope(deadline=generation.deadline) as scope:
                generation.watchdog = scope
                await trio.sleep_forever()
            generation.watchdog = None
            if not generation.waiting:
                generation.deadline = math.inf
            elif trio.current_time() >= generation.deadline:
                # A runaway the worker's own SIGALRM did not stop: kill and replace it.
                generation.missed_deadline = True
                generation.kill(f"no answer within {self.deadline:g}s")
                return

    async def _run_generation(self, on_ready: Callable[[], None]) -> _Generation | None:
        """Spawn a worker, initialise it and serve it until it dies; return it afterwards."""
        try:
            process = await trio.to_thread.run_sync(self._spawn)
        except OSError:
            log.exception("could not start the policy worker")
            return None
        generation = _Generation(process)
        self._current = generation
        self._notify_changed()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._drain_stderr, generation)
                nursery.start_soon(self._reader, generation)
                nursery.start_soon(self._watchdog, generation)
                await generation.channel.send(self._init.to_wire())
                with trio.move_on_after(self._startup_timeout):
                    await generation.settled.wait()
                if not generation.ready.is_set() or generation.dead.is_set():
                    generation.kill("it did not become ready")
                else:
                    self._failing = False
                    on_ready()
                await generation.dead.wait()
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            generation.kill(f"channel error: {exc}")
        finally:
            for pending in generation.waiting.values():
                pending.send.close()
            generation.waiting.clear()
            self._notify_changed()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(process.close)
            status = process.proc.returncode
            if status not in (None, 0, -9):
                log.warning("policy worker %d exited with status %s", process.pid, status)
        return generation

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _reader(self, generation: _Generation) -> None:
        try:
            while True:
                try:
                    raw = await generation.channel.receive()
                except RecursionError:
                    raise ProtocolViolation("frame nested too deeply") from None
                if raw is None:
                    generation.kill("it closed the channel")
                    return
                await self._dispatch(generation, parse_from_worker(raw))
        except ProtocolViolation as exc:
            generation.kill(f"protocol violation: {exc}")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            generation.kill(f"channel error: {exc}")

    async def _dispatch(self, generation: _Generation, message: Any) -> None:
        if isinstance(message, Ready):
            if generation.ready.is_set():
                raise ProtocolViolation("ready sent twice")
            generation.ready.set()
            generation.settled.set()
            self._notify_changed()
        elif isinstance(message, Log):
            level = {"info": logging.INFO, "warning": logging.WARNING}.get(message.level,
                                                                          logging.ERROR)
            log.log(level, "%s", message.msg)
        elif isinstance(message, StorageGet | StoragePut):
            # Storage access is legal only while one of keyd's calls is being evaluated.
            if not generation.ready.is_set() or not generation.in_call:
                raise ProtocolViolation("storage access outside a rule call")
            await generation.channel.send(await self._storage_reply(message))
        else:
            # The worker answers in the order it was asked: only the oldest request may be
            # answered now. Anything else is unsolicited, a duplicate or out of order.
            head = next(iter(generation.waiting), None)
            pending = generation.waiting.get(message.id) if message.id == head else None
            if pending is None or not isinstance(message, pending.kind):
                raise ProtocolViolation(f"unsolicited {type(message).__name__}")
            del generation.waiting[message.id]
            generation.set_deadline(trio.current_time() + self.deadline if generation.waiting
                                    else math.inf)
            with contextlib.suppress(trio.BrokenResourceError):  # its caller gave up
                pending.send.send_nowait(message)

    async def _storage_reply(self, message: StorageGet | StoragePut) -> dict[str, Any]:
        try:
            if isinstance(message, StorageGet):
                value = await trio.to_thread.run_sync(self._storage.get, message.key)
                return StorageValue(id=message.id, value=value, error=None).to_wire()
            await trio.to_thread.run_sync(self._storage.put, message.key, message.value)
            return StorageAck(id=message.id, ok=True, error=None).to_wire()
        except Exception as exc:  # noqa: BLE001
            # Any storage failure fails the rule closed. The reason is logged here; the worker
            # only learns that storage is unusable.
            log.error("rule storage failure (%s): %s",
                      type(message).__name__, exc)
            reason = f"rule storage unavailable: {type(exc).__name__}"
            if isinstance(message, StorageGet):
                return StorageValue(id=message.id, value=None, error=reason).to_wire()
            return StorageAck(id=message.id, ok=False, error=reason).to_wire()

    async def _drain_stderr(self, generation: _Generation) -> None:
        stream = trio.lowlevel.FdStream(os.dup(generation.process.log_fd))
        buffer = b""
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
                if not data:
                    if buffer:
                        worker_log.warning("%s", buffer[:MAX_STDERR_LINE].decode("utf-8",
                                                                                  "replace"))
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    worker_log.warning("%s", line[:MAX_STDERR_LINE].decode("utf-8", "replace"))
                if len(buffer) > MAX_STDERR_LINE:
                    worker_log.warning("%s", buffer[:MAX_STDERR_LINE].decode("utf-8", "replace"))
                    buffer = b""


@contextlib.asynccontextmanager
async def open_policy_client(**kwargs: Any) -> AsyncIterator[PolicyClient]:
    """Run a PolicyClient in a nursery for the duration of the block (kwargs as PolicyClient)."""
    client = PolicyClient(**kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
