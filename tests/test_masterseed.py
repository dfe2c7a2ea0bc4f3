"""Master seed file (reference format, permissions, texts) and the storage admin commands."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from Cryptodome.Cipher import AES
from Cryptodome.Protocol.KDF import scrypt
from eth_keyfile.keyfile import decode_keyfile_json
from eth_utils.crypto import keccak

from clef.errors import InvalidParams, SignerError
from keyd import admin
from keyd.masterseed import (
    DECRYPT_FAILED,
    check_seed_file,
    create_master_seed,
    encode_seed_file,
    go_file_mode,
    load_master_seed,
    seed_path,
)
from keyd.vault import Vault, VaultNeedsMigration, vault_dir_name

PASSWORD = "correct horse battery"
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def reference_seed_file(seed: bytes, password: str) -> bytes:
    """masterseed.json as geth writes it with --lightkdf, built without project code."""
    salt, iv = os.urandom(32), os.urandom(16)
    dk = scrypt(password.encode(), salt, 32, 4096, 8, 6)  # type: ignore[arg-type]
    assert isinstance(dk, bytes)
    ciphertext = AES.new(dk[:16], AES.MODE_CTR, initial_value=iv, nonce=b"").encrypt(seed)
    params = {
        "cipher": "aes-128-ctr",
        "ciphertext": ciphertext.hex(),
        "cipherparams": {"iv": iv.hex()},
        "kdf": "scrypt",
        "kdfparams": {"dklen": 32, "n": 4096, "p": 6, "r": 8, "salt": salt.hex()},
        "mac": keccak(dk[16:32] + ciphertext).hex(),
    }
    doc = {"description": "Clef seed", "version": 1, "params": params}
    return json.dumps(doc, separators=(",", ":")).encode()


def test_create_and_load(tmp_path: Path) -> None:
    configdir = tmp_path / "clef"
    path = create_master_seed(configdir / "masterseed.json", PASSWORD, light=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE(configdir.stat().st_mode) == 0o700
    raw = path.read_bytes()
    doc = json.loads(raw)
    assert list(doc) == ["description", "version", "params"]
    assert doc["description"] == "Clef seed" and doc["version"] == 1
    assert doc["params"]["kdfparams"]["n"] == 4096 and doc["params"]["kdfparams"]["p"] == 6
    assert b": " not in raw and b", " not in raw  # compact, as Go writes it
    seed = load_master_seed(path, PASSWORD)
    assert len(seed) == 256
    # Independent oracle: eth-keyfile decrypts the same crypto object to the same bytes.
    oracle = decode_keyfile_json({"version": 3, "crypto": doc["params"]}, PASSWORD.encode())
    assert bytes(oracle) == bytes(seed)
    assert not list(configdir.glob(".*.tmp"))


def test_reference_seed_file_loads(tmp_path: Path) -> None:
    seed = os.urandom(256)
    path = tmp_path / "masterseed.json"
    path.write_bytes(reference_seed_file(seed, PASSWORD))
    path.chmod(0o400)
    assert bytes(load_master_seed(path, PASSWORD)) == seed


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = create_master_seed(tmp_path / "masterseed.json", PASSWORD, light=True)
    before = path.read_bytes()
    with pytest.raises(SignerError) as info:
        create_master_seed(path, PASSWORD, light=True)
    assert info.value.message == f"master key {path} already exists, will not overwrite"
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("mode", "shown"),
    [(0o440, "-r--r-----"), (0o600, "-rw-------"), (0o404, "-r-----r--"), (0o500, "-r-x------")],
)
def test_insecure_permissions_are_refused(tmp_path: Path, mode: int, shown: str) -> None:
    path = create_master_seed(tmp_path / "masterseed.json", PASSWORD, light=True)
    path.chmod(mode)
    with pytest.raises(SignerError) as info:
        load_master_seed(path, PASSWORD)
    assert info.value.message == f"file ({path}) has insecure file permissions ({shown})"


def test_missing_seed_file(tmp_path: Path) -> None:
    path = tmp_path / "masterseed.json"
    with pytest.raises(SignerError) as info:
        check_seed_file(path)
    assert info.value.message == (
        f"failed stat on {path}: stat {path}: no such file or directory"
    )


def test_wrong_password_and_garbage(tmp_path: Path) -> None:
    path = create_master_seed(tmp_path / "masterseed.json", PASSWORD, light=True)
    with pytest.raises(SignerError) as info:
        load_master_seed(path, "wrong password")
    assert info.value.message == DECRYPT_FAILED
    garbage_files = (b"x", b"[]", b'{"params":{"kdf":"scrypt"}}', b'{"params":7}', b"[" * 60000)
    for garbage in garbage_files:
        path.chmod(0o600)
        path.write_bytes(garbage)
        path.chmod(0o400)
        with pytest.raises(SignerError) as info:
            load_master_seed(path, PASSWORD)
        assert info.value.message == DECRYPT_FAILED


def test_hostile_kdf_parameters_fail_fast(tmp_path: Path) -> None:
    path = tmp_path / "masterseed.json"
    doc = json.loads(encode_seed_file(bytes(256), PASSWORD, light=True))
    doc["params"]["kdfparams"]["n"] = 1 << 30  # would need 128 GiB
    path.write_text(json.dumps(doc))
    path.chmod(0o400)
    with pytest.raises(SignerError, match=DECRYPT_FAILED):
        load_master_seed(path, PASSWORD)


def test_short_seed(tmp_path: Path) -> None:
    path = tmp_path / "masterseed.json"
    path.write_bytes(reference_seed_file(os.urandom(255), PASSWORD))
    path.chmod(0o400)
    with pytest.raises(SignerError) as info:
        load_master_seed(path, PASSWORD)
    assert info.value.message == "master seed of insufficient length, expected >255 bytes, got 255"


def test_unknown_version_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "masterseed.json"
    doc = json.loads(reference_seed_file(bytes(256), PASSWORD))
    doc["version"] = 2
    path.write_text(json.dumps(doc))
    path.chmod(0o400)
    assert bytes(load_master_seed(path, PASSWORD)) == bytes(256)
    assert "unsupported encryption format of seed" in caplog.text


def test_go_file_mode() -> None:
    assert go_file_mode(stat.S_IFREG | 0o644) == "-rw-r--r--"
    assert go_file_mode(stat.S_IFDIR | 0o700) == "drwx------"
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == "urwxr-xr-x"
    assert go_file_mode(stat.S_IFCHR | 0o666) == "Dcrw-rw-rw-"
    assert go_file_mode(stat.S_IFIFO | 0o600) == "prw-------"


def test_seed_path(tmp_path: Path) -> None:
    assert seed_path(tmp_path) == tmp_path / "masterseed.json"
    assert seed_path(tmp_path, "/elsewhere/seed.json") == Path("/elsewhere/seed.json")


# -- admin operations -------------------------------------------------------------------------


def test_admin_init_and_operations(tmp_path: Path) -> None:
    configdir = tmp_path / "clef"
    result = admin.init(configdir, PASSWORD, light=True)
    location = configdir / "masterseed.json"
    assert result.message.startswith(f"A master seed has been generated into {location}\n")
    assert "You should treat 'masterseed.json' with utmost secrecy" in result.message
    with pytest.raises(SignerError, match="already exists, will not overwrite"):
        admin.init(configdir, PASSWORD, light=True)

    digest = "AB" * 32
    attested = admin.attest(configdir, PASSWORD, digest)
    assert attested.text() == f"Ruleset attestation updated sha256={digest.lower()}"

    setpw = admin.setpw(configdir, PASSWORD, ADDRESS.lower()[2:], "keystore pw")
    assert setpw.text() == f"Credential store updated set={ADDRESS}"

    seed = load_master_seed(location, PASSWORD)
    with Vault.open(configdir, seed) as vault:
        assert vault.attested_ruleset() == digest.lower()
        assert vault.stored_password(ADDRESS) == "keystore pw"
        assert stat.S_IMODE(vault.path.stat().st_mode) == 0o700

    assert admin.delpw(configdir, PASSWORD, ADDRESS).text() == (
        f"Credential store updated unset={ADDRESS}"
    )
    with Vault.open(configdir, seed) as vault:
        assert vault.stored_password(ADDRESS) is None


def test_admin_errors(tmp_path: Path) -> None:
    configdir = tmp_path / "clef"
    with pytest.raises(InvalidParams) as info:
        admin.init(configdir, "short", light=True)
    assert info.value.message == "invalid password: password too short (<10 characters)"
    assert not (configdir / "masterseed.json").exists()
    admin.init(configdir, PASSWORD, light=True)
    with pytest.raises(InvalidParams) as info:
        admin.setpw(configdir, PASSWORD, "0x1234", "pw")
    assert info.value.message == "Invalid address specified: 0x1234"
    with pytest.raises(InvalidParams, match="invalid sha256"):
        admin.attest(configdir, PASSWORD, "not-a-hash")
    with pytest.raises(SignerError) as failed:
        admin.attest(configdir, "wrong password", "ab" * 32)
    assert failed.value.message == DECRYPT_FAILED


def test_admin_signersecret_elsewhere(tmp_path: Path) -> None:
    configdir = tmp_path / "clef"
    secret = tmp_path / "secrets" / "seed.json"
    admin.init(configdir, PASSWORD, light=True, signersecret=str(secret))
    assert secret.exists() and not (configdir / "masterseed.json").exists()
    admin.setpw(configdir, PASSWORD, ADDRESS, "pw1", signersecret=str(secret))
    seed = load_master_seed(secret, PASSWORD)
    assert (configdir / vault_dir_name(seed)).is_dir()


def test_admin_migrate(tmp_path: Path) -> None:
    configdir = tmp_path / "clef"
    admin.init(configdir, PASSWORD, light=True)
    admin.setpw(configdir, PASSWORD, ADDRESS, "pw1")
    seed = load_master_seed(configdir / "masterseed.json", PASSWORD)
    vault_dir = configdir / vault_dir_name(seed)
    (vault_dir / "manifest.json").unlink()  # as in a reference configdir
    with pytest.raises(VaultNeedsMigration, match="clef migrate"):
        admin.setpw(configdir, PASSWORD, ADDRESS, "pw2")
    result = admin.migrate(configdir, PASSWORD)
    assert result.message == "Vault migrated"
    assert dict(result.fields)["credentials"] == "1"
    assert admin.migrate(configdir, PASSWORD).message == "Vault manifest re-created"
    admin.setpw(configdir, PASSWORD, ADDRESS, "pw2")
