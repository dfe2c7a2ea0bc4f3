"""PolicyClient pipelining: validate_tx requests in flight together, answered in order, each
with its own deadline; rule/notify calls alone; a caller that gives up does not poison the
conversation; an out-of-order or unsolicited answer gets the worker killed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from keyd.policy_client import DEADLINE_GRACE, WORKER_UNAVAILABLE, PolicyClient, open_policy_client
from policy.fourbyte import FourByteDB
from policy.rules import MemoryStorage
from sandbox.spawn import WorkerProcess, spawn_worker

TX = {"from": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
      "to": "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192", "gas": "0x5208",
      "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x3b9aca00", "value": "0x1",
      "nonce": "0x0", "chainId": "0x1", "data": "0x"}

# A fake worker: it reads every frame keyd has sent so far before answering the oldest, so it
# can see what keyd keeps in flight. Its answers report what it saw in the `error` field.
FAKE = textwrap.dedent("""
    import json, select, socket, struct, sys, time
    mode, fd = sys.argv[1], int(sys.argv[2])
    delay = float(sys.argv[3])
    sock = socket.socket(fileno=fd)
    buf = b""
    queue = []
    def pump(block):
        global buf
        while True:
            ready, _, _ = select.select([sock], [], [], None if block and not queue else 0)
            if not ready:
                return
            data = sock.recv(65536)
            if not data:
                sys.exit(0)
            buf += data
            while len(buf) >= 4:
                (n,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + n:
                    break
                queue.append(json.loads(buf[4:4 + n]))
                buf = buf[4 + n:]
            block = False
    def send(obj):
        body = json.dumps(obj).encode()
        sock.sendall(struct.pack(">I", len(body)) + body)
    def answer(msg, note):
        if msg["t"] == "validate_tx":
            send({"t": "validate_result", "id": msg["id"], "messages": [], "error": note,
                  "learned": []})
        elif msg["t"] == "rule":
            send({"t": "rule_result", "id": msg["id"], "decision": None, "error": note})
        else:
            send({"t": "notify_done", "id": msg["id"], "error": note})
    pump(True)
    queue.pop(0)  # init
    send({"t": "ready"})
    while True:
        pump(True)
        if mode == "collect":
            # Before the first answer, wait (up to 2 s) until 5 requests are in flight.
            mode = "plain"
            until = time.monotonic() + 2
            while len(queue) < 5 and time.monotonic() < until:
                time.sleep(0.01)
                pump(False)
        time.sleep(delay)
        pump(False)
        head = queue[0]
        if mode == "reverse" and len(queue) > 1:
            head = queue[1]
        if mode == "storage" and head["t"] == "validate_tx":
            send({"t": "storage_get", "id": 1, "key": "k"})
        time.sleep(delay)
        pump(False)  # what arrived while "working" on the head
        kinds = ",".join(m["t"] for m in queue)
        queue.remove(head)
        answer(head, f"in flight: {kinds}")
""")


def fake(mode: str, delay: float, spawned: list[int]) -> Callable[[], WorkerProcess]:
    """A spawner for FAKE in the given mode."""

    def spawn() -> WorkerProcess:
        parent, child = socket.socketpair()
        log_r, log_w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", FAKE, mode, str(child.fileno()), str(delay)],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log_w, start_new_session=True)
        child.close()
        os.close(log_w)
        os.set_blocking(log_r, False)
        spawned.append(proc.pid)
        return WorkerProcess(role="policy", proc=proc, sock=parent, log_fd=log_r)

    return spawn


async def run_fake(mode: str, delay: float, body: Callable[[PolicyClient], Any],
                   timeout: float = 1.0) -> list[int]:
    """Run body(client) against the fake; return the pids spawned."""
    spawned: list[int] = []
    client = PolicyClient(ruleset="function ApproveTx(r) {}", storage=MemoryStorage(),
                          timeout=timeout, spawn=fake(mode, delay, spawned))
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        await body(client)
        nursery.cancel_scope.cancel()
    return spawned


async def test_validations_are_pipelined_and_answered_in_order() -> None:
    results: dict[int, Any] = {}

    async def body(client: PolicyClient) -> None:
        async def one(index: int) -> None:
            results[index] = await client.validate_tx(dict(TX, nonce=hex(index)), None, 1)

        async with trio.open_nursery() as nursery:
            for index in range(5):
                nursery.start_soon(one, index)

    spawned = await run_fake("collect", 0.0, body)
    # The fake saw all five in flight before it answered the first.
    assert [r.error for r in results.values()].count(
        "in flight: " + ",".join(["validate_tx"] * 5)) == 1
    assert all(r.error and r.error.startswith("in flight: validate_tx") for r in results.values())
    assert len(spawned) == 1


async def test_a_rule_call_is_never_in_flight_with_validations() -> None:
    notes: list[str | None] = []

    async def body(client: PolicyClient) -> None:
        async def validate() -> None:
            notes.append((await client.validate_tx(TX, None, 1)).error)

        async def rule() -> None:
            await trio.sleep(0.05)
            await client.rule("ApproveTx", {})  # the fake's note is logged, the decision None

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(validate)
            nursery.start_soon(rule)
            await trio.sleep(0.1)
            for _ in range(4):
                nursery.start_soon(validate)

    spawned = await run_fake("plain", 0.03, body)
    assert len(notes) == 8 and len(spawned) == 1
    # Whatever the fake held when it answered a validation, a rule was never among it: the
    # rule went alone, after the first validations drained and before the later ones.
    assert all(note is not None and "rule" not in note for note in notes)


async def test_rule_call_goes_alone(caplog: Any) -> None:
    async def body(client: PolicyClient) -> None:
        async def validate() -> None:
            await client.validate_tx(TX, None, 1)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(validate)
            await trio.sleep(0.02)
            nursery.start_soon(client.rule, "ApproveTx", {})
            await trio.sleep(0.02)
            for _ in range(3):
                nursery.start_soon(validate)

    await run_fake("plain", 0.03, body)
    notes = [r.getMessage() for r in caplog.records if "in flight" in r.getMessage()]
    assert notes == ["Rule-based approval error, going to manual: in flight: rule"]


async def test_out_of_order_answer_kills_the_worker() -> None:
    results: list[Any] = []

    async def body(client: PolicyClient) -> None:
        async def one() -> None:
            results.append(await client.validate_tx(TX, None, 1))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        with trio.fail_after(10):
            while client.restarts == 0:
                await trio.sleep(0.02)

    await run_fake("reverse", 0.02, body)
    assert [r.error for r in results] == [WORKER_UNAVAILABLE] * 3


async def test_storage_access_during_a_validation_kills_the_worker() -> None:
    results: list[Any] = []

    async def body(client: PolicyClient) -> None:
        results.append(await client.validate_tx(TX, None, 1))

    spawned = await run_fake("storage", 0.0, body)
    assert results[0].error == WORKER_UNAVAILABLE
    assert len(spawned) >= 1


async def test_a_caller_that_gives_up_does_not_kill_the_worker() -> None:
    results: list[Any] = []

    async def body(client: PolicyClient) -> None:
        pid = client.pid
        with trio.move_on_after(0.05):
            await client.validate_tx(TX, None, 1)  # the fake takes 0.2 s: abandoned
        results.append(await client.validate_tx(TX, None, 1))
        assert client.pid == pid and client.restarts == 0

    spawned = await run_fake("plain", 0.1, body)
    assert results[0].error is not None and results[0].error.startswith("in flight")
    assert len(spawned) == 1


async def test_each_request_has_its_own_deadline() -> None:
    # 8 answers of 0.4 s each: 3.2 s in all, more than one deadline (0.1 s + the grace), but
    # none of them takes longer than the deadline once the worker starts on it.
    results: list[Any] = []

    async def body(client: PolicyClient) -> None:
        async def one() -> None:
            results.append(await client.validate_tx(TX, None, 1))

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
        assert time.monotonic() - started > 0.1 + DEADLINE_GRACE
        assert client.restarts == 0

    spawned = await run_fake("plain", 0.2, body, timeout=0.1)
    assert len(results) == 8 and all(r.error != WORKER_UNAVAILABLE for r in results)
    assert len(spawned) == 1


async def test_real_worker_answers_concurrent_validations_each_for_its_own_tx(
        tmp_path: Path) -> None:
    cache = tmp_path / "4byte.cache"
    await trio.to_thread.run_sync(lambda: FourByteDB.open(cache).close())
    extra = ["--fourbyte", str(cache)]
    async with open_policy_client(ruleset=None, storage=MemoryStorage(),
                                  spawn=lambda: spawn_worker("policy", "policy.worker",
                                                             extra_args=extra)) as client:
        results: dict[int, Any] = {}

        async def one(index: int) -> None:
            # The zero address as recipient is a warning; the same tx to another address is not.
            tx = dict(TX, to="0x" + "00" * 20) if index % 2 else dict(TX)
            results[index] = await client.validate_tx(tx, None, 1)

        async with trio.open_nursery() as nursery:
            for index in range(40):
                nursery.start_soon(one, index)
    for index, result in results.items():
        texts = [m.message for m in result.messages]
        assert any("zero" in t.lower() for t in texts) == bool(index % 2), (index, texts)
