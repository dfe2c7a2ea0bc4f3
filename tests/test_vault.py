"""Vault: reference-format stores, manifest (rollback/deletion/truncation), crash recovery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest
from Cryptodome.Cipher import AES
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams, StorageTampered
from keyd import vault as vault_mod
from keyd.keycrypto import encrypt_crypto_json
from keyd.masterseed import load_master_seed
from keyd.vault import (
    CONFIG,
    CREDENTIALS,
    JSSTORAGE,
    MANIFEST,
    StoredEntry,
    Vault,
    VaultNeedsMigration,
    atomic_write,
    decode_store,
    encode_store,
    migrate_vault,
)

SEED = bytes((i * 7 + 3) % 256 for i in range(256))
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
SEED_PASSWORD = "seed password 123"


# -- an independent writer of the reference's formats (no project code) ------------------------


def ref_vault_dir(configdir: Path, seed: bytes) -> Path:
    return configdir / keccak(b"vault" + seed)[:10].hex()


def ref_key(name: str, seed: bytes) -> bytes:
    return keccak(name.encode() + seed)


def ref_encrypt(key: bytes, value: str, aad: str) -> dict[str, str]:
    nonce = os.urandom(12)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(aad.encode())
    ct, tag = cipher.encrypt_and_digest(value.encode())
    return {"iv": base64.b64encode(nonce).decode(), "c": base64.b64encode(ct + tag).decode()}


def ref_decrypt(key: bytes, entry: dict[str, str], aad: str) -> str:
    cipher = AES.new(key, AES.MODE_GCM, nonce=base64.b64decode(entry["iv"]))
    cipher.update(aad.encode())
    raw = base64.b64decode(entry["c"])
    plain: bytes = cipher.decrypt_and_verify(raw[:-16], raw[-16:])
    return plain.decode()


def ref_write_store(path: Path, key: bytes, values: dict[str, str]) -> None:
    data = {k: ref_encrypt(key, v, k) for k, v in values.items()}
    path.write_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    path.chmod(0o600)


def reference_configdir(tmp_path: Path) -> tuple[Path, bytes]:
    """A configdir as the reference clef leaves it after init, setpw, attest and rules runs."""
    configdir = tmp_path / "clef"
    configdir.mkdir(mode=0o700)
    seed = os.urandom(256)
    doc = {
        "description": "Clef seed",
        "version": 1,
        "params": encrypt_crypto_json(seed, SEED_PASSWORD, light=True),
    }
    seed_file = configdir / "masterseed.json"
    seed_file.write_text(json.dumps(doc, separators=(",", ":")))
    seed_file.chmod(0o400)
    vdir = ref_vault_dir(configdir, seed)
    vdir.mkdir(mode=0o700)
    ref_write_store(vdir / "credentials.json", ref_key("credentials", seed), {ADDRESS: "pw <&>"})
    ref_write_store(vdir / "config.json", ref_key("config", seed), {"ruleset_sha256": "AB" * 32})
    ref_write_store(vdir / "jsstorage.json", ref_key("jsstorage", seed), {"txs": "[1,2]"})
    return configdir, seed


def test_reference_configdir_is_read_after_migrate(tmp_path: Path) -> None:
    configdir, seed = reference_configdir(tmp_path)
    loaded = load_master_seed(configdir / "masterseed.json", SEED_PASSWORD)
    assert bytes(loaded) == seed
    with pytest.raises(VaultNeedsMigration) as info:
        Vault.open(configdir, loaded)
    assert "clef migrate" in str(info.value)
    report = migrate_vault(configdir, loaded)
    assert report.entries == {CREDENTIALS: 1, JSSTORAGE: 1, CONFIG: 1}
    assert report.vault == ref_vault_dir(configdir, seed)
    with Vault.open(configdir, loaded) as vault:
        assert vault.stored_password(ADDRESS.lower()) == "pw <&>"
        assert vault.attested_ruleset() == "ab" * 32  # the reference stored it verbatim
        assert vault.rule_storage().get("txs") == "[1,2]"
        vault.rule_storage().put("txs", "[1,2,3]")
        vault.set_password(ADDRESS, "new <pw>")
    # ... and what we write stays readable by the reference.
    vdir = ref_vault_dir(configdir, seed)
    creds = json.loads((vdir / "credentials.json").read_bytes())
    assert ref_decrypt(ref_key("credentials", seed), creds[ADDRESS], ADDRESS) == "new <pw>"
    js = json.loads((vdir / "jsstorage.json").read_bytes())
    assert ref_decrypt(ref_key("jsstorage", seed), js["txs"], "txs") == "[1,2,3]"


def test_store_file_format_is_gos(tmp_path: Path) -> None:
    entries = {
        "b<&>": StoredEntry(b"\x01" * 12, b"\x02" * 17),
        "a": StoredEntry(b"\x03" * 12, b"\x04" * 16),
    }
    raw = encode_store(entries)
    assert raw == (
        b'{"a":{"iv":"AwMDAwMDAwMDAwMD","c":"BAQEBAQEBAQEBAQEBAQEBA=="},'
        b'"b\\u003c\\u0026\\u003e":{"iv":"AQEBAQEBAQEBAQEB","c":"AgICAgICAgICAgICAgICAgI="}}'
    )
    assert decode_store(raw, "x") == entries
    assert encode_store({}) == b"{}"


@given(
    st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
        st.tuples(st.binary(min_size=12, max_size=12), st.binary(min_size=16, max_size=40)),
        max_size=6,
    )
)
@settings(max_examples=150, deadline=None)
def test_store_encoding_round_trips(values: dict[str, tuple[bytes, bytes]]) -> None:
    entries = {k: StoredEntry(iv, c) for k, (iv, c) in values.items()}
    raw = encode_store(entries)
    assert decode_store(raw, "x") == entries
    # The same bytes Python's JSON reader sees: a valid, sorted, compact object.
    assert list(json.loads(raw)) == sorted(entries)


@given(st.text(min_size=1, max_size=30), st.text(max_size=60))
@settings(max_examples=150, deadline=None)
def test_entry_encryption_round_trips(key: str, value: str) -> None:
    aes = bytes(32)
    try:
        entry = vault_mod.encrypt_entry(aes, value, key)
    except UnicodeEncodeError:
        return  # lone surrogates are refused before encryption in EncryptedStore.put
    assert vault_mod.decrypt_entry(aes, entry, key, "x") == value
    with pytest.raises(StorageTampered):
        vault_mod.decrypt_entry(aes, entry, key + "x", "x")


def test_fresh_vault_layout_and_permissions(tmp_path: Path) -> None:
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.path == ref_vault_dir(tmp_path, SEED)
        assert stat.S_IMODE(vault.path.stat().st_mode) == 0o700
        assert vault.stored_password(ADDRESS) is None
        assert vault.attested_ruleset() is None
        vault.set_password(ADDRESS, "pw")
        vault.attest("cd" * 32)
        vault.rule_storage().put("k", "v")
        for name in (CREDENTIALS, CONFIG, JSSTORAGE, MANIFEST):
            assert stat.S_IMODE((vault.path / name).stat().st_mode) == 0o600
        assert vault.counter == 3
        assert not list(vault.path.glob(".*.tmp"))


def test_seed_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="insufficient length"):
        Vault.open(tmp_path, b"\x00" * 32)


def test_encrypted_store_api(tmp_path: Path) -> None:
    with Vault.open(tmp_path, SEED) as vault:
        store = vault.jsstorage
        assert store.get("missing") is None
        store.put("κλειδί", "τιμή ✓")
        assert store.get("κλειδί") == "τιμή ✓"
        store.put("empty", "")
        assert store.get("empty") == ""  # an empty value is not absence
        assert store.keys() == ["empty", "κλειδί"]
        store.delete("κλειδί")
        store.delete("never there")
        assert store.get("κλειδί") is None
        for bad in ("", 5):
            with pytest.raises(InvalidParams):
                store.get(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidParams, match="value"):
            store.put("k", "x" * (vault_mod.MAX_VALUE_BYTES + 1))
        with pytest.raises(InvalidParams, match="unicode"):
            store.put("k", "\ud800")
        with pytest.raises(InvalidParams, match="Invalid address"):
            vault.stored_password("0x12")


def test_attest_normalises_and_validates(tmp_path: Path) -> None:
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.attest("AbCd" * 16) == "abcd" * 16
        assert vault.attested_ruleset() == "abcd" * 16
        assert vault.config.get("ruleset_sha256") == "abcd" * 16
        for bad in ("ab" * 31, "zz" * 32, "0x" + "ab" * 32, " " + "ab" * 32):
            with pytest.raises(InvalidParams):
                vault.attest(bad)


def test_rule_storage_semantics(tmp_path: Path) -> None:
    with Vault.open(tmp_path, SEED) as vault:
        rules = vault.rule_storage()
        assert rules.get("nothing") == ""
        rules.put("", "ignored")
        assert vault.jsstorage.keys() == []
        assert rules.get("") == ""
        rules.put("window", "[1]")
        assert rules.get("window") == "[1]"
        rules.put("window", "")
        assert vault.jsstorage.get("window") is None
        with pytest.raises(InvalidParams):
            rules.put("k", 1)  # type: ignore[arg-type]


# -- tampering --------------------------------------------------------------------------------


def populated(tmp_path: Path) -> Path:
    with Vault.open(tmp_path, SEED) as vault:
        vault.set_password(ADDRESS, "secret pw")
        vault.set_password("0x" + "11" * 20, "other pw")
        vault.attest("ab" * 32)
        vault.rule_storage().put("window", "[1,2,3]")
        return vault.path


def rewrite_entry(path: Path, mutate: object) -> None:
    data = json.loads(path.read_bytes())
    mutate(data)  # type: ignore[operator]
    path.write_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def flip_b64(text: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 1
    return base64.b64encode(bytes(raw)).decode()


TAMPERS = {
    "iv": lambda d: d[ADDRESS].__setitem__("iv", flip_b64(d[ADDRESS]["iv"])),
    "c": lambda d: d[ADDRESS].__setitem__("c", flip_b64(d[ADDRESS]["c"], 3)),
    "tag": lambda d: d[ADDRESS].__setitem__("c", flip_b64(d[ADDRESS]["c"], -1)),
    "key name": lambda d: d.__setitem__(ADDRESS.lower(), d.pop(ADDRESS)),
    "deleted entry": lambda d: d.pop(ADDRESS),
    "swapped values": lambda d: d.__setitem__(ADDRESS, d["0x" + "11" * 20]),
}


@pytest.mark.parametrize("how", sorted(TAMPERS))
def test_tampered_store_is_refused_at_open_and_at_runtime(tmp_path: Path, how: str) -> None:
    vdir = populated(tmp_path)
    with Vault.open(tmp_path, SEED) as vault:
        rewrite_entry(vdir / CREDENTIALS, TAMPERS[how])
        with pytest.raises(StorageTampered, match=r"credentials\.json"):
            vault.stored_password(ADDRESS)
        with pytest.raises(StorageTampered):
            vault.set_password(ADDRESS, "x")  # no write on top of a tampered store
        assert vault.attested_ruleset() == "ab" * 32  # other stores are unaffected
    with pytest.raises(StorageTampered, match=r"credentials\.json"):
        Vault.open(tmp_path, SEED)


def forge_manifest(vdir: Path, seed: bytes) -> None:
    """Re-authenticate the manifest over the current files (only the seed holder can)."""
    key = keccak(b"manifest" + seed)
    outer = json.loads((vdir / MANIFEST).read_bytes())
    body = outer["manifest"]
    for name in (CREDENTIALS, JSSTORAGE, CONFIG):
        body["stores"][name]["sha256"] = hashlib.sha256((vdir / name).read_bytes()).hexdigest()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    outer["mac"] = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    (vdir / MANIFEST).write_bytes(json.dumps(outer, sort_keys=True, separators=(",", ":")).encode())


@pytest.mark.parametrize("how", ["iv", "c", "tag", "key name", "swapped values"])
def test_aead_still_catches_tampering_behind_a_valid_manifest(tmp_path: Path, how: str) -> None:
    vdir = populated(tmp_path)
    rewrite_entry(vdir / CREDENTIALS, TAMPERS[how])
    forge_manifest(vdir, SEED)
    with Vault.open(tmp_path, SEED) as vault:
        if how == "key name":
            # The renamed entry fails under its new name; the old name is simply absent.
            with pytest.raises(StorageTampered, match="authentication"):
                vault.credentials.get(ADDRESS.lower())
        else:
            with pytest.raises(StorageTampered, match="authentication"):
                vault.stored_password(ADDRESS)


def test_rollback_of_one_store(tmp_path: Path) -> None:
    vdir = populated(tmp_path)
    old = (vdir / JSSTORAGE).read_bytes()
    with Vault.open(tmp_path, SEED) as vault:
        rules = vault.rule_storage()
        rules.put("window", "[1,2,3,4]")
        (vdir / JSSTORAGE).write_bytes(old)  # restore an older copy (rate-limit reset)
        with pytest.raises(StorageTampered, match=r"jsstorage\.json"):
            rules.get("window")
    with pytest.raises(StorageTampered, match=r"jsstorage\.json"):
        Vault.open(tmp_path, SEED)


@pytest.mark.parametrize(
    "damage", ["truncate", "empty", "delete", "garbage", "symlink", "directory"]
)
def test_damaged_store_file(tmp_path: Path, damage: str) -> None:
    vdir = populated(tmp_path)
    path = vdir / JSSTORAGE
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "delete":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"[" * 100000)
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        target = tmp_path / "elsewhere.json"
        target.write_bytes(data)
        path.unlink()
        path.symlink_to(target)
    with pytest.raises(StorageTampered):
        Vault.open(tmp_path, SEED)


def test_unexpected_store_file_is_refused(tmp_path: Path) -> None:
    with Vault.open(tmp_path, SEED) as vault:
        vault.set_password(ADDRESS, "pw")
        vdir = vault.path
    ref_write_store(vdir / JSSTORAGE, ref_key("jsstorage", SEED), {"window": "[]"})
    with pytest.raises(StorageTampered, match="records no such file"):
        Vault.open(tmp_path, SEED)


def test_manifest_tampering(tmp_path: Path) -> None:
    vdir = populated(tmp_path)
    manifest = vdir / MANIFEST
    original = manifest.read_bytes()
    manifest.write_bytes(original.replace(b'"counter":4', b'"counter":9', 1))
    with pytest.raises(StorageTampered, match="failed authentication"):
        Vault.open(tmp_path, SEED)
    manifest.write_bytes(b"{")
    with pytest.raises(StorageTampered, match="malformed"):
        Vault.open(tmp_path, SEED)
    manifest.unlink()
    # Deleting the manifest does not downgrade the vault to the unprotected reference mode.
    with pytest.raises(VaultNeedsMigration):
        Vault.open(tmp_path, SEED)


def test_manifest_from_another_seed_is_refused(tmp_path: Path) -> None:
    vdir = populated(tmp_path)
    other = bytes(256)
    (vdir / MANIFEST).write_bytes(
        vault_mod.encode_manifest(
            vault_mod.Manifest(0, {n: vault_mod.StoreState(0, None) for n in vault_mod.STORES}),
            vault_mod.manifest_key(other),
        )
    )
    with pytest.raises(StorageTampered, match="failed authentication"):
        Vault.open(tmp_path, SEED)


def test_whole_vault_rollback(tmp_path: Path) -> None:
    vdir = populated(tmp_path)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(vdir, snapshot)
    with Vault.open(tmp_path, SEED) as vault:
        vault.rule_storage().put("window", "[]")
        anchor = vault.counter
        # While running, keyd notices the manifest going back.
        shutil.rmtree(vdir)
        shutil.copytree(snapshot, vdir)
        with pytest.raises(StorageTampered, match="rolled back"):
            vault.rule_storage().get("window")
    # After a restart it cannot be told apart from the real thing (documented)...
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.rule_storage().get("window") == "[1,2,3]"
    # ... unless an anchor kept elsewhere is supplied.
    with pytest.raises(StorageTampered, match="rolled back"):
        Vault.open(tmp_path, SEED, min_counter=anchor)


def test_migrate_refuses_tampered_entries(tmp_path: Path) -> None:
    configdir, seed = reference_configdir(tmp_path)
    vdir = ref_vault_dir(configdir, seed)
    rewrite_entry(vdir / CREDENTIALS, TAMPERS["c"])
    with pytest.raises(StorageTampered, match="authentication"):
        migrate_vault(configdir, seed)
    assert not (vdir / MANIFEST).exists()


@pytest.mark.parametrize(
    "content",
    [
        b'{"\\ud800":{"iv":"AAAAAAAAAAAAAAAA","c":"AAAAAAAAAAAAAAAAAAAAAA=="}}',
        b'{"a":{"iv":"AAAA","c":"AAAAAAAAAAAAAAAAAAAAAA=="}}',
        b'{"a":{"iv":"AAAAAAAAAAAAAAAA","c":"AAAA"}}',
        b'{"a":{"iv":"AAAAAAAAAAAAAAAA","c":"not base64!"}}',
        b'{"a":{"iv":"AAAAAAAAAAAAAAAA"}}',
        b'{"a":1,"a":2}',
        b"\xff\xfe",
        b"[" * 100000,
    ],
)
def test_migrate_refuses_hostile_store_files(tmp_path: Path, content: bytes) -> None:
    vdir = ref_vault_dir(tmp_path, SEED)
    vdir.mkdir()
    (vdir / JSSTORAGE).write_bytes(content)
    with pytest.raises(StorageTampered):
        migrate_vault(tmp_path, SEED)
    assert not (vdir / MANIFEST).exists()


def test_deeply_nested_files_cannot_crash_the_parser(tmp_path: Path) -> None:
    # With a high recursion limit CPython's C JSON decoder overflows the C stack (a segfault)
    # long before RecursionError: nesting must be bounded before json.loads runs.
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        vdir = ref_vault_dir(tmp_path, SEED)
        vdir.mkdir()
        bomb = b"[" * 1_000_000
        (vdir / JSSTORAGE).write_bytes(bomb)
        with pytest.raises(StorageTampered, match="nested deeper"):
            migrate_vault(tmp_path, SEED)
        (vdir / JSSTORAGE).unlink()
        (vdir / MANIFEST).write_bytes(b'{"mac":' + b"[" * 60_000)
        with pytest.raises(StorageTampered, match="nested deeper"):
            Vault.open(tmp_path, SEED)
    finally:
        sys.setrecursionlimit(old_limit)


def test_migrate_readopts_files_changed_outside(tmp_path: Path) -> None:
    vdir = populated(tmp_path)
    ref_write_store(vdir / JSSTORAGE, ref_key("jsstorage", SEED), {"window": "[9]"})
    with pytest.raises(StorageTampered):
        Vault.open(tmp_path, SEED)
    report = migrate_vault(tmp_path, SEED)
    assert report.had_manifest and report.counter == 5
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.rule_storage().get("window") == "[9]"
        assert vault.counter == 5


# -- crashes and atomicity --------------------------------------------------------------------


def test_crash_before_store_write_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vdir = populated(tmp_path)
    real = vault_mod.atomic_write

    def crash_on_store(
        path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True
    ) -> None:
        if path.name == JSSTORAGE:
            raise OSError("simulated crash")
        real(path, data, mode, overwrite=overwrite)

    with Vault.open(tmp_path, SEED) as vault:
        monkeypatch.setattr(vault_mod, "atomic_write", crash_on_store)
        with pytest.raises(OSError, match="simulated"):
            vault.rule_storage().put("window", "[new]")
        monkeypatch.setattr(vault_mod, "atomic_write", real)
    assert json.loads((vdir / MANIFEST).read_bytes())["manifest"]["pending"] is not None
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.rule_storage().get("window") == "[1,2,3]"
        assert vault.counter == 5  # the abandoned intent still consumed its counter value
    assert json.loads((vdir / MANIFEST).read_bytes())["manifest"]["pending"] is None


def test_crash_after_store_write_rolls_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populated(tmp_path)
    real = Vault._write_manifest
    calls = {"n": 0}

    def crash_on_commit(self: Vault, manifest: vault_mod.Manifest) -> None:
        calls["n"] += 1
        if manifest.pending is None and calls["n"] > 1:
            raise OSError("simulated crash")
        real(self, manifest)

    with Vault.open(tmp_path, SEED) as vault:
        monkeypatch.setattr(Vault, "_write_manifest", crash_on_commit)
        with pytest.raises(OSError, match="simulated"):
            vault.rule_storage().put("window", "[new]")
        monkeypatch.setattr(Vault, "_write_manifest", real)
    with Vault.open(tmp_path, SEED) as vault:
        assert vault.rule_storage().get("window") == "[new]"
        assert vault.counter == 5


def test_pending_with_a_third_content_is_tampering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vdir = populated(tmp_path)
    real = vault_mod.atomic_write

    def crash_on_store(
        path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True
    ) -> None:
        if path.name == JSSTORAGE:
            raise OSError("simulated crash")
        real(path, data, mode, overwrite=overwrite)

    with Vault.open(tmp_path, SEED) as vault:
        monkeypatch.setattr(vault_mod, "atomic_write", crash_on_store)
        with pytest.raises(OSError):
            vault.rule_storage().put("window", "[new]")
    (vdir / JSSTORAGE).write_bytes(b"{}")
    with pytest.raises(StorageTampered, match=r"jsstorage\.json"):
        Vault.open(tmp_path, SEED)


@pytest.mark.parametrize("crash_in", ["write", "fsync", "rename"])
def test_atomic_write_leaves_old_file_on_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    target = tmp_path / "file.json"
    target.write_bytes(b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash")

    if crash_in == "write":
        monkeypatch.setattr(os, "write", boom)
    elif crash_in == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(Path, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]  # temp file cleaned up


def test_atomic_write_crash_after_rename_leaves_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.json"
    target.write_bytes(b"old")

    def boom(path: Path) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(vault_mod, "fsync_dir", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_atomic_write_new_file_and_no_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "seed.json"
    atomic_write(target, b"first", 0o400, overwrite=False)
    assert target.read_bytes() == b"first"
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    with pytest.raises(FileExistsError):
        atomic_write(target, b"second", 0o400, overwrite=False)
    assert target.read_bytes() == b"first"
    atomic_write(target, b"third", 0o600)
    assert target.read_bytes() == b"third"


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_threads_and_a_second_process_view(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with Vault.open(tmp_path, SEED) as daemon, Vault.open(tmp_path, SEED) as cli:
        # `cli` stands for `clef setpw` running while the daemon is up (same flock protocol).

        def writer(vault: Vault, prefix: str) -> None:
            try:
                for i in range(15):
                    vault.rule_storage().put(f"{prefix}{i}", str(i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=writer, args=(daemon, "a")),
            threading.Thread(target=writer, args=(daemon, "b")),
            threading.Thread(target=writer, args=(cli, "c")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert len(daemon.jsstorage.keys()) == 45
        cli.set_password(ADDRESS, "from cli")
        assert daemon.stored_password(ADDRESS) == "from cli"
        assert daemon.counter == 46


def test_closed_vault_refuses(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path, SEED)
    vault.close()
    with pytest.raises(StorageTampered, match="closed"):
        vault.stored_password(ADDRESS)
