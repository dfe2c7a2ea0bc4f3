"""Per-role seccomp allowlists and the one function that confines a worker.

A worker imports everything, opens every file and socket it will ever need, then calls
enter_sandbox(role) from inside its event loop. From then on any system call outside the
role's allowlist kills the whole process (SIGSYS): a compromised parser cannot open files,
create or connect sockets, exec, fork, ptrace or read another process's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pyseccomp

PR_SET_NO_NEW_PRIVS = 38

# What a trio event loop on inherited sockets needs (strace-derived, see deps-probe.md §2).
_EVENT_LOOP = (
    "read", "write", "readv", "writev", "close", "fstat", "newfstatat", "lseek",
    "mmap", "munmap", "mremap", "brk", "madvise", "mprotect",
    "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
    "futex", "getpid", "gettid", "getrandom", "clock_gettime", "clock_nanosleep", "nanosleep",
    "epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll", "select", "pselect6",
    "recvfrom", "sendto", "recvmsg", "sendmsg",
    "exit", "exit_group", "sched_yield", "getsockname", "getpeername",
    "fcntl", "getsockopt", "restart_syscall",
)
# A listening server additionally accepts and tunes connections on the sockets keyd handed it.
_SERVER = ("accept4", "accept", "setsockopt", "shutdown", "ioctl")
# The rules worker bounds each JavaScript call with SIGALRM.
_TIMERS = ("alarm", "setitimer", "getitimer", "getrusage", "sysinfo")

PROFILES: dict[str, tuple[str, ...]] = {
    "net": _EVENT_LOOP + _SERVER,
    "policy": _EVENT_LOOP + _TIMERS,
}


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): no exec can ever gain privileges again."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def enter_sandbox(role: str) -> None:
    """Set no_new_privs and load the role's allowlist in kill-process mode; irreversible."""
    allowed = PROFILES[role]
    set_no_new_privs()
    filt = pyseccomp.SyscallFilter(pyseccomp.KILL_PROCESS)
    for name in allowed:
        filt.add_rule(pyseccomp.ALLOW, name)
    # Foreign-architecture (e.g. x32) syscalls would bypass a native allowlist: kill, not thread-kill.
    filt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    filt.set_attr(pyseccomp.Attr.CTL_TSYNC, 1)
    filt.load()


def sandbox_status(pid: int | str = "self") -> dict[str, str]:
    """The Seccomp and NoNewPrivs lines of /proc/<pid>/status (for diagnostics and tests)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Seccomp", "NoNewPrivs", "Seccomp_filters"):
                out[key] = value.strip()
    return out
