"""End-to-end tests of the audit log (issue 6) through a running clef.

The hash chain is re-computed here independently (sha256 of the previous line's bytes); `clef
audit verify` is run as a user would. The kill -9 test fires a burst of signing requests over HTTP,
kills keyd mid-burst and checks that every signature a client received is in the log.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CLEF, PASSWORD, Clef, ScriptedUI
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from clef.eth.address import to_checksum
from keyd.keystore import Keystore

ACCOUNT_PW = "account-password-42"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
TO = to_checksum(bytes.fromhex("07a565b7ed7d7a678680a4c162885bedbb695fe0"))
MASTER = "Master Password"
GENESIS = "0" * 64
LINE = re.compile(r'time=\S+ level=INFO msg=(?P<msg>"[^"]*"|\S+) api=signer (?P<rest>.*) '
                  r"seq=(?P<seq>\d+) prev=(?P<prev>[0-9a-f]{64})\n")
TYPED = {
    "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                               {"name": "chainId", "type": "uint256"}],
              "Mail": [{"name": "contents", "type": "string"}]},
    "primaryType": "Mail",
    "domain": {"name": "audit test", "chainId": 1},
    "message": {"contents": "hello"},
}


class AuditUI(ScriptedUI):
    """Master password for the seed, ACCOUNT_PW otherwise; approves a tx unless its nonce is 13."""

    def __init__(self) -> None:
        super().__init__()
        self.answers["ui_onInputRequired"] = lambda p: {
            "text": PASSWORD if p["title"] == MASTER else ACCOUNT_PW}
        self.answers["ui_approveTx"] = lambda p: {
            "approved": p["transaction"]["nonce"] != "0xd", "transaction": p["transaction"]}


def tx(nonce: int) -> dict[str, str]:
    """A legacy transaction from ADDRESS."""
    return {"from": ADDRESS, "to": TO, "gas": "0x5208", "gasPrice": "0x1", "nonce": hex(nonce),
            "value": "0x1"}


def lines_of(path: Path) -> list[str]:
    """The log's lines, each with its newline."""
    return path.read_text().splitlines(keepends=True)


def check_chain(lines: list[str]) -> None:
    """Every line is chained: seq counts from 1, prev is sha256 of the previous line's bytes."""
    previous = GENESIS
    for index, line in enumerate(lines):
        match = LINE.fullmatch(line)
        assert match, line
        assert int(match["seq"]) == index + 1, line
        assert match["prev"] == previous, f"line {index + 1} is not chained to its predecessor"
        previous = hashlib.sha256(line.encode()).hexdigest()


def verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`clef audit verify FILE`."""
    return subprocess.run([CLEF, "audit", "verify", str(path), *extra],
                          capture_output=True, text=True, timeout=60, check=False)


def start(tmp: Path, *, seed: bool = True) -> Clef:
    """clef with KEY in its keystore (and a master seed, so the seed password is used too)."""
    Keystore(tmp / "keystore", light=True).import_raw_key(KEY, ACCOUNT_PW)
    if seed:
        done = subprocess.run([CLEF, "--configdir", str(tmp / "config"), "--lightkdf", "init"],
                              input=f"{PASSWORD}\n{PASSWORD}\n", capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    return Clef(tmp, [], AuditUI())


@pytest.fixture(scope="module")
def audit_clef(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """One clef for the read-mostly audit checks."""
    instance = start(tmp_path_factory.mktemp("audit"))
    yield instance
    instance.close()


def test_every_audited_call_leaves_request_and_response_lines(audit_clef: Clef) -> None:
    log = audit_clef.tmp / "audit.log"
    before = len(lines_of(log))

    assert audit_clef.rpc("account_version")["result"] == "6.1.0"
    assert audit_clef.rpc("account_list")["result"] == [ADDRESS.lower()]
    raw = audit_clef.rpc("account_signTransaction", tx(1))["result"]["raw"]
    assert Account.recover_transaction(raw) == ADDRESS
    assert audit_clef.rpc("account_signTransaction", tx(13))["error"]["message"] == "request denied"
    text = b"audited text"
    signature = audit_clef.rpc("account_signData", "text/plain", ADDRESS,
                               "0x" + text.hex(), via="ipc")["result"]
    assert Account.recover_message(encode_defunct(primitive=text), signature=signature) == ADDRESS
    typed_sig = audit_clef.rpc("account_signTypedData", ADDRESS, TYPED)["result"]
    assert Account.recover_message(encode_typed_data(full_message=TYPED),
                                   signature=typed_sig) == ADDRESS
    recovered = audit_clef.rpc("account_ecRecover", "0x" + text.hex(), signature)["result"]
    assert recovered.lower() == ADDRESS.lower()
    # Not audited, as the reference: account_new, and calls refused before any work.
    assert "result" in audit_clef.rpc("account_new")
    assert "error" in audit_clef.rpc("account_signTransaction")

    lines = lines_of(log)
    check_chain(lines)
    new = [LINE.fullmatch(line) for line in lines[before:]]
    assert all(new)
    pairs = [(m["msg"], re.match(r"type=(\w+)", m["rest"])[1])  # type: ignore[index]
             for m in new if m is not None]
    assert pairs == [(name, kind) for name in ("Version", "List", "SignTransaction",
                                               "SignTransaction", "SignData", "SignTypedData",
                                               "EcRecover")
                     for kind in ("request", "response")]
    rests = [m["rest"] for m in new if m is not None]
    assert rests[1] == "type=response data=6.1.0 error=<nil>"
    assert rests[3] == f"type=response data=[{ADDRESS}]"
    assert '"nonce\\":\\"0x1\\"' in rests[4] and "methodSelector=<nil>" in rests[4]
    assert rests[5] == f"type=response data={raw[2:]} error=<nil>"
    assert rests[7] == 'type=response data=<nil> error="request denied"'
    assert '\\"scheme\\":\\"ipc\\"' in rests[8] and "content-type=text/plain" in rests[8]
    assert rests[9] == f"type=response data={signature[2:]} error=<nil>"
    assert rests[11] == f"type=response data={typed_sig[2:]} error=<nil>"
    assert rests[13] == f"type=response address={ADDRESS} error=<nil>"

    done = verify(log)
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith(f"OK: {log}: {len(lines)} lines, hash chain intact")


def test_audit_log_mode_and_no_secrets(audit_clef: Clef) -> None:
    log = audit_clef.tmp / "audit.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "result" in audit_clef.rpc("account_signTransaction", tx(2))
    content = log.read_bytes()
    assert b"SignTransaction" in content
    secrets = [PASSWORD, ACCOUNT_PW, KEY.hex(), KEY.hex().upper(), KEY.hex()[8:40]]
    for secret in secrets:
        assert secret.encode() not in content, secret
        assert secret not in audit_clef.stderr(), secret


def test_verify_detects_edits_deletions_and_truncation(audit_clef: Clef, tmp_path: Path) -> None:
    assert "result" in audit_clef.rpc("account_version")
    lines = lines_of(audit_clef.tmp / "audit.log")
    assert len(lines) >= 5

    def verdict(name: str, content: str, *extra: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / name
        path.write_text(content)
        return verify(path, *extra)

    intact = verdict("intact.log", "".join(lines))
    assert intact.returncode == 0 and intact.stdout.startswith("OK:"), intact.stdout
    middle = len(lines) // 2
    edited = lines.copy()
    edited[middle] = edited[middle].replace("type=", "type=x", 1)
    assert edited[middle] != lines[middle]
    deleted = lines[:middle] + lines[middle + 1:]
    cut = "".join(lines)[:-(len(lines[-1]) // 2)]
    reordered = [*lines[:2], lines[3], lines[2], *lines[4:]]
    for name, content in [("edited", "".join(edited)), ("deleted", "".join(deleted)),
                          ("truncated", cut), ("reordered", "".join(reordered)),
                          ("beginning removed", "".join(lines[2:]))]:
        done = verdict(f"{name}.log", content)
        assert done.returncode == 1, (name, done.stdout)
        assert "FAILED" in done.stdout and "error:" in done.stdout, (name, done.stdout)
    missing = verify(tmp_path / "absent.log")
    assert missing.returncode == 2


def test_verify_with_anchor_detects_removed_trailing_lines(audit_clef: Clef,
                                                           tmp_path: Path) -> None:
    log = audit_clef.tmp / "audit.log"
    done = verify(log)
    head = re.search(r"^head: (\d+:[0-9a-f]{64})$", done.stdout, re.MULTILINE)
    assert head, done.stdout
    lines = lines_of(log)
    path = tmp_path / "shortened.log"
    path.write_text("".join(lines[:-2]))
    assert verify(path).returncode == 0  # a documented limit without an anchor
    anchored = verify(path, "--expect", head[1])
    assert anchored.returncode == 1, anchored.stdout + anchored.stderr


# --- crash safety ---------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether pid still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_during_burst_never_loses_an_acknowledged_line(tmp_path: Path) -> None:
    # A log the reference left behind (unchained, 0644): adopted, tightened, a new chain starts.
    log = tmp_path / "audit.log"
    reference_line = ('time=2024-01-01T00:00:00.000Z level=INFO msg=Configured api=signer '
                      f'"audit log"={log}\n')
    log.write_text(reference_line)
    log.chmod(0o644)
    clef = start(tmp_path, seed=False)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert lines_of(log)[0] == reference_line

    assert clef.client.proc is not None
    pid = clef.client.proc.pid
    workers = children(pid)
    assert len(workers) >= 2, workers  # the net and policy workers
    received: list[str] = []
    lock = threading.Lock()
    nonces = itertools.count(100)
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set():
            with lock:
                nonce = next(nonces)
            body = {"jsonrpc": "2.0", "id": nonce, "method": "account_signTransaction",
                    "params": [tx(nonce)]}
            try:
                status, data = clef.http(body, timeout=15)
                response: dict[str, Any] = json.loads(data) if status == 200 else {}
            except (OSError, http.client.HTTPException, ValueError):
                return  # keyd is gone
            if "result" in response:
                with lock:
                    received.append(response["result"]["raw"])

    threads = [threading.Thread(target=burst, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(received) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    clef.close()
    assert len(received) >= 25

    logged = set(re.findall(r"msg=SignTransaction api=signer type=response data=([0-9a-f]+) ",
                            log.read_text()))
    missing = [raw for raw in received if raw[2:] not in logged]
    assert missing == [], f"{len(missing)} signed responses without an audit line"
    requests = log.read_text().count("msg=SignTransaction api=signer type=request")
    assert requests >= len(logged) >= len(received)

    # The workers do not outlive keyd.
    deadline = time.monotonic() + 10
    while any(alive(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "a worker survived keyd"

    # After the crash the log is continued by the next start and still verifies.
    clef = Clef(tmp_path, [], AuditUI())
    try:
        assert clef.rpc("account_version")["result"] == "6.1.0"
    finally:
        clef.close()
    chained = [line for line in lines_of(log) if line != reference_line]
    check_chain(chained)
    assert "Audit chain start" in chained[0]
    done = verify(log)
    assert done.returncode == 0, done.stdout
    assert "warning:" in done.stdout  # the unchained reference line before the chain
