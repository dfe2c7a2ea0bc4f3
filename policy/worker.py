"""Entry point of the policy worker: `python -I -m policy.worker --fd N`.

Started by keyd with fork+exec (sandbox.spawn). It reads the init frame (ruleset text,
bignumber.js, time bound), builds and self-tests the rules engine, sets its resource limits,
confines itself (no_new_privs + seccomp kill-process: no files, sockets, exec or threads) and
then serves keyd's frames one at a time, synchronously. During a rule call, JavaScript
`storage.get/put` become storage_get/storage_put frames to keyd and the worker blocks for the
answer; requests that arrive meanwhile are queued. Any malformed frame from keyd makes the
worker exit non-zero (keyd restarts it). It never holds a key, password or seed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import resource
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from clef.errors import ProtocolViolation, StorageTampered
from policy.fourbyte import CustomDB, FourByteDB, read_custom_db
from policy.rules import MemoryStorage, RuleError, RuleFunctionMissing, RulesEngine
from policy.txcheck import make_learner, make_validator
from sandbox.confine import enter_sandbox
from sandbox.frames import FrameDecoder, encode_frame
from sandbox.policy_protocol import (
    MAX_ERROR_CHARS,
    MAX_LOG_CHARS,
    VALIDATION_UNAVAILABLE,
    FromKeyd,
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
    parse_from_keyd,
)

MEMORY_LIMIT: Final = 1024 * 1024 * 1024
CPU_SOFT_LIMIT: Final = 600  # seconds of CPU over the worker's life; then it is recycled
CPU_HARD_GRACE: Final = 30
EXIT_VIOLATION: Final = 3
EXIT_RECYCLE: Final = 0

_READ_SIZE = 65536
_REQUESTS = (Rule, Notify, ValidateTx)

Validator = Callable[[ValidateTx], ValidateResult]
_R = TypeVar("_R", StorageValue, StorageAck)


def validation_unavailable(request: ValidateTx) -> ValidateResult:
    """The validate_tx handler until calldata validation is wired into the worker."""
    return ValidateResult(id=request.id, messages=(), error=VALIDATION_UNAVAILABLE)


class KeydLink:
    """Blocking frame I/O with keyd over the inherited socket, with a queue for early requests."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = FrameDecoder()
        self._raw: deque[dict[str, Any]] = deque()
        self._queued: deque[FromKeyd] = deque()

    def send(self, message: Any) -> None:
        """Send one typed message (anything with to_wire)."""
        self._sock.sendall(encode_frame(message.to_wire()))

    def _next_raw(self) -> dict[str, Any] | None:
        while not self._raw:
            data = self._sock.recv(_READ_SIZE)
            if not data:
                return None
            self._raw.extend(self._decoder.feed(data))
        return self._raw.popleft()

    def receive(self) -> FromKeyd | None:
        """The next request from keyd (queued ones first); None when keyd closed the socket."""
        if self._queued:
            return self._queued.popleft()
        raw = self._next_raw()
        return None if raw is None else parse_from_keyd(raw)

    def await_reply(self, kind: type[_R], request_id: int) -> _R:
        """Block for keyd's answer to one of our storage requests, queueing other requests."""
        while True:
            raw = self._next_raw()
            if raw is None:
                raise ProtocolViolation("keyd closed the channel during a storage call")
            message = parse_from_keyd(raw)
            if isinstance(message, _REQUESTS):
                self._queued.append(message)
                continue
            if isinstance(message, kind) and message.id == request_id:
                return message
            raise ProtocolViolation(f"unexpected {type(message).__name__} during a storage call")


class KeydStorage:
    """RuleStorageLike backed by keyd's encrypted store, one round trip per call."""

    def __init__(self, link: KeydLink) -> None:
        self._link = link
        self._ids = itertools.count(1)

    def get(self, key: str) -> str:
        """storage.get: keyd's value ("" when absent); raise StorageTampered on keyd's error."""
        request = StorageGet(id=next(self._ids), key=key)
        self._link.send(request)
        reply = self._link.await_reply(StorageValue, request.id)
        if reply.error is not None or reply.value is None:
            raise StorageTampered(reply.error or "no value")
        return reply.value

    def put(self, key: str, value: str) -> None:
        """storage.put ("" deletes); raise StorageTampered when keyd could not store it."""
        request = StoragePut(id=next(self._ids), key=key, value=value)
        self._link.send(request)
        reply = self._link.await_reply(StorageAck, request.id)
        if not reply.ok:
            raise StorageTampered(reply.error or "not stored")


def _clean(text: str, limit: int) -> str:
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PolicyWorker:
    """The worker's request loop: one frame at a time, replies in the same order."""

    def __init__(self, link: KeydLink, engine: RulesEngine | None,
                 validate: Validator = validation_unavailable,
                 learn: Callable[[Learn], None] | None = None) -> None:
        self.link = link
        self.engine = engine
        self.validate = validate
        self.learn = learn
        self.recycle = False

    def handle(self, message: FromKeyd) -> None:
        """Serve one request from keyd; anything else at this point is a violation."""
        if isinstance(message, Rule):
            self.link.send(self._rule(message))
        elif isinstance(message, Notify):
            self.link.send(self._notify(message))
        elif isinstance(message, ValidateTx):
            try:
                result = self.validate(message)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not kill the worker
                result = ValidateResult(id=message.id, messages=(),
                                        error=_clean(f"validation failed: {exc}", MAX_ERROR_CHARS))
            self.link.send(result)
        elif isinstance(message, Learn):
            if self.learn is not None:
                try:
                    self.learn(message)
                except ValueError as exc:  # refused by the custom DB (cap, unverifiable): no reply
                    self.link.send(Log(level="info", msg=_clean(f"selector not learnt: {exc}",
                                                                MAX_LOG_CHARS)))
        else:
            raise ProtocolViolation(f"unexpected {type(message).__name__} from keyd")

    def serve(self) -> int:
        """Serve until keyd closes the channel (0) or the CPU budget runs out (recycle)."""
        while not self.recycle:
            message = self.link.receive()
            if message is None:
                return 0
            self.handle(message)
        return EXIT_RECYCLE

    def _rule(self, message: Rule) -> RuleResult:
        if self.engine is None:
            return RuleResult(id=message.id, decision=None, error="no ruleset")
        try:
            evaluation = self.engine.evaluate(message.fn, message.request)
        except RuleError as exc:
            return RuleResult(id=message.id, decision=None,
                              error=_clean(str(exc), MAX_ERROR_CHARS))
        decision = evaluation.decision
        if decision == "Approve":
            return RuleResult(id=message.id, decision="Approve", error=None)
        if decision == "Reject":
            return RuleResult(id=message.id, decision="Reject", error=None)
        shown = evaluation.value[:200]  # the rule chose this string; it may be huge
        return RuleResult(id=message.id, decision=None,
                          error=_clean(f"rule returned {shown!r}", MAX_ERROR_CHARS))

    def _notify(self, message: Notify) -> NotifyDone:
        if self.engine is None:
            return NotifyDone(id=message.id, error=None)
        try:
            self.engine.evaluate(message.fn, message.request)
        except RuleFunctionMissing:
            return NotifyDone(id=message.id, error=None)
        except RuleError as exc:
            return NotifyDone(id=message.id, error=_clean(str(exc), MAX_ERROR_CHARS))
        return NotifyDone(id=message.id, error=None)


_WARM_UP_RULES = """
function WarmUp(r) {
  var d = new Date();
  return [d.toString(), d.getTimezoneOffset(), d.toLocaleString(), d.toISOString(), Date.now(),
          Math.random(), new BigNumber(r.v, 16).toString(10), JSON.stringify(r)].join('|');
}
"""


def _warm_up(bignumber: str, timeout: float) -> None:
    """Touch what lazily opens files (timezone data) while that is still allowed."""
    time.localtime()
    time.strftime("%c")
    engine = RulesEngine(_WARM_UP_RULES, bignumber, MemoryStorage(), lambda _line: None,
                         max(timeout, 5.0))
    engine.evaluate("WarmUp", {"v": "ff"})


def _set_limits(on_xcpu: Callable[[int, Any], None]) -> None:
    """Bound the worker's address space and lifetime CPU; fail closed if that is impossible."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + CPU_SOFT_LIMIT
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    new_hard = cpu + CPU_HARD_GRACE
    if cpu_hard != resource.RLIM_INFINITY:
        new_hard = min(new_hard, cpu_hard)
        cpu = min(cpu, new_hard)
    # SIGXCPU at the soft limit: finish the current call, then exit so keyd starts a fresh one;
    # SIGKILL at the hard limit if that does not happen.
    signal.signal(signal.SIGXCPU, on_xcpu)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, new_hard))


def _fatal(text: str, code: int) -> int:
    # No traceback: formatting one reads source files, which the sandbox forbids (SIGSYS).
    with contextlib.suppress(OSError):
        os.write(2, f"policy worker: {_clean(text, 1000)}\n".encode())
    return code


def run(fd: int, fourbyte: str | None = None, custom: str | None = None) -> int:
    """Initialise from keyd's first frame, confine, and serve; return the exit status."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    link = KeydLink(sock)
    try:
        first = link.receive()
    except ProtocolViolation as exc:
        return _fatal(f"bad init frame: {exc}", EXIT_VIOLATION)
    if first is None:
        return 0
    if not isinstance(first, Init):
        return _fatal("the first frame must be init", EXIT_VIOLATION)
    engine: RulesEngine | None = None
    if first.ruleset is not None:

        def log(line: str) -> None:
            link.send(Log(level="info", msg=_clean(line, MAX_LOG_CHARS)))

        engine = RulesEngine(first.ruleset, first.bignumber, KeydStorage(link), log,
                             first.timeout)
        engine.self_test()
    _warm_up(first.bignumber, first.timeout)
    validate: Validator = validation_unavailable
    learn: Callable[[Learn], None] | None = None
    if fourbyte is not None:
        # Mapped read-only now; after confinement lookups only touch the mapping.
        db = FourByteDB.open(Path(fourbyte))
        custom_db = read_custom_db(Path(custom)) if custom else CustomDB()
        validate = make_validator(db, custom_db)
        learn = make_learner(db, custom_db)
    worker = PolicyWorker(link, engine, validate, learn)

    def on_xcpu(signum: int, frame: Any) -> None:
        worker.recycle = True

    _set_limits(on_xcpu)
    enter_sandbox("policy")
    link.send(Ready())
    try:
        return worker.serve()
    except ProtocolViolation as exc:
        return _fatal(f"protocol violation from keyd: {exc}", EXIT_VIOLATION)


def main(argv: list[str] | None = None) -> None:
    """Parse `--fd N` and run the worker."""
    parser = argparse.ArgumentParser(prog="clef-policy-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--fourbyte", help="the compact 4byte database (built by keyd)")
    parser.add_argument("--custom", help="the --4bytedb-custom file, read before confinement")
    args = parser.parse_args(argv)
    try:
        code = run(args.fd, args.fourbyte, args.custom)
    except Exception as exc:  # noqa: BLE001 - report without a traceback (see _fatal), exit non-zero
        code = _fatal(f"{type(exc).__name__}: {exc}", 1)
    # os._exit: interpreter teardown is not needed and must not trip the seccomp filter.
    os._exit(code)


if __name__ == "__main__":
    main()
