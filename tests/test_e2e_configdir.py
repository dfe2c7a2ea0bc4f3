"""End-to-end tests of the configdir (issue 6): the storage subcommands on the non-tty path, the
on-disk formats checked with an independent decoder (Cryptodome, written from the reference's
documented format), a reference configdir without a manifest (refused until `clef migrate`), and
stored credentials at run time (tampered, deleted with `clef delpw`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLEF, PASSWORD, Clef, ScriptedUI
from Cryptodome.Cipher import AES
from Cryptodome.Hash import keccak
from Cryptodome.Protocol.KDF import scrypt
from eth_account import Account

from clef.eth.address import to_checksum
from clef.uiclient import UIClient
from keyd.keystore import Keystore

ACCOUNT_PW = "account-password-42"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
TO = to_checksum(bytes.fromhex("07a565b7ed7d7a678680a4c162885bedbb695fe0"))
MASTER = "Master Password"
MIGRATE_HINT = "run `clef migrate`"

# Approves only when the rule storage holds what the reference clef wrote there: proves the
# reference jsstorage.json was adopted, not just tolerated.
RULES = """
function ApproveTx(r) { return storage.get("origin") == "geth" ? "Approve" : "Nope" }
"""


# --- an independent implementation of the reference's formats -----------------------------------


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Cryptodome's, not clef's)."""
    return keccak.new(digest_bits=256, data=data).digest()


def reference_seed_file(path: Path, seed: bytes, password: str) -> None:
    """masterseed.json as the reference writes it: V3 crypto (light scrypt), mode 0400."""
    salt, iv = os.urandom(32), os.urandom(16)
    derived = scrypt(password.encode(), salt, 32, N=4096, r=8, p=6)  # type: ignore[arg-type]
    assert isinstance(derived, bytes)
    ciphertext = AES.new(derived[:16], AES.MODE_CTR, initial_value=iv, nonce=b"").encrypt(seed)
    crypto = {"cipher": "aes-128-ctr", "ciphertext": ciphertext.hex(),
              "cipherparams": {"iv": iv.hex()}, "kdf": "scrypt",
              "kdfparams": {"dklen": 32, "n": 4096, "p": 6, "r": 8, "salt": salt.hex()},
              "mac": keccak256(derived[16:32] + ciphertext).hex()}
    path.write_text(json.dumps({"description": "Clef seed", "version": 1, "params": crypto},
                               separators=(",", ":")))
    path.chmod(0o400)


def decrypt_seed_file(path: Path, password: str) -> bytes:
    """Open masterseed.json with the reference's algorithm."""
    crypto = json.loads(path.read_text())["params"]
    params = crypto["kdfparams"]
    assert crypto["kdf"] == "scrypt" and crypto["cipher"] == "aes-128-ctr"
    derived = scrypt(password.encode(), bytes.fromhex(params["salt"]), params["dklen"],  # type: ignore[arg-type]
                     N=params["n"], r=params["r"], p=params["p"])
    assert isinstance(derived, bytes)
    ciphertext = bytes.fromhex(crypto["ciphertext"])
    assert keccak256(derived[16:32] + ciphertext).hex() == crypto["mac"]
    iv = bytes.fromhex(crypto["cipherparams"]["iv"])
    return AES.new(derived[:16], AES.MODE_CTR, initial_value=iv, nonce=b"").decrypt(ciphertext)


def vault_path(configdir: Path, seed: bytes) -> Path:
    """<configdir>/hex(keccak256("vault" ‖ seed)[:10])."""
    return configdir / keccak256(b"vault" + seed)[:10].hex()


def write_store(path: Path, store: str, seed: bytes, values: dict[str, str]) -> None:
    """A reference store: AES-256-GCM per entry, key = keccak256(name ‖ seed), AAD = entry key."""
    key = keccak256(store.encode() + seed)
    entries = {}
    for name, value in sorted(values.items()):
        nonce = os.urandom(12)
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
        cipher.update(name.encode())
        ciphertext, tag = cipher.encrypt_and_digest(value.encode())
        entries[name] = {"iv": base64.b64encode(nonce).decode(),
                         "c": base64.b64encode(ciphertext + tag).decode()}
    path.write_text(json.dumps(entries, separators=(",", ":"), sort_keys=True))
    path.chmod(0o600)


def read_store(path: Path, store: str, seed: bytes) -> dict[str, str]:
    """Decrypt every entry of a store file written by clef."""
    key = keccak256(store.encode() + seed)
    result = {}
    for name, entry in json.loads(path.read_text()).items():
        cipher = AES.new(key, AES.MODE_GCM, nonce=base64.b64decode(entry["iv"]))
        cipher.update(name.encode())
        raw = base64.b64decode(entry["c"])
        result[name] = cipher.decrypt_and_verify(raw[:-16], raw[-16:]).decode()
    return result


def mode(path: Path) -> int:
    """Permission bits of a path."""
    return stat.S_IMODE(path.stat().st_mode)


# --- CLI and clef helpers -------------------------------------------------------------------------


def cli(configdir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `clef --configdir <dir> --lightkdf <args>` with stdin piped (not a terminal)."""
    return subprocess.run([CLEF, "--configdir", str(configdir), "--lightkdf", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


class ConfigUI(ScriptedUI):
    """Master password for the seed prompt, ACCOUNT_PW for any other; approves transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.answers["ui_onInputRequired"] = lambda p: {
            "text": PASSWORD if p["title"] == MASTER else ACCOUNT_PW}


def tx(nonce: int) -> dict[str, str]:
    """A legacy transaction from ADDRESS."""
    return {"from": ADDRESS, "to": TO, "gas": "0x5208", "gasPrice": "0x1", "nonce": hex(nonce),
            "value": "0x1"}


def sign(clef: Clef, nonce: int) -> tuple[bool, bool]:
    """Sign tx(nonce) (asserting success); return (UI asked to approve, UI asked for password)."""
    requests_before = len(clef.client.requests)
    response = clef.rpc("account_signTransaction", tx(nonce))
    assert "result" in response, response
    assert Account.recover_transaction(response["result"]["raw"]) == ADDRESS
    new = list(clef.client.requests)[requests_before:]
    asked_approval = any(m == "ui_approveTx" for m, _ in new)
    asked_password = any(m == "ui_onInputRequired" and p["title"] == "Account password"
                         for m, p in new)
    return asked_approval, asked_password


def refused_start(tmp: Path, args: list[str]) -> tuple[int, str]:
    """Run clef that is expected to refuse to start; (exit code, stderr)."""
    err = tmp / "refused.stderr"
    with open(err, "wb") as stderr:
        client = UIClient([CLEF, "--stdio-ui", "--suppress-bootwarn", "--lightkdf",
                           "--ipcpath", str(tmp / "r.ipc"), "--auditlog", str(tmp / "r.log"),
                           "--4bytedb-custom", str(tmp / "4b.json"), *args],
                          ConfigUI(), stderr=stderr, cwd=str(tmp))
        client.start()
        assert client.proc is not None
        try:
            code = client.proc.wait(60)
        finally:
            client.close()
    return code, err.read_text(errors="replace")


# --- the subcommands on the non-tty path ----------------------------------------------------------


def test_init_attest_setpw_delpw_piped(tmp_path: Path) -> None:
    configdir = tmp_path / "config"
    for stdin, message in [("first-password-1\nsecond-password\n", "Passwords do not match"),
                           ("short\nshort\n", "invalid password: password too short"),
                           ("", "standard input closed")]:
        done = cli(configdir, "init", stdin=stdin)
        assert done.returncode != 0 and message in done.stderr, (stdin, done)
        assert not (configdir / "masterseed.json").exists()

    done = cli(configdir, "init", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    seed_file = configdir / "masterseed.json"
    assert f"A master seed has been generated into {seed_file}" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr  # piped secrets are not echoed
    assert mode(seed_file) == 0o400
    assert mode(configdir) == 0o700
    document = json.loads(seed_file.read_text())
    assert (document["description"], document["version"]) == ("Clef seed", 1)
    seed = decrypt_seed_file(seed_file, PASSWORD)
    assert len(seed) == 256

    before = seed_file.read_bytes()
    done = cli(configdir, "init", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.returncode != 0
    assert f"master key {seed_file} already exists, will not overwrite" in done.stderr
    assert seed_file.read_bytes() == before

    rules_hash = hashlib.sha256(b"function ApproveTx(){}").hexdigest()
    done = cli(configdir, "attest", rules_hash, stdin="not-the-password\n")
    assert done.returncode != 0
    assert "failed to decrypt the master seed of clef" in done.stderr
    done = cli(configdir, "attest", "xyz", stdin=f"{PASSWORD}\n")
    assert done.returncode != 0 and "invalid sha256" in done.stderr
    done = cli(configdir, "attest", rules_hash.upper(), stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Ruleset attestation updated sha256={rules_hash}" in done.stderr

    done = cli(configdir, "setpw", "0x1234")  # refused before anything is read
    assert done.returncode != 0 and "Invalid address specified: 0x1234" in done.stderr
    done = cli(configdir, "setpw", ADDRESS, stdin=f"{ACCOUNT_PW}\nsomething-else-1\n")
    assert done.returncode != 0 and "Passwords do not match" in done.stderr
    done = cli(configdir, "setpw", ADDRESS.lower(),
               stdin=f"{ACCOUNT_PW}\n{ACCOUNT_PW}\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Credential store updated set={ADDRESS}" in done.stderr
    assert ACCOUNT_PW not in done.stdout + done.stderr

    # The vault is in the reference's format: readable with the reference's algorithm.
    vault = vault_path(configdir, seed)
    assert mode(vault) == 0o700
    assert read_store(vault / "config.json", "config", seed) == {"ruleset_sha256": rules_hash}
    assert read_store(vault / "credentials.json", "credentials", seed) == {ADDRESS: ACCOUNT_PW}
    for name in ("config.json", "credentials.json", "manifest.json"):
        assert mode(vault / name) == 0o600, name

    done = cli(configdir, "delpw", ADDRESS, stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Credential store updated unset={ADDRESS}" in done.stderr
    assert read_store(vault / "credentials.json", "credentials", seed) == {}

    # The reference's permission check: a seed readable by others is refused.
    seed_file.chmod(0o644)
    done = cli(configdir, "attest", rules_hash, stdin=f"{PASSWORD}\n")
    assert done.returncode != 0
    assert f"file ({seed_file}) has insecure file permissions (-rw-r--r--)" in done.stderr


def test_signersecret_elsewhere_and_insecure_seed_at_start(tmp_path: Path) -> None:
    Keystore(tmp_path / "keystore", light=True).import_raw_key(KEY, ACCOUNT_PW)
    configdir = tmp_path / "config"
    secret = tmp_path / "secrets" / "seed.json"
    secret.parent.mkdir(mode=0o700)
    flag = ["--signersecret", str(secret)]
    rules_file = tmp_path / "rules.js"
    rules_file.write_text("function ApproveTx(r) { return 'Approve' }\n")
    assert cli(configdir, *flag, "init", stdin=f"{PASSWORD}\n{PASSWORD}\n").returncode == 0
    assert secret.exists() and not (configdir / "masterseed.json").exists()
    assert mode(secret) == 0o400
    digest = hashlib.sha256(rules_file.read_bytes()).hexdigest()
    assert cli(configdir, *flag, "attest", digest, stdin=f"{PASSWORD}\n").returncode == 0
    assert cli(configdir, *flag, "setpw", ADDRESS,
               stdin=f"{ACCOUNT_PW}\n{ACCOUNT_PW}\n{PASSWORD}\n").returncode == 0

    clef = Clef(tmp_path, [*flag, "--rules", str(rules_file)], ConfigUI())
    try:
        assert "Rule engine configured" in clef.stderr()
        assert sign(clef, 1) == (False, False)  # unattended
    finally:
        clef.close()

    secret.chmod(0o644)
    run = tmp_path / "run2"
    run.mkdir()
    clef = Clef(run, ["--configdir", str(configdir), "--keystore", str(tmp_path / "keystore"),
                      *flag, "--rules", str(rules_file)], ConfigUI())
    try:
        assert f"file ({secret}) has insecure file permissions (-rw-r--r--)" in clef.stderr()
        assert "Rule engine configured" not in clef.stderr()
        assert sign(clef, 2) == (True, True)  # no rules, no stored password: the UI does it all
    finally:
        clef.close()


# --- a configdir written by the reference ----------------------------------------------------------


@pytest.fixture
def reference_configdir(tmp_path: Path) -> tuple[Path, bytes, Path]:
    """tmp/config as the reference leaves it (no manifest.json), tmp/keystore, tmp/rules.js."""
    Keystore(tmp_path / "keystore", light=True).import_raw_key(KEY, ACCOUNT_PW)
    configdir = tmp_path / "config"
    configdir.mkdir(mode=0o700)
    seed = os.urandom(256)
    reference_seed_file(configdir / "masterseed.json", seed, PASSWORD)
    vault = vault_path(configdir, seed)
    vault.mkdir(mode=0o700)
    rules_file = tmp_path / "rules.js"
    rules_file.write_text(RULES)
    write_store(vault / "credentials.json", "credentials", seed, {ADDRESS: ACCOUNT_PW})
    write_store(vault / "config.json", "config", seed,
                {"ruleset_sha256": hashlib.sha256(RULES.encode()).hexdigest()})
    write_store(vault / "jsstorage.json", "jsstorage", seed, {"origin": "geth"})
    return configdir, seed, rules_file


def test_reference_configdir_refused_until_migrate(tmp_path: Path,
                                                   reference_configdir: tuple[Path, bytes, Path]
                                                   ) -> None:
    configdir, seed, rules_file = reference_configdir
    vault = vault_path(configdir, seed)
    originals = {p.name: p.read_bytes() for p in vault.iterdir()}

    # Operations on the vault are refused with the migrate advice; nothing is written.
    done = cli(configdir, "setpw", ADDRESS, stdin=f"{ACCOUNT_PW}\n{ACCOUNT_PW}\n{PASSWORD}\n")
    assert done.returncode != 0 and MIGRATE_HINT in done.stderr, done.stderr
    done = cli(configdir, "attest", "ab" * 32, stdin=f"{PASSWORD}\n")
    assert done.returncode != 0 and MIGRATE_HINT in done.stderr
    code, stderr = refused_start(tmp_path, ["--configdir", str(configdir), "--keystore",
                                            str(tmp_path / "keystore"), "--rules",
                                            str(rules_file), "--rules-required"])
    assert code != 0 and MIGRATE_HINT in stderr

    clef = Clef(tmp_path, ["--rules", str(rules_file)], ConfigUI())
    try:
        assert MIGRATE_HINT in clef.stderr()
        assert "Rule engine configured" not in clef.stderr()
        # Neither the rules nor the stored password are used: the UI approves and types it.
        assert sign(clef, 1) == (True, True)
    finally:
        clef.close()
    # Nothing adopted or rewritten (only the empty .lock flock target may appear).
    assert {p.name: p.read_bytes() for p in vault.iterdir() if p.name != ".lock"} == originals

    done = cli(configdir, "migrate", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert re.search(r"Vault migrated vault=\S+ counter=\d+ credentials=1 jsstorage=1 config=1",
                     done.stderr), done.stderr
    assert mode(vault / "manifest.json") == 0o600
    for name, content in originals.items():  # still readable by the reference clef
        assert (vault / name).read_bytes() == content, name

    run = tmp_path / "after"
    run.mkdir()
    extra = ["--configdir", str(configdir), "--keystore", str(tmp_path / "keystore"),
             "--rules", str(rules_file), "--rules-required"]
    clef = Clef(run, extra, ConfigUI())
    try:
        assert "Rule engine configured" in clef.stderr()
        # The reference's jsstorage entry approves; its stored password signs unattended.
        assert sign(clef, 2) == (False, False)

        # A tampered credential: the rule still approves, the password comes from the UI.
        credentials = vault / "credentials.json"
        good = credentials.read_bytes()
        entry = json.loads(good)[ADDRESS]
        forged = base64.b64encode(bytes([base64.b64decode(entry["c"])[0] ^ 1])
                                  + base64.b64decode(entry["c"])[1:]).decode()
        credentials.write_text(json.dumps({ADDRESS: {"iv": entry["iv"], "c": forged}},
                                          separators=(",", ":")))
        assert sign(clef, 3) == (False, True)
        credentials.write_bytes(good)
        assert sign(clef, 4) == (False, False)

        # `clef delpw` while clef runs: the next signature needs the UI's password.
        done = cli(configdir, "delpw", ADDRESS, stdin=f"{PASSWORD}\n")
        assert done.returncode == 0, done.stderr
        assert sign(clef, 5) == (False, True)
    finally:
        clef.close()


def test_migrate_refuses_a_tampered_reference_vault(
        reference_configdir: tuple[Path, bytes, Path]) -> None:
    configdir, seed, _ = reference_configdir
    vault = vault_path(configdir, seed)
    store = vault / "jsstorage.json"
    document: dict[str, Any] = json.loads(store.read_text())
    # Swap in the credentials entry's ciphertext: valid base64, wrong key and AAD.
    creds = json.loads((vault / "credentials.json").read_text())
    document["origin"] = creds[ADDRESS]
    store.write_text(json.dumps(document))
    done = cli(configdir, "migrate", stdin=f"{PASSWORD}\n")
    assert done.returncode != 0
    assert "jsstorage.json" in done.stderr and "failed authentication" in done.stderr
    assert not (vault / "manifest.json").exists()
    done = cli(configdir, "migrate", stdin="wrong-password-1\n")
    assert done.returncode != 0 and "failed to decrypt the master seed of clef" in done.stderr
