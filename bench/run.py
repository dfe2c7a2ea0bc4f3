"""Signing throughput benchmark: the full pipeline over HTTP against eth-account in-process.

    .venv/bin/python bench/run.py           # full run (about a minute), figures for docs/performance.md
    .venv/bin/python bench/run.py --quick   # CI: proves the benchmark works; numbers not judged

Figures printed: signed tx/s over HTTP with 64 concurrent keep-alive clients (approvals supplied
instantly by a scripted stdio UI, --unlock-ttl on), its p50/p99 latency and CPU per request in
each clef process, eth-account's in-process sign_transaction rate and the ratio, rate and
latency with 1, 4 and 16 clients (less queueing), the 64-client load approved unattended by an
attested ruleset with a stored password, the rate with the key cache off (KDF-bound), the cold
start (command to HTTP port accepting) and the PSS of all clef processes at rest and after the
load.

The load generator runs in its own process and the scripted UI answers from one thread (several
answers per write when several prompts are waiting), so neither competes with the other for a
GIL; both still share the machine's cores with clef, as a real UI and client would.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PASSWORD = "bench-password-1"
MASTER_PASSWORD = "bench-master-password-1"
SENDER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
RECIPIENT = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
TX = {"from": SENDER, "to": RECIPIENT, "gas": "0x5208",
      "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x3b9aca00", "value": "0x1",
      "nonce": "0x0", "chainId": "0x1"}
# What an unattended deployment would attest: only this recipient, only small values.
RULES = """
function ApproveTx(r) {
  var tx = r.transaction;
  if (tx.to && tx.to.toLowerCase() == "@RECIPIENT@" && new BigNumber(tx.value).lt(1e18)) {
    return "Approve";
  }
  return "Reject";
}
function OnApprovedTx(r) {}
""".replace("@RECIPIENT@", RECIPIENT.lower())


def clef_bin() -> str:
    """The clef console script next to this interpreter (else the one on PATH)."""
    candidate = Path(sys.executable).parent / "clef"
    return str(candidate) if candidate.exists() else "clef"


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decide(method: str, params: dict[str, Any]) -> object:
    """The scripted user: approves everything at once, knows both passwords."""
    if method == "ui_approveTx":
        return {"approved": True, "transaction": params["transaction"]}
    if method == "ui_onInputRequired":
        return {"text": MASTER_PASSWORD if params.get("title") == "Master Password" else PASSWORD}
    if method == "ui_approveListing":
        return {"accounts": params["accounts"]}
    return {"approved": True}


class BenchUI:
    """A stdio UI that answers instantly: one reader thread, one write per batch of answers."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(  # nosec B603 - our own clef, fixed argv
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=str(cwd))
        self.started = threading.Event()
        self.errors: list[str] = []
        self.prompts: dict[str, int] = {}
        self._stderr: list[bytes] = []
        threading.Thread(target=self._answer_loop, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _answer_loop(self) -> None:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        out_fd, in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        buffer = b""
        while True:
            data = os.read(out_fd, 1 << 16)
            if not data:
                self.started.set()
                return
            *lines, buffer = (buffer + data).split(b"\n")
            answers = []
            for line in lines:
                if not line.strip():
                    continue
                msg = json.loads(line)
                method = msg.get("method")
                if method is None:
                    continue
                param = (msg.get("params") or [{}])[0]
                if "id" in msg:
                    self.prompts[method] = self.prompts.get(method, 0) + 1
                    answers.append(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                               "result": decide(method, param)}))
                elif method == "ui_onSignerStartup":
                    self.started.set()
                elif method == "ui_showError":
                    self.errors.append(str(param.get("text")))
            if answers:
                with contextlib.suppress(BrokenPipeError):
                    view = memoryview(("\n".join(answers) + "\n").encode())
                    while view:
                        view = view[os.write(in_fd, view):]

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-50]

    def stderr_tail(self) -> str:
        """The last lines clef logged (for error messages)."""
        return b"".join(self._stderr).decode("utf-8", "replace")

    def close(self) -> None:
        """Close clef's stdin (clef exits when its UI goes away) and reap it."""
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_clef(tmp: Path, port: int, extra: list[str]) -> tuple[BenchUI, float]:
    """Start clef with the bench UI; return it and the cold start (command -> HTTP accepting)."""
    argv = [clef_bin(), "--stdio-ui", "--suppress-bootwarn", "--http", "--http.port", str(port),
            "--keystore", str(tmp / "ks"), "--configdir", str(tmp / "cfg"),
            "--auditlog", str(tmp / "audit.log"), "--4bytedb-custom", str(tmp / "4b.json"),
            "--ipcdisable", "--loglevel", "2", *extra]
    t0 = time.perf_counter()
    ui = BenchUI(argv, tmp)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                break
        except OSError:
            if time.perf_counter() - t0 > 60 or ui.proc.poll() is not None:
                ui.close()
                raise RuntimeError(f"clef did not start:\n{ui.stderr_tail()}") from None
            time.sleep(0.002)
    cold = time.perf_counter() - t0
    if not ui.started.wait(30):
        raise RuntimeError("no ui_onSignerStartup")
    return ui, cold


# --- process accounting ---------------------------------------------------------------------


def clef_processes(root_pid: int) -> dict[int, str]:
    """keyd and its workers: {pid: role}."""
    found = {root_pid: "keyd"}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == root_pid:
            role = "net worker" if b"clef.net.worker" in cmdline else "policy worker"
            found[int(entry)] = role
    return found


def memory_kb(root_pid: int) -> tuple[int, int]:
    """(PSS, private) of keyd and its workers, in kB."""
    pss = private = 0
    for pid in clef_processes(root_pid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Pss":
                    pss += int(value.split()[0])
                elif name in ("Private_Clean", "Private_Dirty"):
                    private += int(value.split()[0])
        except OSError:
            pass
    return pss, private


def cpu_seconds(pids: dict[int, str]) -> dict[str, float]:
    """User+system CPU consumed so far, per role."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid, role in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


# --- load ---------------------------------------------------------------------------------


def load_child(port: int, clients: int, per_client: int) -> None:
    """--load-child: drive the HTTP load and print {"elapsed", "latencies"} as JSON.

    One thread, epoll, blocking sockets read only when readable: the lightest keep-alive client
    plain Python allows, so the harness takes as little of the shared cores as it can.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "account_signTransaction",
                       "params": [TX]}).encode()
    request = (f"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, list[Any]] = {}  # sock -> [remaining, buffer, sent at]
    cpu0 = os.times()
    t0 = time.perf_counter()
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state[sock] = [per_client, b"", time.perf_counter()]
        sock.sendall(request)
        selector.register(sock, selectors.EVENT_READ, sock)
    while state:
        for key, _ in selector.select():
            sock = key.data
            entry = state[sock]
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("clef closed a connection")
            entry[1] += data
            while True:
                buf = entry[1]
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                match = _CONTENT_LENGTH.search(buf, 0, end)
                length = int(match.group(1)) if match else 0
                if len(buf) < end + 4 + length:
                    break
                reply = buf[end + 4:end + 4 + length]
                entry[1] = buf[end + 4 + length:]
                if b'"raw"' not in reply:
                    raise RuntimeError(f"signing failed: {reply[:300]!r}")
                now = time.perf_counter()
                latencies.append(now - entry[2])
                entry[0] -= 1
                if entry[0] == 0:
                    selector.unregister(sock)
                    sock.close()
                    del state[sock]
                    break
                entry[2] = now
                sock.sendall(request)
    elapsed = time.perf_counter() - t0
    used = os.times()
    print(json.dumps({"elapsed": elapsed, "latencies": latencies,
                      "cpu": used.user - cpu0.user + used.system - cpu0.system}))


@dataclass
class Load:
    """The outcome of one load run."""

    rate: float
    latencies: list[float]
    cpu_ms: dict[str, float]  # CPU per request, per clef process role

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(ui: BenchUI, port: int, clients: int, per_client: int) -> Load:
    """Run the load generator in its own process; account the clef processes' CPU meanwhile."""
    pids = clef_processes(ui.proc.pid)
    before = cpu_seconds(pids)
    ours = os.times()
    done = subprocess.run(  # nosec B603 - this script, fixed argv
        [sys.executable, __file__, "--load-child", str(port), str(clients), str(per_client)],
        capture_output=True, text=True, check=False)
    after = cpu_seconds(pids)
    ours_after = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"load failed: {done.stderr[-2000:]}\nclef: {ui.stderr_tail()}")
    result = json.loads(done.stdout)
    count = len(result["latencies"])
    cpu = {role: 1000 * (after[role] - before.get(role, 0.0)) / count for role in after}
    # The harness: the load generator's CPU and the scripted UI's (this process, mostly idle).
    ui_cpu = (ours_after.user - ours.user) + (ours_after.system - ours.system)
    cpu["harness"] = 1000 * (result["cpu"] + ui_cpu) / count
    return Load(count / result["elapsed"], result["latencies"], cpu)


def eth_account_rate(seconds: float) -> float:
    """eth-account's Account.sign_transaction, in process, one core: signatures per second."""
    from eth_account import Account

    tx = {"to": RECIPIENT, "gas": 21000, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**9,
          "value": 1, "nonce": 0, "chainId": 1, "type": 2}
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        Account.sign_transaction(tx, KEY)
        n += 1
    return n / (time.perf_counter() - t0)


# --- set-up -------------------------------------------------------------------------------


def make_keystore(directory: Path, light: bool) -> None:
    """A keystore holding KEY under PASSWORD (standard or light scrypt)."""
    from keyd.keystore import Keystore

    Keystore(directory, light=light).import_raw_key(KEY, PASSWORD)


def clef_cli(configdir: Path, *args: str, stdin: str) -> None:
    """`clef --configdir DIR --lightkdf ARGS` with secrets piped on stdin (the non-tty path)."""
    done = subprocess.run(  # nosec B603 - our own clef, fixed argv
        [clef_bin(), "--configdir", str(configdir), "--lightkdf", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"clef {args[0]} failed: {done.stderr}")


def prepare_rules(tmp: Path) -> Path:
    """Master seed, attested ruleset and stored account password, set up with the real CLI."""
    configdir = tmp / "cfg"
    clef_cli(configdir, "init", stdin=f"{MASTER_PASSWORD}\n{MASTER_PASSWORD}\n")
    rules = tmp / "rules.js"
    rules.write_text(RULES)
    clef_cli(configdir, "attest", hashlib.sha256(RULES.encode()).hexdigest(),
             stdin=f"{MASTER_PASSWORD}\n")
    clef_cli(configdir, "setpw", SENDER.lower(),
             stdin=f"{PASSWORD}\n{PASSWORD}\n{MASTER_PASSWORD}\n")
    return rules


def unattended_load(ui: BenchUI, port: int, clients: int, per_client: int) -> Load:
    """The load with rules on; fails unless the ruleset and the stored password did all the
    approving (the UI is asked for nothing but the master password at start)."""
    run_load(ui, port, 1, 1)
    result = run_load(ui, port, clients, per_client)
    if set(ui.prompts) != {"ui_onInputRequired"} or ui.prompts["ui_onInputRequired"] != 1:
        raise RuntimeError(f"the rules run asked the UI: {ui.prompts}")
    return result


def machine() -> str:
    """CPU model, core count, Python and the load average when the run started."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average at start {load}")


def with_clef(tmp: Path, extra: list[str], body: Callable[[BenchUI, int], Any]) -> Any:
    """Start clef, run body(ui, port), stop clef."""
    port = free_port()
    ui, _ = start_clef(tmp, port, extra)
    try:
        return body(ui, port)
    finally:
        ui.close()


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    parser.add_argument("--load-child", nargs=3, type=int, metavar=("PORT", "CLIENTS", "PER"),
                        help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.load_child:
        load_child(*opts.load_child)
        return
    clients, per_client = (8, 4) if opts.quick else (64, 40)
    sequential = 20 if opts.quick else 500
    # Latency without the queueing 64 clients cause (Little's law: 64 / rate is their mean).
    sweep = [(1, sequential), (4, sequential // 4), (16, 2 * sequential // 16)]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        make_keystore(tmp / "ks", light=opts.quick)
        port = free_port()
        ui, cold = start_clef(tmp, port, ["--unlock-ttl", "600"])
        try:
            time.sleep(1.0)
            rest = memory_kb(ui.proc.pid)
            run_load(ui, port, 1, 1)  # decrypts once; later requests use the cached key
            loaded = run_load(ui, port, clients, per_client)
            after = memory_kb(ui.proc.pid)
            fewer = [run_load(ui, port, count, each) for count, each in sweep]
        finally:
            ui.close()
        rules = prepare_rules(tmp)
        unattended: Load = with_clef(
            tmp, ["--unlock-ttl", "600", "--rules", str(rules), "--rules-required"],
            lambda ui, port: unattended_load(ui, port, clients, per_client))
        kdf: Load = with_clef(tmp, [], lambda ui, port: run_load(ui, port, 2, 1 if opts.quick else 3))
    ref = eth_account_rate(0.5 if opts.quick else 3.0)
    cpu = loaded.cpu_ms
    print(f"pipeline (HTTP, {clients} keep-alive clients, stdio UI, --unlock-ttl): "
          f"{loaded.rate:8.1f} tx/s")
    print(f"  latency p50 / p99 at that load: {loaded.pct(0.5):.2f} / {loaded.pct(0.99):.2f} ms"
          f"  (target p99 <= 10 ms)")
    print(f"  CPU per request: keyd {cpu.get('keyd', 0):.2f} ms, net worker "
          f"{cpu.get('net worker', 0):.2f} ms, policy worker {cpu.get('policy worker', 0):.2f} ms"
          f" (harness: load generator + scripted UI {cpu.get('harness', 0):.2f} ms)")
    print(f"eth-account in-process sign_transaction:             {ref:8.1f} tx/s")
    print(f"ratio pipeline / eth-account:                        {loaded.rate / ref:8.3f}"
          f"  (target >= 0.5)")
    for (count, _), result in zip(sweep, fewer, strict=True):
        print(f"{count:2d} concurrent client{'s' if count > 1 else ' '}: {result.rate:7.1f} tx/s, "
              f"latency p50 / p99 {result.pct(0.5):.2f} / {result.pct(0.99):.2f} ms")
    print(f"unattended (attested rules + stored password, {clients} clients, --unlock-ttl): "
          f"{unattended.rate:8.1f} tx/s, p50 / p99 {unattended.pct(0.5):.2f} / "
          f"{unattended.pct(0.99):.2f} ms")
    print(f"key cache off (KDF-bound{', light KDF' if opts.quick else ''}):            "
          f"{kdf.rate:8.2f} tx/s")
    print(f"cold start (command -> HTTP accepting):              {cold:8.3f} s  (target <= 1.5 s)")
    print(f"PSS of all clef processes at rest:                   {rest[0] / 1024:8.1f} MB"
          f" (target <= 150 MB; private {rest[1] / 1024:.1f} MB)")
    print(f"PSS after the load:                                  {after[0] / 1024:8.1f} MB"
          f" (private {after[1] / 1024:.1f} MB)")


if __name__ == "__main__":
    main()
