"""keyd's supervision of the net worker: sockets, spawn, the framed call loop, restarts.

keyd creates the listening sockets (so the worker never needs socket/bind), spawns the worker
with fork+exec, checks it is confined, then serves its calls. Any protocol violation kills the
worker; any death withdraws the calls it carried (their approvals are cancelled) and a fresh
worker is started within a second. Keys and state live in keyd and survive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import trio

from clef.errors import ProtocolViolation
from keyd.api import SignerAPI, run_call
from keyd.config import Config
from sandbox.confine import sandbox_status
from sandbox.frames import FrameChannel
from sandbox.net_protocol import (
    Call,
    Cancel,
    Ready,
    init_message,
    parse_worker_message,
    reply_error,
    reply_result,
)
from sandbox.spawn import WorkerProcess, spawn_worker

log = logging.getLogger("keyd.net")
READY_TIMEOUT = 15.0
RESTART_DELAY = 0.1


def open_http_socket(addr: str, port: int) -> socket.socket:
    """Bind and listen on the HTTP address (resolved here, in keyd: the worker cannot resolve)."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(sockaddr)
    sock.listen(1024)
    return sock


def open_ipc_socket(path: Path) -> socket.socket:
    """Bind the IPC socket with mode 0600, replacing a stale socket (never another file type)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    path.chmod(0o600)
    sock.listen(128)
    return sock


class NetSupervisor:
    """Runs the net worker forever, restarting it when it dies."""

    def __init__(self, config: Config, api: SignerAPI) -> None:
        self.config = config
        self.api = api
        self.http_sock: socket.socket | None = None
        self.ipc_sock: socket.socket | None = None
        self.ipc_path: Path | None = None
        self.worker: WorkerProcess | None = None
        self.generation = 0
        self.worker_ready = trio.Event()

    @property
    def http_url(self) -> str | None:
        """http://host:port/ of the HTTP listener, or None."""
        if self.http_sock is None:
            return None
        host, port = self.http_sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def open_sockets(self) -> None:
        """Create the listeners before any worker exists."""
        if self.config.http:
            self.http_sock = open_http_socket(self.config.http_addr, self.config.http_port)
        self.ipc_path = self.config.ipc_socket_path()
        if self.ipc_path is not None:
            self.ipc_sock = open_ipc_socket(self.ipc_path)

    def close_sockets(self) -> None:
        """Close listeners and remove the IPC socket file."""
        for sock in (self.http_sock, self.ipc_sock):
            if sock is not None:
                sock.close()
        if self.ipc_path is not None:
            try:
                if stat.S_ISSOCK(self.ipc_path.lstat().st_mode):
                    self.ipc_path.unlink()
            except FileNotFoundError:
                pass

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise forever; task_status fires once the first worker is confined and serving."""
        started = False
        try:
            while True:
                self.worker_ready = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._run_one)
                    await self.worker_ready.wait()
                    if not started:
                        started = True
                        task_status.started()
                await trio.sleep(RESTART_DELAY)
        finally:
            if self.worker is not None:
                self.worker.close()

    def _spawn(self) -> WorkerProcess:
        fds: list[int] = []
        args: list[str] = []
        if self.http_sock is not None:
            fds.append(self.http_sock.fileno())
            args += ["--http-fd", str(self.http_sock.fileno())]
        if self.ipc_sock is not None:
            fds.append(self.ipc_sock.fileno())
            args += ["--ipc-fd", str(self.ipc_sock.fileno())]
        return spawn_worker("net", "clef.net.worker", pass_fds=fds, extra_args=args)

    async def _run_one(self) -> None:
        worker = self._spawn()
        self.worker = worker
        self.generation += 1
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(worker.sock))
        channel = FrameChannel(stream)
        in_flight: dict[int, trio.CancelScope] = {}
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_relay_log, worker.log_fd, "net")
                await channel.send(init_message(vhosts=self.config.http_vhosts,
                                                http=self.http_sock is not None,
                                                ipc=self.ipc_sock is not None))
                with trio.fail_after(READY_TIMEOUT):
                    first = await channel.receive()
                if first is None or not isinstance(parse_worker_message(first), Ready):
                    raise ProtocolViolation("worker did not report ready")
                status = sandbox_status(worker.pid)
                if status.get("Seccomp") != "2" or status.get("NoNewPrivs") != "1":
                    raise ProtocolViolation(f"worker is not confined: {status}")
                log.info("net worker %d confined and serving", worker.pid)
                self.worker_ready.set()
                while True:
                    raw = await channel.receive()
                    if raw is None:
                        log.warning("net worker %d closed its channel", worker.pid)
                        break
                    msg = parse_worker_message(raw)
                    if isinstance(msg, Call):
                        if msg.id in in_flight:
                            raise ProtocolViolation(f"duplicate call id {msg.id}")
                        scope = trio.CancelScope()
                        in_flight[msg.id] = scope
                        nursery.start_soon(self._serve_call, channel, msg, scope, in_flight)
                    elif isinstance(msg, Cancel):
                        pending = in_flight.get(msg.id)
                        if pending is not None:
                            pending.cancel()
                    else:
                        raise ProtocolViolation("unexpected ready")
                nursery.cancel_scope.cancel()
        # except*: trio wraps errors raised inside the nursery in an ExceptionGroup; a plain
        # except would miss them and one malformed frame from the worker would bring keyd down.
        except* ProtocolViolation as group:
            log.error("net worker %d violated the protocol (%s): killed", worker.pid,
                      _first(group))
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
            log.warning("net worker %d channel failed: %s", worker.pid, _first(group))
        except* trio.TooSlowError:
            log.error("net worker %d did not become ready", worker.pid)
        finally:
            # Withdraw everything the dead worker carried: approvals are cancelled, never signed.
            for scope in in_flight.values():
                scope.cancel()
            worker.kill()
            # A cancelled supervisor (clef is stopping) has an effective deadline of -inf.
            stopping = trio.current_effective_deadline() == float("-inf")
            with trio.CancelScope(shield=True):
                code = await trio.to_thread.run_sync(worker.wait)
                if stopping:
                    log.info("net worker %d stopped", worker.pid)
                else:
                    log.warning("net worker %d exited (status %s); restarting", worker.pid, code)
            worker.sock.close()
            self.worker_ready.set()

    async def _serve_call(self, channel: FrameChannel, call: Call, scope: trio.CancelScope,
                          in_flight: dict[int, trio.CancelScope]) -> None:
        reply: dict[str, Any] | None = None
        try:
            with scope:
                reply = await run_call(self.api, call.method, call.params, call.meta)
            if reply is None:
                return
            frame = (reply_error(call.id, reply["error"]) if "error" in reply
                     else reply_result(call.id, reply["result"]))
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await channel.send(frame)
        finally:
            in_flight.pop(call.id, None)


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _relay_log(fd: int, role: str) -> None:
    """Copy a worker's stderr lines into keyd's log, escaped: a worker cannot write raw bytes to
    keyd's terminal (which may be the console UI)."""
    stream = trio.lowlevel.FdStream(os.dup(fd))
    buffer = b""
    try:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                log.warning("[%s] %s", role, line[:2000].decode("utf-8", "backslashreplace")
                            .encode("unicode_escape").decode("ascii"))
            buffer = buffer[-4096:]
    finally:
        await stream.aclose()
