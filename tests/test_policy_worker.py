"""The policy worker as a real sandboxed process, raw and through keyd's PolicyClient."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from clef.errors import StorageTampered
from keyd.policy_client import DEADLINE_GRACE, PolicyClient, open_policy_client
from policy.rules import MemoryStorage, load_bignumber_js
from sandbox.frames import FrameDecoder, encode_frame
from sandbox.policy_protocol import VALIDATION_UNAVAILABLE
from sandbox.spawn import WorkerProcess, spawn_worker

SHARED = Path(__file__).resolve().parents[2] / "shared"
BIGNUMBER = load_bignumber_js()

RULES = r"""
function ApproveTx(r) {
  var seen = storage.get('seen');
  storage.put('seen', seen + 'x');
  console.log('value', r.transaction.value, new BigNumber(r.transaction.value.slice(2), 16));
  return seen === '' ? 'Approve' : 'Reject';
}
function ApproveListing(r) { return 'Approve'; }
function ApproveSignData(r) { return 'Nope'; }
function Loop() { for (;;) {} }
function Hungry() { var a = []; for (;;) a.push(new Array(1 << 20).fill(1.5)); }
function Hostile() {
  var out = [typeof require, typeof process, typeof call_python];
  try { require('fs'); out.push('require worked'); } catch (e) { out.push('no require'); }
  import('/etc/passwd').then(function () { storage.put('leak', 'yes'); },
                             function (e) { storage.put('leak', String(e)); });
  storage.put('hostile', out.join(','));
  return 'Reject';
}
function Clock() { var d = new Date(); return d.toString() + ' ' + d.getTimezoneOffset(); }
function OnApprovedTx(r) {
  storage.put('n', String(Number(storage.get('n') || '0') + 1));
  var until = Date.now() + (r.busy_ms || 0);
  while (Date.now() < until) {}
}
"""


def tx(value: str = "0x10") -> dict[str, Any]:
    return {"transaction": {"from": "0x1", "to": "0x2", "value": value, "gas": "0x5208",
                            "gasPrice": "0x1", "maxFeePerGas": None,
                            "maxPriorityFeePerGas": None, "nonce": "0x0"},
            "call_info": None, "meta": {"remote": "r", "local": "l", "scheme": "ipc",
                                        "User-Agent": "", "Origin": ""}}


# ---- the raw worker -------------------------------------------------------------------------


class RawWorker:
    """Speaks frames to a spawned policy worker synchronously, as keyd would."""

    def __init__(self, ruleset: str | None = RULES, timeout: float = 1.0) -> None:
        self.proc = spawn_worker("policy", "policy.worker")
        self.proc.sock.settimeout(20)
        self.decoder = FrameDecoder()
        self.pending: list[dict[str, Any]] = []
        self.storage: dict[str, str] = {}
        if ruleset is not None or timeout:
            self.send({"t": "init", "ruleset": ruleset, "bignumber": BIGNUMBER,
                       "timeout": timeout})

    def send(self, body: dict[str, Any]) -> None:
        self.proc.sock.sendall(encode_frame(body))

    def receive(self) -> dict[str, Any] | None:
        while not self.pending:
            data = self.proc.sock.recv(65536)
            if not data:
                return None
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def serve_until(self, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Answer storage requests until a frame of `kind` arrives; return it and the rest."""
        seen: list[dict[str, Any]] = []
        while True:
            msg = self.receive()
            assert msg is not None, "worker closed the channel"
            if msg["t"] == kind:
                return msg, seen
            seen.append(msg)
            if msg["t"] == "storage_get":
                self.send({"t": "storage_value", "id": msg["id"],
                           "value": self.storage.get(msg["key"], ""), "error": None})
            elif msg["t"] == "storage_put":
                if msg["value"] == "":
                    self.storage.pop(msg["key"], None)
                else:
                    self.storage[msg["key"]] = msg["value"]
                self.send({"t": "storage_ack", "id": msg["id"], "ok": True, "error": None})

    def rule(self, fn: str, request: Any, msg_id: int = 1) -> dict[str, Any]:
        self.send({"t": "rule", "id": msg_id, "fn": fn, "request": request})
        result, _ = self.serve_until("rule_result")
        assert result["id"] == msg_id
        return result

    def exit_status(self) -> int:
        return self.proc.wait(10)

    def stderr(self) -> str:
        try:
            return os.read(self.proc.log_fd, 65536).decode(errors="replace")
        except BlockingIOError:
            return ""


@pytest.fixture
def raw() -> Iterator[Callable[..., RawWorker]]:
    started: list[RawWorker] = []

    def start(ruleset: str | None = RULES, timeout: float = 1.0) -> RawWorker:
        worker = RawWorker(ruleset, timeout)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.proc.close()


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def test_worker_confines_itself_and_serves_rules(raw: Callable[..., RawWorker]) -> None:
    w = raw()
    assert w.receive() == {"t": "ready"}
    status = proc_status(w.proc.pid)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"
    limits = Path(f"/proc/{w.proc.pid}/limits").read_text()
    assert any(line.startswith("Max address space") and "1073741824" in line
               for line in limits.splitlines())
    assert any(line.startswith("Max cpu time") and "unlimited" not in line
               for line in limits.splitlines())
    w.send({"t": "rule", "id": 7, "fn": "ApproveTx", "request": tx()})
    result, seen = w.serve_until("rule_result")
    assert result == {"t": "rule_result", "id": 7, "decision": "Approve", "error": None}
    assert [m["t"] for m in seen] == ["storage_get", "storage_put", "log"]
    assert seen[2] == {"t": "log", "level": "info", "msg": "JS:> value 0x10 16"}
    assert w.rule("ApproveTx", tx(), 8)["decision"] == "Reject"
    nope = w.rule("ApproveSignData", {}, 9)
    assert nope == {"t": "rule_result", "id": 9, "decision": None,
                    "error": "rule returned 'Nope'"}
    assert w.rule("Clock", None, 10)["error"].startswith("rule returned '")
    w.send({"t": "validate_tx", "id": 11, "tx": {"to": None}, "selector": None, "chain_id": 1})
    assert w.receive() == {"t": "validate_result", "id": 11, "messages": [],
                           "error": VALIDATION_UNAVAILABLE, "learned": []}
    w.proc.sock.shutdown(socket.SHUT_WR)
    assert w.exit_status() == 0


def test_requests_arriving_during_a_storage_call_are_queued(
        raw: Callable[..., RawWorker]) -> None:
    w = raw()
    assert w.receive() == {"t": "ready"}
    w.send({"t": "rule", "id": 1, "fn": "ApproveTx", "request": tx()})
    first = w.receive()
    assert first is not None and first["t"] == "storage_get"
    # keyd sends the next requests before answering the storage call.
    w.send({"t": "rule", "id": 2, "fn": "ApproveListing", "request": {}})
    w.send({"t": "notify", "id": 3, "fn": "OnApprovedTx", "request": {}})
    w.send({"t": "storage_value", "id": first["id"], "value": "", "error": None})
    r1, _ = w.serve_until("rule_result")
    r2, _ = w.serve_until("rule_result")
    done, _ = w.serve_until("notify_done")
    assert (r1["id"], r1["decision"]) == (1, "Approve")
    assert (r2["id"], r2["decision"]) == (2, "Approve")
    assert done == {"t": "notify_done", "id": 3, "error": None}
    assert w.storage == {"seen": "x", "n": "1"}


def test_storage_error_from_keyd_fails_the_rule(raw: Callable[..., RawWorker]) -> None:
    w = raw()
    assert w.receive() == {"t": "ready"}
    w.send({"t": "rule", "id": 1, "fn": "ApproveTx", "request": tx()})
    get = w.receive()
    assert get is not None and get["t"] == "storage_get"
    w.send({"t": "storage_value", "id": get["id"], "value": None,
            "error": "rule storage unavailable: StorageTampered"})
    result = w.receive()
    assert result is not None
    assert result["decision"] is None
    assert "StorageTampered" in result["error"]


def test_runaway_and_memory_hungry_rules_are_bounded(raw: Callable[..., RawWorker]) -> None:
    w = raw(timeout=0.5)
    assert w.receive() == {"t": "ready"}
    started = time.monotonic()
    loop = w.rule("Loop", None, 1)
    assert loop == {"t": "rule_result", "id": 1, "decision": None,
                    "error": "rule timed out after 0.5s"}
    assert time.monotonic() - started < 2
    started = time.monotonic()
    hungry = w.rule("Hungry", None, 2)
    assert hungry["decision"] is None
    assert "out of memory" in hungry["error"] or "timed out" in hungry["error"]
    assert time.monotonic() - started < 3
    # The worker survived both and still answers.
    assert w.rule("ApproveListing", {}, 3)["decision"] == "Approve"


def test_hostile_rule_gets_no_host_access_and_does_not_kill_the_worker(
        raw: Callable[..., RawWorker]) -> None:
    w = raw()
    assert w.receive() == {"t": "ready"}
    assert w.rule("Hostile", None)["decision"] == "Reject"
    assert w.storage["hostile"] == "undefined,undefined,undefined,no require"
    assert w.storage["leak"].startswith("ReferenceError: cannot find module")
    assert w.rule("ApproveListing", {}, 2)["decision"] == "Approve"


@pytest.mark.parametrize("frame", [
    {"t": "bogus"},
    {"t": "rule", "id": 1, "fn": "Approve Tx", "request": None},
    {"t": "storage_value", "id": 1, "value": "", "error": None},
    {"t": "init", "ruleset": None, "bignumber": "", "timeout": 1},
    {"t": "ready"},
])
def test_malformed_or_unexpected_frames_from_keyd_stop_the_worker(
        raw: Callable[..., RawWorker], frame: dict[str, Any]) -> None:
    w = raw()
    assert w.receive() == {"t": "ready"}
    w.send(frame)
    assert w.receive() is None
    assert w.exit_status() == 3


def test_bad_first_frame_stops_the_worker(raw: Callable[..., RawWorker]) -> None:
    w = raw(ruleset=None, timeout=0)
    w.send({"t": "rule", "id": 1, "fn": "ApproveTx", "request": None})
    assert w.receive() is None
    assert w.exit_status() == 3
    assert "the first frame must be init" in w.stderr()


def test_without_a_ruleset_rules_fall_to_manual(raw: Callable[..., RawWorker]) -> None:
    w = raw(ruleset=None)
    assert w.receive() == {"t": "ready"}
    assert w.rule("ApproveTx", tx()) == {"t": "rule_result", "id": 1, "decision": None,
                                         "error": "no ruleset"}


# ---- PolicyClient (keyd side, trio) ----------------------------------------------------------


class Store(MemoryStorage):
    """A RuleStorage that can be switched to failing authentication."""

    tampered = False

    def get(self, key: str) -> str:
        if self.tampered:
            raise StorageTampered("jsstorage.json: cipher: message authentication failed")
        return super().get(key)

    def put(self, key: str, value: str) -> None:
        if self.tampered:
            raise StorageTampered("jsstorage.json: cipher: message authentication failed")
        super().put(key, value)


async def test_client_runs_rules_with_keyd_storage_and_forwards_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clef.rules")
    store = Store()
    async with open_policy_client(ruleset=RULES, storage=store, timeout=1.0) as client:
        assert client.pid is not None
        assert await client.rule("ApproveTx", tx()) == "Approve"
        assert await client.rule("ApproveTx", tx()) == "Reject"
        assert await client.rule("ApproveSignData", {}) is None
        assert await client.rule("NoSuchFunction", {}) is None
        assert await client.notify("OnApprovedTx", {}) is True
        assert await client.notify("OnSignerStartup", {}) is True  # missing: nothing to do
        result = await client.validate_tx({"to": None}, None, 1)
        assert result.error == VALIDATION_UNAVAILABLE
    assert store.data == {"seen": "xx", "n": "1"}
    messages = [r.getMessage() for r in caplog.records]
    assert "JS:> value 0x10 16" in messages
    assert any("going to manual: rule returned 'Nope'" in m for m in messages)


async def test_client_tampered_storage_falls_to_manual() -> None:
    store = Store()
    store.tampered = True
    async with open_policy_client(ruleset=RULES, storage=store, timeout=1.0) as client:
        started = time.monotonic()
        assert await client.rule("ApproveTx", tx()) is None
        assert time.monotonic() - started < 1.0
        assert await client.notify("OnApprovedTx", {}) is False
        store.tampered = False
        assert await client.rule("ApproveTx", tx()) == "Approve"


async def test_client_spec_rate_limit_window_through_the_worker() -> None:
    text = next((SHARED / "spec").glob("001_*.txt")).read_text()
    ruleset = text.split("Example 3: a rate-limited window\n", 1)[1].split("A note about", 1)[0]
    store = Store()
    point4 = hex(4 * 10**17)
    async with open_policy_client(ruleset=ruleset, storage=store) as client:
        outcomes = []
        for _ in range(3):
            outcomes.append(await client.rule("ApproveTx", tx(point4)))
            if outcomes[-1] == "Approve":
                assert await client.notify("OnApprovedTx", {"raw": "0x", "tx": {"value": point4}})
        assert outcomes == ["Approve", "Approve", None]
    # A new client (keyd restarted) over the same storage keeps the window.
    async with open_policy_client(ruleset=ruleset, storage=store) as client:
        assert await client.rule("ApproveTx", tx(point4)) is None


async def test_kill_9_during_a_call_returns_manual_and_restarts() -> None:
    async with open_policy_client(ruleset=RULES, storage=Store(), timeout=5.0) as client:
        first_pid = client.pid
        assert first_pid is not None

        async def kill_soon() -> None:
            await trio.sleep(0.3)
            os.kill(first_pid, signal.SIGKILL)

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_soon)
            assert await client.rule("Loop", None) is None
        assert time.monotonic() - started < 2.0  # not the 5 s bound, nor the deadline
        assert await client.rule("ApproveListing", {}) == "Approve"
        assert client.pid not in (None, first_pid)
        assert client.restarts == 1


async def test_kill_9_while_idle_then_next_call_waits_for_the_replacement() -> None:
    async with open_policy_client(ruleset=RULES, storage=Store()) as client:
        first_pid = client.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await trio.sleep(0.2)  # the worker is gone before the next request arrives
        assert await client.rule("ApproveListing", {}) == "Approve"
        assert client.pid != first_pid


async def test_notification_is_redelivered_when_the_worker_dies() -> None:
    store = Store()
    async with open_policy_client(ruleset=RULES, storage=store, timeout=5.0) as client:
        first_pid = client.pid
        assert first_pid is not None

        async def kill_soon() -> None:
            await trio.sleep(0.5)
            os.kill(first_pid, signal.SIGKILL)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_soon)
            # The first delivery records, then busy-waits; it is killed; the replacement records
            # again. A double record only makes a rate limit stricter.
            assert await client.notify("OnApprovedTx", {"busy_ms": 1500}) is True
        assert store.data["n"] == "2"


async def test_runaway_rule_is_stopped_by_the_worker_itself() -> None:
    async with open_policy_client(ruleset=RULES, storage=Store(), timeout=0.3) as client:
        pid = client.pid
        started = time.monotonic()
        assert await client.rule("Loop", None) is None
        assert await client.rule("Hungry", None) is None
        assert time.monotonic() - started < 4
        assert client.pid == pid  # no restart needed
        assert await client.rule("ApproveListing", {}) == "Approve"


async def test_without_rules_nothing_is_evaluated() -> None:
    async with open_policy_client(ruleset=None, storage=Store()) as client:
        assert not client.has_rules
        assert await client.rule("ApproveTx", tx()) is None
        assert await client.notify("OnApprovedTx", {}) is True
        assert (await client.validate_tx({}, None, None)).error == VALIDATION_UNAVAILABLE


# ---- misbehaving workers (fakes speaking the protocol from a plain Python child) --------------

FAKE_WORKER = textwrap.dedent("""
    import json, socket, struct, sys, time
    mode, fd = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(fileno=fd)
    def read():
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            if not chunk:
                sys.exit(0)
            head += chunk
        (n,) = struct.unpack(">I", head)
        body = b""
        while len(body) < n:
            body += sock.recv(n - len(body))
        return json.loads(body)
    def send(obj):
        body = json.dumps(obj).encode()
        sock.sendall(struct.pack(">I", len(body)) + body)
    read()
    if mode == "unsolicited_storage":
        send({"t": "storage_get", "id": 1, "key": "k"})
    send({"t": "ready"})
    while True:
        msg = read()
        if mode == "hang":
            time.sleep(3600)
        elif mode == "garbage":
            send({"t": "rule_result", "id": msg["id"], "decision": "Approve", "error": "x"})
        elif mode == "unsolicited_storage":
            send({"t": "rule_result", "id": msg["id"], "decision": "Approve", "error": None})
        elif mode == "wrong_id":
            send({"t": "rule_result", "id": msg["id"] + 1000, "decision": "Approve",
                  "error": None})
        elif mode == "deep":
            sock.sendall(struct.pack(">I", 400000) + b"[" * 400000)
""")


def fake_spawner(mode: str, spawned: list[int]) -> Callable[[], WorkerProcess]:
    def spawn() -> WorkerProcess:
        parent, child = socket.socketpair()
        log_r, log_w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_WORKER, mode, str(child.fileno())],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log_w, start_new_session=True)
        child.close()
        os.close(log_w)
        os.set_blocking(log_r, False)
        spawned.append(proc.pid)
        return WorkerProcess(role="policy", proc=proc, sock=parent, log_fd=log_r)

    return spawn


async def test_hung_worker_is_killed_at_the_deadline_and_replaced() -> None:
    spawned: list[int] = []
    client = PolicyClient(ruleset="x", storage=Store(), timeout=0.2,
                          spawn=fake_spawner("hang", spawned))
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        started = time.monotonic()
        assert await client.rule("ApproveTx", {}) is None
        elapsed = time.monotonic() - started
        assert 0.2 + DEADLINE_GRACE - 0.1 < elapsed < 0.2 + DEADLINE_GRACE + 1.5
        with trio.fail_after(10):
            while client.pid in (None, spawned[0]):
                await trio.sleep(0.05)
        assert len(spawned) == 2
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["garbage", "unsolicited_storage", "wrong_id", "deep"])
async def test_protocol_violation_kills_the_worker(mode: str) -> None:
    spawned: list[int] = []
    client = PolicyClient(ruleset="x", storage=Store(), timeout=1.0,
                          spawn=fake_spawner(mode, spawned))
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        started = time.monotonic()
        assert await client.rule("ApproveTx", {}) is None  # never the fake's "Approve"
        assert time.monotonic() - started < 2.0
        with trio.fail_after(10):
            while len(spawned) < 2:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


async def test_worker_that_never_starts_does_not_block_keyd() -> None:
    def broken() -> WorkerProcess:
        raise OSError("exec failed")

    client = PolicyClient(ruleset="x", storage=Store(), spawn=broken, startup_timeout=0.3)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(5):
            await nursery.start(client.run)
            assert await client.rule("ApproveTx", {}) is None
            assert (await client.validate_tx({}, None, None)).error is not None
        nursery.cancel_scope.cancel()


def test_request_frames_are_json() -> None:
    # keyd's frames carry the request exactly as the UI would see it.
    body = encode_frame({"t": "rule", "id": 1, "fn": "ApproveTx", "request": tx()})
    assert json.loads(body[4:])["request"] == tx()


# ---- with keyd's encrypted vault as the rule store ---------------------------------------------


async def test_rate_limit_window_on_the_vault_fails_closed_on_rollback_and_truncation(
        tmp_path: Path) -> None:
    from keyd.vault import JSSTORAGE, Vault

    seed = bytes((i * 11 + 5) % 256 for i in range(256))
    text = next((SHARED / "spec").glob("001_*.txt")).read_text()
    ruleset = text.split("Example 3: a rate-limited window\n", 1)[1].split("A note about", 1)[0]
    point4 = hex(4 * 10**17)
    signed = {"raw": "0x", "tx": {"value": point4}}
    with Vault.open(tmp_path, seed) as vault:
        store_file = vault.path / JSSTORAGE
        async with open_policy_client(ruleset=ruleset, storage=vault.rule_storage()) as client:
            assert await client.rule("ApproveTx", tx(point4)) == "Approve"
            assert await client.notify("OnApprovedTx", signed)
            older = store_file.read_bytes()
            assert await client.rule("ApproveTx", tx(point4)) == "Approve"
            assert await client.notify("OnApprovedTx", signed)
            assert await client.rule("ApproveTx", tx(point4)) is None  # 1.2 ether: manual
            newer = store_file.read_bytes()
            # Rolling the rule store back one transaction would re-open the window: refused.
            store_file.write_bytes(older)
            assert await client.rule("ApproveTx", tx(point4)) is None
            assert await client.rule("ApproveTx", tx(hex(1))) is None
            store_file.write_bytes(newer[: len(newer) // 2])  # truncated
            assert await client.rule("ApproveTx", tx(hex(1))) is None
            store_file.write_bytes(newer)
            assert await client.rule("ApproveTx", tx(hex(1))) == "Approve"
    # keyd restarts: the window persisted in the vault.
    with Vault.open(tmp_path, seed) as vault:
        async with open_policy_client(ruleset=ruleset, storage=vault.rule_storage()) as client:
            assert await client.rule("ApproveTx", tx(point4)) is None
            assert await client.rule("ApproveTx", tx(hex(10**17))) == "Approve"
