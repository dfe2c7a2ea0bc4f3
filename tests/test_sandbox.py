"""The sandbox boundary: seccomp profiles, the running net worker's confinement, its supervision
(kill -9 and malformed frames) and a scan of its memory for secrets (tests run as root here).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import trio
from conftest import PASSWORD, REPO, Clef, ScriptedUI
from eth_keyfile.keyfile import decode_keyfile_json

from clef.uiclient import NO_ANSWER
from keyd.config import Config
from keyd.netsup import NetSupervisor
from sandbox.confine import PROFILES, sandbox_status
from sandbox.spawn import WORKER_ENV, WorkerProcess

ClefFactory = Callable[..., Clef]
FORBIDDEN = ["open", "socket", "execve", "fork", "ptrace"]


# --- helpers ------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The comm field may contain spaces and parentheses: split after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def clef_pid(clef: Clef) -> int:
    """The clef (keyd) process id."""
    assert clef.client.proc is not None
    return clef.client.proc.pid


def net_workers(clef: Clef) -> list[int]:
    """Live children of clef whose command line runs clef.net.worker."""
    parent = clef_pid(clef)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z" and b"clef.net.worker" in cmdline:
            found.append(int(entry))
    return found


def wait_worker(clef: Clef, exclude: int | None = None, timeout: float = 10) -> int:
    """Poll until exactly one live net worker (other than exclude) exists; return its pid."""
    deadline = time.monotonic() + timeout
    while True:
        workers = [p for p in net_workers(clef) if p != exclude]
        if len(workers) == 1:
            return workers[0]
        assert time.monotonic() < deadline, f"no single net worker: {workers}"
        time.sleep(0.01)


def fd_links(pid: int) -> dict[int, str]:
    """fd number -> readlink target for every open fd of pid."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return out


def scan_memory(pid: int, needles: dict[str, bytes]) -> set[str]:
    """Names of the needles found in any readable mapping of pid (via /proc/<pid>/mem)."""
    found: set[str] = set()
    longest = max(len(n) for n in needles.values())
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]",
                                                                          "[vsyscall]")):
                continue
            offset, tail = start, b""
            while offset < end:
                size = min(1 << 22, end - offset)
                try:
                    mem.seek(offset)
                    block = mem.read(size)
                except (OSError, ValueError, OverflowError):
                    break
                if not block:
                    break
                data = tail + block
                for name, needle in needles.items():
                    if needle in data:
                        found.add(name)
                tail = data[-(longest - 1):]
                offset += len(block)
    return found


def rpc_ok(clef: Clef, method: str, via: str = "ipc") -> Any:
    """Call and return the result (asserting success)."""
    response = clef.rpc(method, via=via)
    assert "result" in response, response
    return response["result"]


# --- seccomp profiles through the test-only probe -----------------------------------------------


def _probe(role: str, call: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sandbox.probe", role, call], cwd=REPO,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("role", sorted(PROFILES))
@pytest.mark.parametrize("call", FORBIDDEN)
def test_probe_forbidden_call_dies_of_sigsys(role: str, call: str) -> None:
    result = _probe(role, call)
    assert result.returncode == -signal.SIGSYS, (result.returncode, result.stderr[-500:])
    assert b"survived" not in result.stdout


@pytest.mark.parametrize("role", sorted(PROFILES))
def test_probe_without_forbidden_call_survives(role: str) -> None:
    result = _probe(role, "none")
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == b"survived\n"


@pytest.mark.parametrize("role", sorted(PROFILES))
def test_profiles_exclude_the_dangerous_calls(role: str) -> None:
    dangerous = {"open", "openat", "openat2", "creat", "socket", "connect", "bind", "listen",
                 "execve", "execveat", "fork", "vfork", "clone", "clone3", "ptrace",
                 "process_vm_readv", "process_vm_writev", "kill", "tgkill", "prctl", "seccomp",
                 "mount", "chmod", "unlink", "rename", "setuid", "memfd_create"}
    assert not dangerous & set(PROFILES[role])


# --- the running net worker ---------------------------------------------------------------------


def test_worker_is_confined_and_cut_off_from_the_ui_channel(clef_factory: ClefFactory) -> None:
    clef = clef_factory()
    keyd = clef_pid(clef)
    worker = wait_worker(clef)

    status = sandbox_status(worker)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"
    assert int(status["Seccomp_filters"]) >= 1
    assert sandbox_status(keyd)["Seccomp"] == "0"  # keyd itself is not the sandbox

    # A fresh interpreter (fork+exec), isolated mode, not a fork of keyd.
    cmdline = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:4] == [b"-I", b"-m", b"clef.net.worker"]
    assert os.readlink(f"/proc/{worker}/exe") == os.readlink(f"/proc/{keyd}/exe")

    worker_fds = fd_links(worker)
    keyd_fds = fd_links(keyd)
    assert worker_fds[0] == "/dev/null"
    assert worker_fds[1] == "/dev/null"
    ui_pipes = {keyd_fds[0], keyd_fds[1]}
    assert all(t.startswith("pipe:[") for t in ui_pipes), ui_pipes
    assert not ui_pipes & set(worker_fds.values())
    # Nothing but /dev/null, sockets, its log pipe and event-loop inodes: no file of any kind.
    for target in worker_fds.values():
        assert target == "/dev/null" or target.startswith(("socket:[", "pipe:[", "anon_inode:")), \
            target
    # It still serves.
    assert rpc_ok(clef, "account_version", via="http") == "6.1.0"
    assert rpc_ok(clef, "account_version", via="ipc") == "6.1.0"


def test_kill_9_worker_is_replaced_and_state_survives(clef_factory: ClefFactory) -> None:
    ui = ScriptedUI()
    clef = clef_factory(ui=ui)
    address = rpc_ok(clef, "account_new")
    old = wait_worker(clef)

    # An IPC connection the old worker has accepted (proved by one round trip).
    held = socket.socket(socket.AF_UNIX)
    held.settimeout(10)
    held.connect(str(clef.ipc))
    held.sendall(b'{"jsonrpc":"2.0","id":1,"method":"account_version"}')
    assert b"6.1.0" in held.recv(4096)

    # An approval pending through the old worker (the UI never answers it).
    ui.answers["ui_approveListing"] = lambda p: NO_ANSWER
    outcome: list[Any] = []

    def pending_caller() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", clef.port, timeout=30)
        try:
            conn.request("POST", "/", body=b'{"jsonrpc":"2.0","id":9,"method":"account_list"}',
                         headers={"Content-Type": "application/json"})
            outcome.append(conn.getresponse().read())
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)
        finally:
            conn.close()

    caller = threading.Thread(target=pending_caller)
    caller.start()
    clef.client.wait_for("ui_approveListing")

    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = wait_worker(clef, exclude=old, timeout=5)
    ui.answers["ui_approveListing"] = lambda p: {"accounts": p["accounts"]}
    while True:
        try:
            if rpc_ok(clef, "account_version", via="ipc") == "6.1.0":
                break
        except OSError:
            pass
        assert time.monotonic() - killed_at < 3, "no new worker serving"
        time.sleep(0.01)
    elapsed = time.monotonic() - killed_at
    assert elapsed < 1.5, f"worker took {elapsed:.2f}s to come back"
    assert new != old
    assert not _alive(old)

    # The held connection dropped with its worker.
    with contextlib.suppress(ConnectionResetError):
        assert held.recv(4096) == b""
    held.close()
    # The pending caller's connection dropped; its approval was withdrawn from the UI.
    caller.join(10)
    assert outcome and isinstance(outcome[0], Exception), outcome
    clef.client.wait_for("ui_showInfo", lambda p: "withdrawn" in p["text"], timeout=10)

    # Keys and state survived in keyd.
    assert rpc_ok(clef, "account_list", via="http") == [address]
    assert rpc_ok(clef, "account_list", via="ipc") == [address]
    assert sandbox_status(new)["Seccomp"] == "2"
    assert "restarting" in clef.stderr()


def test_worker_memory_holds_no_key_or_password(clef_factory: ClefFactory) -> None:
    clef = clef_factory()
    address = rpc_ok(clef, "account_new", via="http")
    assert rpc_ok(clef, "account_list", via="http") == [address]
    assert rpc_ok(clef, "account_list", via="ipc") == [address]
    worker = wait_worker(clef)

    # Learn the secrets independently: decrypt the file keyd wrote.
    [key_file] = [p for p in clef.keystore.iterdir() if not p.name.startswith(".")]
    private = decode_keyfile_json(json.loads(key_file.read_text()), PASSWORD.encode())
    assert len(private) == 32

    # Sanity check of the scanner: a marker the worker certainly handled must be found.
    marker = f"scan-marker-{uuid.uuid4().hex}"
    for _ in range(3):
        status, _ = clef.http({"jsonrpc": "2.0", "id": 1, "method": "account_version"},
                              headers={"User-Agent": marker})
        assert status == 200
        clef.rpc(f"account_{marker}")

    needles = {
        "marker": marker.encode(),
        "key-raw": bytes(private),
        "key-hex": private.hex().encode(),
        "key-HEX": private.hex().upper().encode(),
        "password": PASSWORD.encode(),
        "password-utf16": PASSWORD.encode("utf-16-le"),
        "password-utf32": PASSWORD.encode("utf-32-le"),
    }
    found = scan_memory(worker, needles)
    assert wait_worker(clef) == worker  # same process throughout
    assert "marker" in found, "the scanner did not see data the worker handled"
    assert found == {"marker"}, f"secrets in the net worker's memory: {found - {'marker'}}"


# --- supervision of misbehaving workers (in-process keyd supervisor, fake workers) --------------

FAKE_WORKER = r"""
import os, struct, sys, time
from sandbox.confine import enter_sandbox
fd = int(sys.argv[sys.argv.index("--fd") + 1])
mode = sys.argv[-1]
if mode != "unconfined":
    enter_sandbox("net")
def send(raw):
    os.write(fd, raw)
def frame(body):
    return struct.pack(">I", len(body)) + body
send(frame(b'{"t":"ready"}'))
time.sleep(0.2)
payloads = {
    "oversized": struct.pack(">I", 64 * 1024 * 1024),
    "not-json": frame(b"{nope"),
    "not-object": frame(b"[1,2]"),
    "unknown-kind": frame(b'{"t":"sign","id":1}'),
    "bad-meta": frame(b'{"t":"call","id":1,"method":"account_list","params":[],'
                      b'"meta":{"remote":"x","local":"x","scheme":"x","User-Agent":"",'
                      b'"Origin":"","Password":"x"}}'),
    "second-ready": frame(b'{"t":"ready"}'),
    "bad-id": frame(b'{"t":"cancel","id":-1}'),
}
if mode in payloads:
    send(payloads[mode])
while True:
    time.sleep(1)
"""


def _spawn_fake(mode: str) -> WorkerProcess:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log_r, log_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", FAKE_WORKER, "--fd", str(child.fileno()), mode],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_w,
            pass_fds=(child.fileno(),), env=WORKER_ENV, cwd=REPO)
    finally:
        child.close()
        os.close(log_w)
    os.set_blocking(log_r, False)
    return WorkerProcess(role="net", proc=proc, sock=parent, log_fd=log_r)


async def _supervise(modes: list[str]) -> list[WorkerProcess]:
    """Run keyd's NetSupervisor over fake workers (one per mode, then idle ones)."""
    config = Config(http=False, ipc_disable=True)
    supervisor = NetSupervisor(config, cast(Any, None))
    spawned: list[WorkerProcess] = []

    def spawn() -> WorkerProcess:
        mode = modes[len(spawned)] if len(spawned) < len(modes) else "idle"
        spawned.append(_spawn_fake(mode))
        return spawned[-1]

    supervisor._spawn = spawn  # type: ignore[method-assign]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            while len(spawned) <= len(modes):
                await trio.sleep(0.02)
            await supervisor.worker_ready.wait()
            nursery.cancel_scope.cancel()
    return spawned


@pytest.mark.parametrize("mode", ["oversized", "not-json", "not-object", "unknown-kind",
                                  "bad-meta", "second-ready", "bad-id"])
async def test_malformed_frame_kills_the_worker_and_a_new_one_starts(mode: str) -> None:
    spawned = await _supervise([mode])
    assert len(spawned) >= 2
    assert spawned[0].proc.wait(5) == -signal.SIGKILL
    for worker in spawned:
        assert worker.proc.wait(5) is not None  # none is left running


async def test_unconfined_worker_is_refused() -> None:
    spawned = await _supervise(["unconfined"])
    assert spawned[0].proc.wait(5) == -signal.SIGKILL
    assert len(spawned) >= 2
