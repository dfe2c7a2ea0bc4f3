"""Keystore directory: geth fixtures, eth-keyfile/eth-account oracles, rescans, atomic writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import DecryptError, SignerError, UnknownAccount
from clef.eth.address import to_checksum
from keyd import keystore as keystore_module
from keyd.keycrypto import encrypt_crypto_json_scrypt
from keyd.keystore import (
    MAX_KEY_FILE_BYTES,
    Account,
    Keystore,
    decrypt_key_json,
    key_file_name,
    private_key_to_address,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "conformance/geth/keystore"
EXPECTED: dict[str, Any] = json.loads((SHARED / "conformance/geth/expected.json").read_text())
V3 = json.loads((FIXTURES / "v3_test_vector.json").read_text())
CLI_KEY = bytes.fromhex(EXPECTED["clef_cli"]["private_key_file_content"])
CLI_ADDRESS = "0x9160DC9105f7De5dC5E7f3d97ef11DA47269BdA6"
AAA = bytes.fromhex("f466859ead1932d743d622cb74fc058882e8648a")
ZZZ = bytes.fromhex("289d485d9771714cce91d3393d764e1311907acc")
FILE_NAME = re.compile(r"UTC--\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{9}Z--[0-9a-f]{40}")


def _addr(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _copy_fixture_dir(tmp_path: Path) -> Path:
    target = tmp_path / "keystore"
    shutil.copytree(FIXTURES / "keystore", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return target


def _oracle_address(key: bytes | bytearray) -> bytes:
    return _addr(EthAccount.from_key(bytes(key)).address)


# -- scanning the geth fixture directory ------------------------------------------------------


def test_fixture_directory_loads_exactly_three_sorted() -> None:
    expected = EXPECTED["keystore"]["keystore/"]["loadable_accounts_sorted_by_url"]
    accounts = Keystore(FIXTURES / "keystore", light=True).accounts()
    assert [a.path.name for a in accounts] == [e["file"] for e in expected]
    assert [a.address for a in accounts] == [_addr(e["address"]) for e in expected]
    directory = (FIXTURES / "keystore").absolute()
    assert [a.url for a in accounts] == [f"keystore://{directory}/{e['file']}" for e in expected]
    assert accounts == sorted(accounts, key=lambda a: a.url)


def test_fixture_keys_decrypt_with_foobar() -> None:
    ks = Keystore(FIXTURES / "keystore", light=True)
    for account in ks.accounts():
        key = ks.decrypt_key(account.address, "foobar")
        assert len(key) == 32
        assert _oracle_address(key) == account.address
        with pytest.raises(DecryptError):
            ks.decrypt_key(account.address, "foobaz")


def test_scan_ignores_backup_symlink_fifo_oversized_and_garbage(tmp_path: Path) -> None:
    directory = _copy_fixture_dir(tmp_path)
    aaa = (directory / "aaa").read_bytes()
    (directory / "swapfile~").write_bytes(aaa)
    (directory / "link").symlink_to(directory / "zzz")
    (directory / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(directory / "fifo")
    document = json.loads(aaa)
    document["address"] = "11" * 20
    (directory / "huge").write_text(json.dumps(document) + " " * MAX_KEY_FILE_BYTES)
    (directory / "deep").write_text("[" * 100_000 + "]" * 100_000)
    (directory / "array").write_text("[1, 2]")
    (directory / "numaddr").write_text('{"address": 5}')
    (directory / "shortaddr").write_text('{"address": "abcd"}')
    (directory / "binary").write_bytes(b"\xff\xfe{" * 100)
    (directory / "unreadable").write_bytes(aaa)
    (directory / ".UTC--x.tmp123").write_bytes(aaa)
    accounts = Keystore(directory, light=True).accounts()
    assert [a.path.name for a in accounts] == [
        "UTC--2016-03-22T12-57-55.920751759Z--7ef5a6135f1fd6a02593eedc869c6d41d934aef8",
        "aaa",
        "unreadable",
        "zzz",
    ]


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "keystore/aaa").read_text())
    document["id"] = "[{" * 200 + '\\"' + "]}" * 200
    (tmp_path / "key").write_text(json.dumps(document))
    assert [a.address for a in Keystore(tmp_path, light=True).accounts()] == [AAA]


def test_deeply_nested_file_swapped_in_after_scan(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "keystore/aaa", tmp_path / "aaa")
    ks = Keystore(tmp_path, light=True, rescan_interval=3600)
    assert ks.accounts()
    (tmp_path / "aaa").write_text('{"a":' + "[" * 500_000 + "]" * 500_000 + "}")
    with pytest.raises(SignerError, match=r"^invalid keystore file: not JSON$"):
        ks.decrypt_key(AAA, "foobar")


def test_prefixed_address_accepted(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "keystore/aaa").read_text())
    document["address"] = "0x" + document["address"].upper()
    (tmp_path / "key").write_text(json.dumps(document))
    ks = Keystore(tmp_path, light=True)
    assert [a.address for a in ks.accounts()] == [AAA]
    assert _oracle_address(ks.decrypt_key(AAA, "foobar")) == AAA


def test_missing_directory_is_empty_then_appears(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "later", light=True, rescan_interval=0)
    assert ks.accounts() == []
    shutil.copytree(FIXTURES / "keystore", tmp_path / "later")
    assert len(ks.accounts()) == 3


def test_v1_key_file() -> None:
    info = EXPECTED["keystore"]["v1/cb61d5a9c4896fb9658090b597ef0e7be6f7b67e/"
                                "cb61d5a9c4896fb9658090b597ef0e7be6f7b67e"]
    ks = Keystore(FIXTURES / "v1/cb61d5a9c4896fb9658090b597ef0e7be6f7b67e", light=True)
    address = _addr(info["address"])
    assert [a.address for a in ks.accounts()] == [address]
    assert ks.decrypt_key(address, info["password"]).hex() == info["expected_private_key"]


def test_very_light_scrypt_file(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "very-light-scrypt.json", tmp_path / "key.json")
    info = EXPECTED["keystore"]["very-light-scrypt.json"]
    ks = Keystore(tmp_path, light=True)
    address = _addr(info["address"])
    assert _oracle_address(ks.decrypt_key(address, info["password"])) == address
    with pytest.raises(DecryptError):
        ks.decrypt_key(address, "bad")


# -- full key loading ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["31_byte_key", "30_byte_key"])
def test_short_keys_rejected_on_full_load(name: str) -> None:
    vector = V3[name]
    with pytest.raises(SignerError, match=r"^invalid length, need 256 bits$"):
        decrypt_key_json(vector["json"], vector["password"])


def test_pbkdf2_vector_full_load() -> None:
    vector = V3["wikipage_test_vector_pbkdf2"]
    address, key = decrypt_key_json(vector["json"], vector["password"])
    assert key.hex() == vector["priv"]
    derived = EXPECTED["keystore"]["v3_test_vector.json"]["derived_not_pinned_by_geth"]
    assert address == _addr(derived["address_of_wikipage_vectors"])
    assert address == _oracle_address(key)


@pytest.mark.parametrize(
    ("version", "shown"),
    [(2, "2"), ("3", "3"), (None, "0"), (True, "true"), ([3], "list"), (10**400, "(out of range)")],
)
def test_version_not_supported(version: Any, shown: str) -> None:
    document = json.loads((FIXTURES / "very-light-scrypt.json").read_text())
    if version is None:
        del document["version"]
    else:
        document["version"] = version
    with pytest.raises(SignerError, match=f"^version not supported: {re.escape(shown)}$"):
        decrypt_key_json(document, "")


def test_v3_crypto_capitalised_like_go() -> None:
    document = json.loads((FIXTURES / "very-light-scrypt.json").read_text())
    document["Crypto"] = document.pop("crypto")
    address, _ = decrypt_key_json(document, "")
    assert address.hex() == document["address"]


def test_key_content_mismatch(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "keystore/aaa").read_text())
    document["address"] = ZZZ.hex()
    (tmp_path / "liar").write_text(json.dumps(document))
    ks = Keystore(tmp_path, light=True)
    with pytest.raises(SignerError) as info:
        ks.decrypt_key(ZZZ, "foobar")
    assert info.value.message == f"key content mismatch: have account {AAA.hex()}, want {ZZZ.hex()}"


@pytest.mark.parametrize("key", [bytes(32), bytes.fromhex("ff" * 32)])
def test_out_of_range_key_in_file_rejected(tmp_path: Path, key: bytes) -> None:
    crypto = encrypt_crypto_json_scrypt(key, "pw", n=2, p=1)
    document = {"address": "11" * 20, "crypto": crypto, "id": str(uuid.uuid4()), "version": 3}
    with pytest.raises(SignerError, match="invalid private key"):
        decrypt_key_json(document, "pw")


def test_hostile_kdf_in_directory_is_clean_and_fast(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "keystore/aaa").read_text())
    document["crypto"]["kdfparams"]["n"] = 1 << 40
    (tmp_path / "hostile").write_text(json.dumps(document))
    ks = Keystore(tmp_path, light=True)
    started = time.monotonic()
    with pytest.raises(SignerError, match=r"crypto\.kdfparams\.n"):
        ks.decrypt_key(AAA, "foobar")
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("document", [[], "x", None, {"version": 3}, {"version": 3, "crypto": 1}])
def test_hostile_documents(document: Any) -> None:
    with pytest.raises(SignerError):
        decrypt_key_json(document, "pw")


# -- lookups ------------------------------------------------------------------------------


def test_unknown_account(tmp_path: Path) -> None:
    ks = Keystore(_copy_fixture_dir(tmp_path), light=True)
    with pytest.raises(UnknownAccount, match=r"^unknown account$"):
        ks.decrypt_key(b"\x12" * 20, "foobar")
    with pytest.raises(UnknownAccount):
        ks.export(b"\x12" * 20)


def test_duplicates_are_ambiguous(tmp_path: Path) -> None:
    directory = _copy_fixture_dir(tmp_path)
    shutil.copy(directory / "aaa", directory / "aaa2")
    ks = Keystore(directory, light=True)
    assert [a.address for a in ks.accounts()].count(AAA) == 2
    with pytest.raises(SignerError) as info:
        ks.decrypt_key(AAA, "foobar")
    files = f"{directory / 'aaa'}, {directory / 'aaa2'}"
    assert info.value.message == f"multiple keys match address ({files})"
    assert ks.decrypt_key(ZZZ, "foobar")


def test_export_returns_file_content(tmp_path: Path) -> None:
    directory = _copy_fixture_dir(tmp_path)
    ks = Keystore(directory, light=True)
    assert ks.export(AAA) == (directory / "aaa").read_text()


# -- live directory -----------------------------------------------------------------------


def test_files_added_and_removed_while_running(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True, rescan_interval=0.05)
    assert ks.accounts() == []
    shutil.copy(FIXTURES / "keystore/aaa", tmp_path / "aaa")
    time.sleep(0.06)
    assert [a.address for a in ks.accounts()] == [AAA]
    shutil.copy(FIXTURES / "keystore/zzz", tmp_path / "zzz")
    time.sleep(0.06)
    assert [a.address for a in ks.accounts()] == [AAA, ZZZ]
    (tmp_path / "aaa").unlink()
    time.sleep(0.06)
    assert [a.address for a in ks.accounts()] == [ZZZ]
    with pytest.raises(UnknownAccount):
        ks.decrypt_key(AAA, "foobar")


def test_file_rewritten_in_place_is_reparsed(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True, rescan_interval=0)
    target = tmp_path / "key"
    shutil.copy(FIXTURES / "keystore/aaa", target)
    assert [a.address for a in ks.accounts()] == [AAA]
    document = json.loads(target.read_text())
    document["address"] = "00" * 20
    target.write_text(json.dumps(document) + "\n")
    assert ks.accounts() == []


def test_listing_is_cached_between_rescans(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True, rescan_interval=3600)
    assert ks.accounts() == []
    shutil.copy(FIXTURES / "keystore/aaa", tmp_path / "aaa")
    assert ks.accounts() == []
    # A lookup for an address not yet seen rescans once, so a fresh file is not "unknown".
    assert ks.decrypt_key(AAA, "foobar")
    assert [a.address for a in ks.accounts()] == [AAA]
    assert [a.address for a in ks.refresh()] == [AAA]


def test_file_removed_after_scan_is_unknown(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "keystore/aaa", tmp_path / "aaa")
    ks = Keystore(tmp_path, light=True, rescan_interval=3600)
    assert ks.accounts()
    (tmp_path / "aaa").unlink()
    with pytest.raises(UnknownAccount):
        ks.decrypt_key(AAA, "foobar")


def test_file_swapped_for_symlink_after_scan_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ks"
    directory.mkdir()
    shutil.copy(FIXTURES / "keystore/aaa", directory / "aaa")
    shutil.copy(FIXTURES / "keystore/aaa", tmp_path / "elsewhere")
    ks = Keystore(directory, light=True, rescan_interval=3600)
    ks.accounts()
    (directory / "aaa").unlink()
    (directory / "aaa").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SignerError, match="cannot read key file"):
        ks.decrypt_key(AAA, "foobar")


# -- writing ------------------------------------------------------------------------------


def test_new_account_file(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "keystore"
    ks = Keystore(directory, light=True)
    before = datetime.now(UTC).replace(microsecond=0)
    account = ks.new_account("a password that is long")
    assert ks.accounts() == [account]
    assert account.path.parent == directory
    assert account.url == f"keystore://{account.path}"
    assert FILE_NAME.fullmatch(account.path.name)
    assert account.path.name.endswith(account.address.hex())
    stamp = datetime.strptime(account.path.name[5:24], "%Y-%m-%dT%H-%M-%S").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(account.path.stat().st_mode) == 0o600
    assert os.listdir(directory) == [account.path.name]
    raw = account.path.read_text()
    document = json.loads(raw)
    assert list(document) == ["address", "crypto", "id", "version"]
    assert raw == json.dumps(document, separators=(",", ":"))
    assert document["address"] == account.address.hex()
    assert document["version"] == 3
    assert uuid.UUID(document["id"]).version == 4
    assert document["crypto"]["kdfparams"]["n"] == 4096
    assert document["crypto"]["kdfparams"]["p"] == 6
    key = decode_keyfile_json(document, b"a password that is long")
    assert _oracle_address(key) == account.address
    assert ks.decrypt_key(account.address, "a password that is long") == key


def test_import_raw_key_cli_case(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True)
    account = ks.import_raw_key(CLI_KEY, "myverylongpassword")
    assert to_checksum(account.address) == CLI_ADDRESS
    assert ks.decrypt_key(account.address, "myverylongpassword") == CLI_KEY
    document = json.loads(account.path.read_text())
    assert decode_keyfile_json(document, b"myverylongpassword") == CLI_KEY
    with pytest.raises(SignerError, match=r"^account already exists$"):
        ks.import_raw_key(CLI_KEY, "another long password")
    assert len(os.listdir(tmp_path)) == 1


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"\x01" * 31, "invalid length, need 256 bits"),
        (b"\x01" * 33, "invalid length, need 256 bits"),
        (bytes(32), "invalid private key, zero or negative"),
        (bytes.fromhex("ff" * 32), "invalid private key, >=N"),
    ],
)
def test_import_raw_key_invalid(tmp_path: Path, key: bytes, message: str) -> None:
    ks = Keystore(tmp_path / "ks", light=True)
    with pytest.raises(SignerError, match=re.escape(message)):
        ks.import_raw_key(key, "myverylongpassword")
    assert not (tmp_path / "ks").exists()


@pytest.mark.parametrize(("kdf", "iterations"), [("scrypt", 1024), ("pbkdf2", 1000)])
def test_import_key_json_from_eth_keyfile(tmp_path: Path, kdf: Any, iterations: int) -> None:
    key = bytes(range(1, 33))
    document = create_keyfile_json(key, b"old password", kdf=kdf, iterations=iterations)
    ks = Keystore(tmp_path, light=True)
    account = ks.import_key_json(document, "old password", "new password!")
    assert account.address == _oracle_address(key)
    assert ks.decrypt_key(account.address, "new password!") == key
    with pytest.raises(DecryptError):
        ks.decrypt_key(account.address, "old password")
    with pytest.raises(SignerError, match=r"^account already exists$"):
        ks.import_key_json(document, "old password", "new password!")
    with pytest.raises(DecryptError):
        ks.import_key_json(document, "wrong", "new password!")


def test_eth_keyfile_file_in_directory(tmp_path: Path) -> None:
    key = bytes(range(2, 34))
    document = create_keyfile_json(key, b"oracle password", kdf="scrypt", iterations=1024)
    (tmp_path / "from-eth-keyfile.json").write_text(json.dumps(document))
    ks = Keystore(tmp_path, light=True)
    assert [a.address for a in ks.accounts()] == [_oracle_address(key)]
    assert ks.decrypt_key(_oracle_address(key), "oracle password") == key


def test_write_racing_a_scan_lists_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ks = Keystore(tmp_path, light=True, rescan_interval=3600)
    real = keystore_module._fsync_directory

    def scan_in_between(directory: Path) -> None:
        real(directory)
        ks.refresh()

    monkeypatch.setattr(keystore_module, "_fsync_directory", scan_in_between)
    account = ks.new_account("pw")
    assert ks.accounts() == [account]


def test_import_key_json_refuses_lying_address(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "keystore/aaa").read_text())
    document["address"] = ZZZ.hex()
    ks = Keystore(tmp_path, light=True)
    with pytest.raises(SignerError, match="key content mismatch"):
        ks.import_key_json(document, "foobar", "new password!")
    assert os.listdir(tmp_path) == []


def test_existing_directory_mode_kept(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    Keystore(tmp_path, light=True).new_account("pw")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o750


# -- crash safety -------------------------------------------------------------------------


def _boom(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(5, "simulated I/O error")


@pytest.mark.parametrize(
    "target",
    ["_verify_key_file", "encode_key_file", "os.fsync", "os.write", "_fsync_directory"],
)
def test_failure_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    ks = Keystore(tmp_path, light=True)
    if target.startswith("os."):
        monkeypatch.setattr(os, target[3:], _boom)
    else:
        monkeypatch.setattr(keystore_module, target, _boom)
    with pytest.raises(OSError, match="simulated"):
        ks.import_raw_key(CLI_KEY, "myverylongpassword")
    monkeypatch.undo()
    names = os.listdir(tmp_path)
    if target == "_fsync_directory":
        # The rename already happened: the complete, verified file is there.
        assert len(names) == 1 and FILE_NAME.fullmatch(names[0])
        assert ks.decrypt_key(private_key_to_address(CLI_KEY), "myverylongpassword") == CLI_KEY
    else:
        assert names == []
        assert ks.refresh() == []


def test_corrupt_encryption_caught_by_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = keystore_module.encode_key_file

    def corrupting(*args: Any, **kwargs: Any) -> bytes:
        document = json.loads(real(*args, **kwargs))
        document["crypto"]["ciphertext"] = "00" * 32
        return json.dumps(document).encode()

    monkeypatch.setattr(keystore_module, "encode_key_file", corrupting)
    ks = Keystore(tmp_path, light=True)
    with pytest.raises(DecryptError):
        ks.new_account("a password that is long")
    assert os.listdir(tmp_path) == []


def test_temp_file_is_hidden_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []
    real = keystore_module._verify_key_file

    def spying(raw: bytes, *args: Any) -> None:
        for name in os.listdir(tmp_path):
            seen.append((name, stat.S_IMODE((tmp_path / name).stat().st_mode)))
        real(raw, *args)

    monkeypatch.setattr(keystore_module, "_verify_key_file", spying)
    ks = Keystore(tmp_path, light=True)
    account = ks.import_raw_key(CLI_KEY, "myverylongpassword")
    assert len(seen) == 1
    name, mode = seen[0]
    assert re.fullmatch(re.escape(f".{account.path.name}.tmp") + "[0-9a-f]+", name)
    assert mode == 0o600


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_imports_of_one_key(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True)
    results: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            outcome: object = ks.import_raw_key(CLI_KEY, "myverylongpassword")
        except SignerError as exc:
            outcome = exc.message
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, Account) for r in results) == 1
    assert results.count("account already exists") == 3
    assert len(os.listdir(tmp_path)) == 1


def test_listing_while_writing(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, light=True, rescan_interval=0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def lister() -> None:
        while not stop.is_set():
            try:
                for account in ks.accounts():
                    assert FILE_NAME.fullmatch(account.path.name)
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=lister)
    thread.start()
    try:
        created = [ks.new_account("pw") for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert sorted(created, key=lambda a: a.url) == ks.accounts()


# -- pure helpers -------------------------------------------------------------------------


def test_account_validates() -> None:
    with pytest.raises(ValueError):
        Account(b"\x01" * 19, "keystore:///x", Path("/x"))
    with pytest.raises(ValueError):
        Account(b"\x01" * 20, "file:///x", Path("/x"))


@given(st.integers(0, 2**33 * 10**9), st.binary(min_size=20, max_size=20))
def test_key_file_name_format(time_ns: int, address: bytes) -> None:
    name = key_file_name(address, time_ns)
    assert FILE_NAME.fullmatch(name)
    when = datetime.fromtimestamp(time_ns // 10**9, UTC)
    assert name == f"UTC--{when:%Y-%m-%dT%H-%M-%S}.{time_ns % 10**9:09d}Z--{address.hex()}"


@settings(max_examples=50)
@given(st.integers(1, keystore_module._SECP256K1_N - 1))
def test_address_matches_eth_account(secret: int) -> None:
    key = secret.to_bytes(32, "big")
    assert private_key_to_address(key) == _oracle_address(key)
