"""Reading secrets and answers for CLI subcommands: no echo on a terminal, line by line from a pipe.

The reference failed with EOF when secrets were piped; operators need that for unattended start.
"""

from __future__ import annotations

import getpass
import sys


class InputClosed(Exception):
    """Standard input ended before an answer was read."""


def read_line(prompt: str, *, secret: bool) -> str:
    """Ask on the terminal (without echo when secret) or read one line from piped stdin."""
    if sys.stdin.isatty():
        if secret:
            return getpass.getpass(prompt)
        return input(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise InputClosed("standard input closed")
    sys.stdout.write("\n")
    return line.rstrip("\r\n")
