"""Signing throughput benchmark: the full pipeline over HTTP against eth-account in-process.

    .venv/bin/python bench/run.py           # full run (about a minute), figures for docs/performance.md
    .venv/bin/python bench/run.py --quick   # CI: proves the benchmark works; numbers not judged

Figures printed: signed tx/s over HTTP with 64 concurrent keep-alive clients (approvals and the
password supplied instantly by a scripted stdio UI, --unlock-ttl on), eth-account's in-process
sign_transaction rate, their ratio, p50/p99 latency, the rate with the key cache off (KDF-bound),
the cold start (command to HTTP port accepting) and the PSS of all clef processes at rest.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clef.uiclient import UIClient  # noqa: E402

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PASSWORD = "bench-password-1"
SENDER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
TX = {"from": SENDER, "to": "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192", "gas": "0x5208",
      "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x3b9aca00", "value": "0x1",
      "nonce": "0x0", "chainId": "0x1"}


def clef_bin() -> str:
    candidate = Path(sys.executable).parent / "clef"
    return str(candidate) if candidate.exists() else "clef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decide(method: str, params: dict) -> object:
    if method == "ui_approveTx":
        return {"approved": True, "transaction": params["transaction"]}
    if method == "ui_onInputRequired":
        return {"text": PASSWORD}
    if method == "ui_approveListing":
        return {"accounts": params["accounts"]}
    return {"approved": True}


def make_keystore(directory: Path, light: bool) -> None:
    from keyd.keystore import Keystore

    Keystore(directory, light=light).import_raw_key(KEY, PASSWORD)


def start_clef(tmp: Path, port: int, extra: list[str]) -> tuple[UIClient, float]:
    argv = [clef_bin(), "--stdio-ui", "--suppress-bootwarn", "--http", "--http.port", str(port),
            "--keystore", str(tmp / "ks"), "--configdir", str(tmp / "cfg"),
            "--auditlog", str(tmp / "audit.log"), "--4bytedb-custom", str(tmp / "4b.json"),
            "--loglevel", "2", *extra]
    t0 = time.perf_counter()
    ui = UIClient(argv, decide, stderr=subprocess.DEVNULL, cwd=str(tmp))
    ui.start()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                break
        except OSError:
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("clef did not start") from None
            time.sleep(0.005)
    cold = time.perf_counter() - t0
    ui.wait_started()
    return ui, cold


def pss_kb(root_pid: int) -> int:
    pids = [root_pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == root_pid:
                pids.append(int(entry))
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def client(port: int, requests: int, latencies: list[float], body: bytes) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = (f"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    buf = b""
    async with stream:
        for _ in range(requests):
            t0 = time.perf_counter()
            await stream.send_all(head + body)
            while b"\r\n\r\n" not in buf:
                buf += await stream.receive_some(65536)
            header, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(buf) < length:
                buf += await stream.receive_some(65536)
            reply, buf = buf[:length], buf[length:]
            if b'"raw"' not in reply:
                raise RuntimeError(f"signing failed: {reply[:300]!r}")
            latencies.append(time.perf_counter() - t0)


async def load(port: int, clients: int, per_client: int) -> tuple[float, list[float]]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "account_signTransaction",
                       "params": [TX]}).encode()
    latencies: list[float] = []
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client, port, per_client, latencies, body)
    elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, latencies


def eth_account_rate(seconds: float) -> float:
    from eth_account import Account

    tx = {"to": TX["to"], "gas": 21000, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**9,
          "value": 1, "nonce": 0, "chainId": 1, "type": 2}
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        Account.sign_transaction(tx, KEY)
        n += 1
    return n / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    opts = parser.parse_args()
    clients, per_client = (8, 4) if opts.quick else (64, 40)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        make_keystore(tmp / "ks", light=opts.quick)
        port = free_port()
        ui, cold = start_clef(tmp, port, ["--unlock-ttl", "600"])
        try:
            time.sleep(0.5)
            pss = pss_kb(ui.proc.pid) if ui.proc else 0
            trio.run(load, port, 1, 1)  # decrypts once; later requests use the cached key
            rate, lat = trio.run(load, port, clients, per_client)
        finally:
            ui.close()
        port2 = free_port()
        ui2, _ = start_clef(tmp, port2, [])
        try:
            kdf_rate, _ = trio.run(load, port2, 2, 1 if opts.quick else 2)
        finally:
            ui2.close()
    ref = eth_account_rate(0.5 if opts.quick else 3.0)
    print(f"pipeline (HTTP, {clients} keep-alive clients, --unlock-ttl): {rate:8.1f} tx/s")
    print(f"eth-account in-process sign_transaction:             {ref:8.1f} tx/s")
    print(f"ratio pipeline / eth-account:                        {rate / ref:8.3f}  (target >= 0.5)")
    print(f"latency p50 / p99:              {pct(lat, 0.5) * 1000:8.2f} / {pct(lat, 0.99) * 1000:.2f} ms"
          f"  (target p99 <= 10 ms)")
    print(f"key cache off (KDF-bound{', light KDF' if opts.quick else ''}):            "
          f"{kdf_rate:8.2f} tx/s")
    print(f"cold start (command -> HTTP accepting):              {cold:8.3f} s  (target <= 1.5 s)")
    print(f"PSS of all clef processes at rest:                   {pss / 1024:8.1f} MB (target <= 150 MB)")
    print(f"median latency: {statistics.median(lat) * 1000:.2f} ms over {len(lat)} requests")


if __name__ == "__main__":
    main()
