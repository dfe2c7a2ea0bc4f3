"""End-to-end tests of attested rules (issue 6) through a running clef.

The configdir is set up with the real CLI (`clef init`, `clef attest`, `clef setpw`, secrets piped
on stdin: the non-tty path), then clef runs with `--rules` and a stdio UI that answers the Master
Password prompt. Requests come over HTTP/IPC; what the UI was (not) asked is read from its log.
eth-account checks every signature independently.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import CLEF, PASSWORD, SHARED, Clef, ScriptedUI
from eth_account import Account
from eth_account.messages import encode_defunct

from clef.eth.address import to_checksum
from clef.uiclient import UIClient
from keyd.keystore import Keystore

ACCOUNT_PW = "account-password-42"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
TO = to_checksum(bytes.fromhex("07a565b7ed7d7a678680a4c162885bedbb695fe0"))
ETHER = 10**18
MASTER = "Master Password"
SIGN_TEXT = b"hello from the rules"


def eip191(text: bytes) -> bytes:
    """The bytes a text/plain request shows the UI as raw_data (prefixed, as the reference)."""
    return b"\x19Ethereum Signed Message:\n%d" % len(text) + text


# One ruleset exercising every outcome, chosen by the transaction's value.
DISPATCH_RULES = r"""
function ApproveTx(r) {
  var v = r.transaction.value;
  if (v == "0x1") { return "Approve" }
  if (v == "0x2") { return "Reject" }
  if (v == "0x3") { return }
  if (v == "0x4") { throw new Error("boom") }
  if (v == "0x5") { while (true) {} }
  if (v == "0x6") { var a = []; while (true) { a.push(new Array(1000000).join("x") + a.length) } }
  if (v == "0x7") { return "approve" }
  if (v == "0x8") { return require("fs").readFileSync("/etc/passwd") ? "Approve" : "Approve" }
  if (v == "0x9") { return process.env.HOME ? "Approve" : "Approve" }
  if (v == "0xa") { return r.meta.scheme == "ipc" ? "Approve" : "Nope" }
  if (v == "0xb") { return storage.get("startup") != "" ? "Approve" : "Nope" }
  if (v == "0xc") { return JSON.parse(storage.Get("last")).raw.length > 2 ? "Approve" : "Nope" }
  return "Nope";
}
function ApproveSignData(r) {
  return r.content_type == "text/plain" && r.raw_data == "@SIGNED_TEXT@" ? "Approve" : "Nope"
}
function ApproveListing(r) { return "Approve" }
function OnSignerStartup(info) { storage.put("startup", JSON.stringify(info)) }
function OnApprovedTx(resp) { storage.Put("last", JSON.stringify(resp)) }
""".replace("@SIGNED_TEXT@", base64.b64encode(eip191(SIGN_TEXT)).decode())


def rate_limit_example() -> str:
    """Example 3 of the spec's overview, verbatim."""
    text = next((SHARED / "spec").glob("001_*.txt")).read_text()
    start = text.index("Example 3: a rate-limited window\n") + len(
        "Example 3: a rate-limited window\n")
    return text[start:text.index("A note about passwords...")]


# --- set-up through the real CLI ------------------------------------------------------------------


def cli(configdir: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """Run `clef --configdir <dir> --lightkdf <args>` with stdin piped (not a terminal)."""
    return subprocess.run([CLEF, "--configdir", str(configdir), "--lightkdf", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def prepare(tmp: Path, rules: str, *, attest: str | None = None) -> Path:
    """Keystore with KEY, `clef init`, `clef attest` (the rules' hash, or `attest`), `clef setpw`.

    Returns the rules file. Layout matches conftest.Clef(tmp): tmp/keystore, tmp/config.
    """
    Keystore(tmp / "keystore", light=True).import_raw_key(KEY, ACCOUNT_PW)
    configdir = tmp / "config"
    done = cli(configdir, "init", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert "A master seed has been generated into" in done.stdout
    rules_file = tmp / "rules.js"
    rules_file.write_text(rules)
    digest = hashlib.sha256(rules.encode()).hexdigest()
    done = cli(configdir, "attest", attest or digest, stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Ruleset attestation updated sha256={(attest or digest).lower()}" in done.stderr
    done = cli(configdir, "setpw", ADDRESS.lower(), stdin=f"{ACCOUNT_PW}\n{ACCOUNT_PW}\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Credential store updated set={ADDRESS}" in done.stderr
    return rules_file


class RulesUI(ScriptedUI):
    """Answers the master password, gives ACCOUNT_PW for any other prompt, denies transactions
    unless their nonce is in `approve`."""

    def __init__(self, master: str = PASSWORD) -> None:
        super().__init__()
        self.approve: set[int] = set()
        self.answers["ui_onInputRequired"] = lambda p: {
            "text": master if p["title"] == MASTER else ACCOUNT_PW}
        self.answers["ui_approveTx"] = lambda p: {
            "approved": int(p["transaction"]["nonce"], 16) in self.approve,
            "transaction": p["transaction"]}


def start(tmp: Path, rules_file: Path | None, ui: ScriptedUI | None = None,
          extra: list[str] | None = None) -> Clef:
    """Start clef on tmp's keystore/configdir, with --rules when given."""
    args = ["--rules", str(rules_file)] if rules_file is not None else []
    return Clef(tmp, args + (extra or []), ui or RulesUI())


def tx(nonce: int, value: int) -> dict[str, str]:
    """A legacy transaction from ADDRESS."""
    return {"from": ADDRESS, "to": TO, "gas": "0x5208", "gasPrice": "0x3b9aca00",
            "nonce": hex(nonce), "value": hex(value)}


def ui_tx_requests(clef: Clef, nonce: int) -> list[dict[str, Any]]:
    """The ui_approveTx requests the UI got for this nonce."""
    return [p for m, p in list(clef.client.requests)
            if m == "ui_approveTx" and int(p["transaction"]["nonce"], 16) == nonce]


def account_prompts(clef: Clef) -> list[dict[str, Any]]:
    """ui_onInputRequired requests other than the master password."""
    return [p for m, p in list(clef.client.requests)
            if m == "ui_onInputRequired" and p["title"] != MASTER]


def signed(response: dict[str, Any], nonce: int, value: int) -> str:
    """Assert a signed transaction from ADDRESS with these fields; return its raw hex."""
    assert "result" in response, response
    raw: str = response["result"]["raw"]
    assert Account.recover_transaction(raw) == ADDRESS
    fields = response["result"]["tx"]
    assert (int(fields["nonce"], 16), int(fields["value"], 16), int(fields["chainId"], 16)) == (
        nonce, value, 1)
    return raw


def denied(response: dict[str, Any]) -> None:
    """Assert the reference's denial."""
    assert response.get("error") == {"code": -32000, "message": "request denied"}, response


def wait_for_approved_tx(clef: Clef, raw: str) -> None:
    """ui_onApprovedTx for this raw transaction reaches the UI."""
    clef.client.wait_for("ui_onApprovedTx", lambda p: p["raw"] == raw, timeout=10)


def vault_dir(configdir: Path) -> Path:
    """The single vault directory (20 hex characters) in a configdir."""
    (found,) = [p for p in configdir.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f]{20}",
                                                                                p.name)]
    return found


# --- one clef with the dispatch ruleset -----------------------------------------------------------


@pytest.fixture(scope="module")
def rules_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clef, Path]]:
    """clef running with DISPATCH_RULES, attested in upper case, password stored with setpw."""
    tmp = tmp_path_factory.mktemp("rules")
    rules_file = prepare(tmp, DISPATCH_RULES,
                         attest=hashlib.sha256(DISPATCH_RULES.encode()).hexdigest().upper())
    instance = start(tmp, rules_file)
    yield instance, tmp
    instance.close()


@pytest.fixture(scope="module")
def rules_clef(rules_env: tuple[Clef, Path]) -> Clef:
    """The running clef of rules_env."""
    return rules_env[0]


NONCES = itertools.count(100)


def test_rules_enabled_with_uppercase_attestation(rules_clef: Clef) -> None:
    stderr = rules_clef.stderr()
    assert "Rule engine configured" in stderr
    assert "not attested" not in stderr
    # The master password was the first thing asked, before start-up was announced.
    assert [m for m, _ in rules_clef.client.log][:2] == ["ui_onInputRequired", "ui_onSignerStartup"]
    assert rules_clef.client.log[0][1]["title"] == MASTER


def test_approved_tx_is_signed_unattended_with_stored_password(rules_clef: Clef) -> None:
    nonce = next(NONCES)
    raw = signed(rules_clef.rpc("account_signTransaction", tx(nonce, 1)), nonce, 1)
    assert ui_tx_requests(rules_clef, nonce) == []
    assert account_prompts(rules_clef) == []
    # With rules active the UI still sees what was signed (the reference stopped forwarding it).
    wait_for_approved_tx(rules_clef, raw)
    # OnApprovedTx ran with the signed result: a later rule reads it back from storage.
    nonce = next(NONCES)
    signed(rules_clef.rpc("account_signTransaction", tx(nonce, 0xc)), nonce, 0xc)
    assert ui_tx_requests(rules_clef, nonce) == []


def test_reject_is_denied_without_asking_the_ui(rules_clef: Clef) -> None:
    nonce = next(NONCES)
    denied(rules_clef.rpc("account_signTransaction", tx(nonce, 2)))
    denied(rules_clef.rpc("account_signTransaction", tx(nonce, 2), via="ipc"))
    assert ui_tx_requests(rules_clef, nonce) == []


@pytest.mark.parametrize(("value", "why"), [
    (3, "undefined"), (4, "throws"), (5, "endless loop"), (6, "memory hog"),
    (7, "wrong case"), (8, "require"), (9, "process.env"), (0x10, "other string"),
])
def test_rule_without_decision_falls_through_to_the_ui(rules_clef: Clef, value: int,
                                                       why: str) -> None:
    nonce = next(NONCES)
    started = time.monotonic()
    denied(rules_clef.rpc("account_signTransaction", tx(nonce, value)))
    assert len(ui_tx_requests(rules_clef, nonce)) == 1, why
    # Bounded: 1 s per rule call plus keyd's 2 s grace before it kills a stuck worker.
    assert time.monotonic() - started < 10, why


def test_fall_through_then_ui_approval_signs_with_stored_password(rules_clef: Clef) -> None:
    nonce = next(NONCES)
    assert isinstance(rules_clef.ui, RulesUI)
    rules_clef.ui.approve.add(nonce)
    raw = signed(rules_clef.rpc("account_signTransaction", tx(nonce, 4)), nonce, 4)
    (request,) = ui_tx_requests(rules_clef, nonce)
    # The rule saw and the UI sees the same request object, as the caller sent it.
    assert request["transaction"]["from"] == ADDRESS
    assert request["meta"]["scheme"] == "HTTP/1.1"
    assert account_prompts(rules_clef) == []
    wait_for_approved_tx(rules_clef, raw)


def test_rules_see_meta_scheme(rules_clef: Clef) -> None:
    nonce = next(NONCES)
    signed(rules_clef.rpc("account_signTransaction", tx(nonce, 0xa), via="ipc"), nonce, 0xa)
    assert ui_tx_requests(rules_clef, nonce) == []
    denied(rules_clef.rpc("account_signTransaction", tx(nonce, 0xa), via="http"))
    assert len(ui_tx_requests(rules_clef, nonce)) == 1


def test_on_signer_startup_reached_the_rules(rules_clef: Clef) -> None:
    nonce = next(NONCES)
    signed(rules_clef.rpc("account_signTransaction", tx(nonce, 0xb)), nonce, 0xb)
    assert ui_tx_requests(rules_clef, nonce) == []


def test_sign_data_and_listing_approved_by_rules(rules_clef: Clef) -> None:
    message = SIGN_TEXT
    response = rules_clef.rpc("account_signData", "text/plain", ADDRESS, "0x" + message.hex())
    assert "result" in response, response
    recovered = Account.recover_message(encode_defunct(primitive=message),
                                        signature=response["result"])
    assert recovered == ADDRESS
    assert rules_clef.rpc("account_list")["result"] == [ADDRESS.lower()]
    methods = [m for m, _ in list(rules_clef.client.requests)]
    assert "ui_approveSignData" not in methods
    assert "ui_approveListing" not in methods
    assert account_prompts(rules_clef) == []
    # Other text goes to the UI (which approves); it sees raw_data as the rule did: base64.
    other = b"something else"
    response = rules_clef.rpc("account_signData", "text/plain", ADDRESS, "0x" + other.hex())
    assert Account.recover_message(encode_defunct(primitive=other),
                                   signature=response["result"]) == ADDRESS
    (request,) = [p for m, p in list(rules_clef.client.requests) if m == "ui_approveSignData"]
    assert base64.b64decode(request["raw_data"]) == eip191(other)
    assert [m for m, _ in list(rules_clef.client.requests)].count("ui_approveSignData") == 1


# --- rules that must not be enabled --------------------------------------------------------------


def test_tampered_rules_file_disables_rules(rules_env: tuple[Clef, Path],
                                            tmp_path: Path) -> None:
    _, shared = rules_env
    tampered = tmp_path / "rules.js"
    edited = DISPATCH_RULES.replace('return "Reject"', 'return "Approve"')
    assert edited != DISPATCH_RULES
    tampered.write_text(edited)
    clef = start(tmp_path, tampered, extra=["--configdir", str(shared / "config"),
                                            "--keystore", str(shared / "keystore")])
    try:
        assert re.search(r"Rule hash not attested, disabling hash=[0-9a-f]{64} attested=[0-9a-f]{64}",
                         clef.stderr())
        nonce = next(NONCES)
        denied(clef.rpc("account_signTransaction", tx(nonce, 1)))
        assert len(ui_tx_requests(clef, nonce)) == 1
        # The UI can still approve; the stored password is still usable without rules.
        assert isinstance(clef.ui, RulesUI)
        clef.ui.approve.add(nonce)
        signed(clef.rpc("account_signTransaction", tx(nonce, 2)), nonce, 2)
    finally:
        clef.close()


def run_until_exit(tmp: Path, args: list[str], ui: ScriptedUI) -> tuple[int, UIClient, str]:
    """Start clef expecting it to refuse to start; return (exit code, client, stderr)."""
    err = tmp / "refused.stderr"
    with open(err, "wb") as stderr:
        client = UIClient([CLEF, "--stdio-ui", "--suppress-bootwarn", "--lightkdf",
                           "--ipcpath", str(tmp / "r.ipc"), "--auditlog", str(tmp / "r.log"),
                           "--4bytedb-custom", str(tmp / "4b.json"), *args],
                          ui, stderr=stderr, cwd=str(tmp))
        client.start()
        assert client.proc is not None
        try:
            code = client.proc.wait(60)
        finally:
            client.close()
    return code, client, err.read_text(errors="replace")


def test_rules_required_refuses_to_start_with_tampered_rules(rules_env: tuple[Clef, Path],
                                                             tmp_path: Path) -> None:
    _, shared = rules_env
    tampered = tmp_path / "rules.js"
    tampered.write_text(DISPATCH_RULES + "// one more line\n")
    code, client, stderr = run_until_exit(tmp_path, [
        "--configdir", str(shared / "config"), "--keystore", str(shared / "keystore"),
        "--rules", str(tampered), "--rules-required"], RulesUI())
    assert code != 0
    assert "--rules-required" in stderr and "not attested" in stderr
    assert [m for m, _ in client.log] == ["ui_onInputRequired"]  # never announced start-up


def test_wrong_master_password_disables_rules(rules_env: tuple[Clef, Path],
                                              tmp_path: Path) -> None:
    _, shared = rules_env
    extra = ["--configdir", str(shared / "config"), "--keystore", str(shared / "keystore")]
    clef = start(tmp_path, shared / "rules.js", ui=RulesUI(master="not-the-master-pw"),
                 extra=extra)
    try:
        assert "failed to decrypt the master seed of clef" in clef.stderr()
        assert "Rule engine configured" not in clef.stderr()
        nonce = next(NONCES)
        assert isinstance(clef.ui, RulesUI)
        clef.ui.approve.add(nonce)
        # No rules: the UI decides; no stored credentials: the UI gives the account password.
        signed(clef.rpc("account_signTransaction", tx(nonce, 1)), nonce, 1)
        assert len(ui_tx_requests(clef, nonce)) == 1
        assert [p["title"] for p in account_prompts(clef)] == ["Account password"]
    finally:
        clef.close()
    sub = tmp_path / "required"
    sub.mkdir()
    code, _, stderr = run_until_exit(sub, [*extra, "--rules", str(shared / "rules.js"),
                                           "--rules-required"],
                                     RulesUI(master="not-the-master-pw"))
    assert code != 0
    assert "--rules-required" in stderr


def test_rules_without_attestation_are_disabled(tmp_path: Path) -> None:
    Keystore(tmp_path / "keystore", light=True).import_raw_key(KEY, ACCOUNT_PW)
    done = cli(tmp_path / "config", "init", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    rules_file = tmp_path / "rules.js"
    rules_file.write_text(DISPATCH_RULES)
    code, _, stderr = run_until_exit(tmp_path, [
        "--configdir", str(tmp_path / "config"), "--keystore", str(tmp_path / "keystore"),
        "--rules", str(rules_file), "--rules-required"], RulesUI())
    assert code != 0
    assert "attested=None" in stderr


# --- the spec's rate-limited window ---------------------------------------------------------------


def test_rate_limit_window_across_restart_and_storage_attacks(tmp_path: Path) -> None:
    rules_file = prepare(tmp_path, rate_limit_example())
    store = vault_dir(tmp_path / "config") / "jsstorage.json"
    clef = start(tmp_path, rules_file)
    try:
        signed(clef.rpc("account_signTransaction", tx(1, 4 * ETHER // 10)), 1, 4 * ETHER // 10)
        one_tx_history = store.read_bytes()
        manifest = store.with_name("manifest.json")
        one_tx_manifest = manifest.read_bytes()
        raw = signed(clef.rpc("account_signTransaction", tx(2, 4 * ETHER // 10)), 2,
                     4 * ETHER // 10)
        wait_for_approved_tx(clef, raw)
        # 0.8 + 0.4 ether would exceed the weekly 1 ether: the rule says "Nope", the UI decides.
        denied(clef.rpc("account_signTransaction", tx(3, 4 * ETHER // 10)))
        assert len(ui_tx_requests(clef, 3)) == 1
        assert ui_tx_requests(clef, 1) == ui_tx_requests(clef, 2) == []
    finally:
        clef.close()

    clef = start(tmp_path, rules_file)  # same configdir: the window survives the restart
    try:
        signed(clef.rpc("account_signTransaction", tx(4, ETHER // 10)), 4, ETHER // 10)
        denied(clef.rpc("account_signTransaction", tx(5, ETHER // 10)))  # 1.0 is not < 1 ether
        assert len(ui_tx_requests(clef, 5)) == 1
        assert ui_tx_requests(clef, 4) == []

        small = ETHER // 100  # fits the real window (0.9) and the rolled-back one (0.4)
        attacks: dict[str, Callable[[], object]] = {
            "rolled back": lambda: store.write_bytes(one_tx_history),
            # Consistent with its own (authentic) older manifest: keyd remembers the counter.
            "rolled back with the manifest": lambda: (store.write_bytes(one_tx_history),
                                                      manifest.write_bytes(one_tx_manifest)),
            "truncated": lambda: store.write_bytes(store.read_bytes()[:-7]),
            "emptied": lambda: store.write_bytes(b""),
            "entry removed": lambda: store.write_bytes(b"{}"),
            "value edited": lambda: store.write_bytes(flip_ciphertext(store.read_bytes())),
            "deleted": store.unlink,
        }
        nonce = 6
        for name, attack in attacks.items():
            current, current_manifest = store.read_bytes(), manifest.read_bytes()
            failures = clef.stderr().count("rule storage failure")
            attack()
            denied(clef.rpc("account_signTransaction", tx(nonce, small)))
            assert len(ui_tx_requests(clef, nonce)) == 1, f"{name}: the UI was not asked"
            assert clef.stderr().count("rule storage failure") > failures, name
            # Put the real file back: the rule works again (the failure was the tampering).
            store.write_bytes(current)
            manifest.write_bytes(current_manifest)
            os.chmod(store, 0o600)
            signed(clef.rpc("account_signTransaction", tx(nonce + 1, small)), nonce + 1, small)
            assert ui_tx_requests(clef, nonce + 1) == [], name
            nonce += 2
        assert "Rule-based approval error, going to manual" in clef.stderr()
        assert re.search(r"jsstorage\.json in vault \S+ does not match the manifest", clef.stderr())
        assert account_prompts(clef) == []
    finally:
        clef.close()


def flip_ciphertext(raw: bytes) -> bytes:
    """The store with one base64 character of its first ciphertext changed."""
    store = json.loads(raw)
    key = next(iter(store))
    c = store[key]["c"]
    store[key]["c"] = ("A" if c[0] != "A" else "B") + c[1:]
    return json.dumps(store, separators=(",", ":")).encode()


def test_concurrent_requests_cannot_overrun_the_window(tmp_path: Path) -> None:
    rules_file = prepare(tmp_path, rate_limit_example())
    clef = start(tmp_path, rules_file)
    value = 3 * ETHER // 10  # three fit in 1 ether, the fourth does not
    count = 8
    barrier = threading.Barrier(count)

    def send(nonce: int) -> dict[str, Any]:
        barrier.wait()
        return clef.rpc("account_signTransaction", tx(nonce, value))

    try:
        with ThreadPoolExecutor(count) as pool:
            responses = list(pool.map(send, range(count)))
        approved = [r for r in responses if "result" in r]
        assert len(approved) <= 3
        assert len(approved) == 3, responses  # serialised: the window is used up, not overrun
        for response in responses:
            if "error" in response:
                denied(response)
        asked = {int(p["transaction"]["nonce"], 16) for m, p in list(clef.client.requests)
                 if m == "ui_approveTx"}
        signed_nonces = {int(r["result"]["tx"]["nonce"], 16) for r in approved}
        assert asked == set(range(count)) - signed_nonces
        for response in approved:
            wait_for_approved_tx(clef, response["result"]["raw"])
    finally:
        clef.close()


def test_rules_file_replaced_with_copy_keeps_working(rules_env: tuple[Clef, Path],
                                                     tmp_path: Path) -> None:
    """The attestation is of the content, not the path: a byte-identical copy is enabled."""
    _, shared = rules_env
    copy = tmp_path / "elsewhere.js"
    shutil.copyfile(shared / "rules.js", copy)
    clef = start(tmp_path, copy, extra=["--configdir", str(shared / "config"),
                                        "--keystore", str(shared / "keystore")])
    try:
        assert "Rule engine configured" in clef.stderr()
        nonce = next(NONCES)
        signed(clef.rpc("account_signTransaction", tx(nonce, 1)), nonce, 1)
        assert ui_tx_requests(clef, nonce) == []
    finally:
        clef.close()
