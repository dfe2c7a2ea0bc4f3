"""Test-only entry point: confine this process as a role, then attempt one system call.

`python -m sandbox.probe net open` must die of SIGSYS; `... net none` must exit 0. It exists so
the test-suite can prove each profile kills on the calls that matter without touching a real worker.
"""

from __future__ import annotations

import os
import socket
import sys

from sandbox.confine import enter_sandbox


def _attempt(call: str) -> None:
    if call == "open":
        os.open("/etc/hostname", os.O_RDONLY)
    elif call == "socket":
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    elif call == "execve":
        # The point is to be killed by the filter.
        os.execv("/bin/true", ["/bin/true"])  # noqa: S606  # nosec B606
    elif call == "fork":
        os.fork()
    elif call == "ptrace":
        import ctypes  # imported before confinement below; kept local for clarity

        ctypes.CDLL(None).ptrace(0, 0, 0, 0)
    elif call != "none":
        raise SystemExit(f"unknown call {call}")


def main() -> None:
    """Parse `<role> <call>`, confine, attempt the call."""
    role, call = sys.argv[1], sys.argv[2]
    import ctypes  # noqa: F401  - pre-import: importing after confinement needs open()

    enter_sandbox(role)
    _attempt(call)
    os.write(1, b"survived\n")


if __name__ == "__main__":
    main()
