"""Start a worker as a fresh interpreter (fork+exec), never as a fork of keyd.

A plain fork would copy keyd's memory (decrypted keys, passwords, the master seed) into the
sandboxed process; exec replaces the image before the worker runs any of its own code.
The worker gets exactly: one end of a socketpair, the fds keyd chooses to hand it (listening
sockets, a read-only data file), /dev/null on stdin/stdout and a log pipe on stderr.
"""

from __future__ import annotations

import contextlib
import os
import socket

# Workers are started from a fixed argv, never through a shell.
import subprocess  # nosec B404
import sys
from collections.abc import Sequence
from dataclasses import dataclass

WORKER_ENV = {"LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class WorkerProcess:
    """A running worker: its process, keyd's end of the socketpair and its log pipe."""

    role: str
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    log_fd: int

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the worker (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the worker exits; return its status."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Kill, reap and release the fds."""
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.close(self.log_fd)


def spawn_worker(
    role: str,
    module: str,
    *,
    pass_fds: Sequence[int] = (),
    extra_args: Sequence[str] = (),
) -> WorkerProcess:
    """fork+exec `python -I -m <module> --fd N [extra_args]` with a fresh socketpair."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log_r, log_w = os.pipe()
    try:
        argv = [sys.executable, "-I", "-m", module, "--fd", str(child.fileno()), *extra_args]
        # A fixed argv of our own interpreter; no shell.
        proc = subprocess.Popen(  # noqa: S603  # nosec B603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_w,
            pass_fds=(child.fileno(), *pass_fds),
            close_fds=True,
            env=WORKER_ENV,
            start_new_session=True,
        )
    except BaseException:
        parent.close()
        os.close(log_r)
        raise
    finally:
        child.close()
        os.close(log_w)
    os.set_blocking(log_r, False)
    return WorkerProcess(role=role, proc=proc, sock=parent, log_fd=log_r)
