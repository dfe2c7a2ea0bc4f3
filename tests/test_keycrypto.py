"""Web3 Secret Storage `crypto` objects: geth vectors, eth-keyfile as oracle, hostile input."""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ClefError, DecryptError, InvalidParams, SignerError
from clef.eth.hashing import keccak256
from keyd import keycrypto
from keyd.keycrypto import (
    decrypt_crypto_json,
    decrypt_crypto_v1,
    encrypt_crypto_json,
    encrypt_crypto_json_scrypt,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
KEYSTORE = SHARED / "conformance/geth/keystore"
V3 = json.loads((KEYSTORE / "v3_test_vector.json").read_text())
V1 = json.loads((KEYSTORE / "v1_test_vector.json").read_text())
VERY_LIGHT = json.loads((KEYSTORE / "very-light-scrypt.json").read_text())


def _tiny(secret: bytes = b"\x11" * 32, password: str = "pw") -> dict[str, Any]:
    return encrypt_crypto_json_scrypt(secret, password, n=2, p=1)


# -- geth vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(V3))
def test_v3_vectors(name: str) -> None:
    vector = V3[name]
    key = decrypt_crypto_json(vector["json"]["crypto"], vector["password"])
    assert isinstance(key, bytearray)
    assert key.hex() == vector["priv"]


def test_v3_short_keys_decrypt_to_short_plaintext() -> None:
    # The crypto layer returns what is there; the key layer (keystore) rejects non-32-byte keys.
    assert len(decrypt_crypto_json(V3["31_byte_key"]["json"]["crypto"], "foo")) == 31
    assert len(decrypt_crypto_json(V3["30_byte_key"]["json"]["crypto"], "foo")) == 30


def test_v1_vector() -> None:
    vector = V1["test1"]
    key = decrypt_crypto_v1(vector["json"]["Crypto"], vector["password"])
    assert key.hex() == vector["priv"]


def test_v1_wrong_password() -> None:
    with pytest.raises(DecryptError):
        decrypt_crypto_v1(V1["test1"]["json"]["Crypto"], "h")


def test_very_light_scrypt_empty_password() -> None:
    crypto = VERY_LIGHT["crypto"]
    key = decrypt_crypto_json(crypto, "")
    with pytest.raises(DecryptError, match=r"^could not decrypt key with given password$"):
        decrypt_crypto_json(crypto, "bad")
    # TestKeyEncryptDecrypt: re-encrypt with n=2, p=1 under a growing password, three rounds.
    password = ""
    for _ in range(3):
        password += "new data appended"
        crypto = encrypt_crypto_json_scrypt(key, password, n=2, p=1)
        with pytest.raises(DecryptError):
            decrypt_crypto_json(crypto, "bad")
        assert decrypt_crypto_json(crypto, password) == key


# -- layout and parameters ------------------------------------------------------------------


def test_light_layout() -> None:
    crypto = encrypt_crypto_json(b"\x01" * 32, "password", light=True)
    assert list(crypto) == ["cipher", "ciphertext", "cipherparams", "kdf", "kdfparams", "mac"]
    assert crypto["cipher"] == "aes-128-ctr"
    assert crypto["kdf"] == "scrypt"
    params = crypto["kdfparams"]
    assert list(params) == ["dklen", "n", "p", "r", "salt"]
    assert (params["dklen"], params["n"], params["p"], params["r"]) == (32, 4096, 6, 8)
    assert len(bytes.fromhex(params["salt"])) == 32
    assert len(bytes.fromhex(crypto["cipherparams"]["iv"])) == 16
    assert len(bytes.fromhex(crypto["ciphertext"])) == 32
    assert len(bytes.fromhex(crypto["mac"])) == 32
    assert decrypt_crypto_json(crypto, "password") == b"\x01" * 32


def test_standard_parameters() -> None:
    crypto = encrypt_crypto_json(b"\x02" * 32, "password", light=False)
    params = crypto["kdfparams"]
    assert (params["n"], params["p"], params["r"]) == (262144, 1, 8)


def test_fresh_salt_and_iv() -> None:
    a, b = _tiny(), _tiny()
    assert a["kdfparams"]["salt"] != b["kdfparams"]["salt"]
    assert a["cipherparams"]["iv"] != b["cipherparams"]["iv"]


def test_mac_definition() -> None:
    from Cryptodome.Protocol.KDF import scrypt

    crypto = _tiny(b"\x05" * 32, "secret")
    params = crypto["kdfparams"]
    dk = scrypt(b"secret", bytes.fromhex(params["salt"]), 32, 2, 8, 1)  # type: ignore[arg-type]
    assert isinstance(dk, bytes)
    expected = keccak256(dk[16:32] + bytes.fromhex(crypto["ciphertext"]))
    assert crypto["mac"] == expected.hex()


def test_master_seed_size_roundtrip() -> None:
    seed = bytes(range(256))
    assert decrypt_crypto_json(_tiny(seed, "seed password"), "seed password") == seed


def test_secret_too_long_refused() -> None:
    with pytest.raises(ValueError):
        _tiny(b"\x00" * (keycrypto.MAX_CIPHERTEXT_BYTES + 1))


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(max_size=300), password=st.text(max_size=40))
def test_roundtrip_property(secret: bytes, password: str) -> None:
    crypto = _tiny(secret, password)
    assert decrypt_crypto_json(json.loads(json.dumps(crypto)), password) == secret


def test_unicode_password_is_utf8() -> None:
    # Go uses []byte(password), i.e. UTF-8; eth-keyfile gets the same bytes.
    crypto = _tiny(b"\x09" * 32, "pässwörd⌘")
    document = {"address": "00" * 20, "crypto": crypto, "id": "x", "version": 3}
    assert decode_keyfile_json(document, "pässwörd⌘".encode()) == b"\x09" * 32


def test_unpaired_surrogate_password_is_clean_error() -> None:
    with pytest.raises(InvalidParams):
        _tiny(password="\ud800")
    with pytest.raises(InvalidParams):
        decrypt_crypto_json(_tiny(), "\ud800")


# -- eth-keyfile as an independent implementation ---------------------------------------------


def test_ours_decrypt_with_eth_keyfile() -> None:
    key = bytes.fromhex("0102030405060708090a0102030405060708090a0102030405060708090a0102")
    crypto = encrypt_crypto_json(key, "myverylongpassword", light=True)
    document = {"address": "00" * 20, "crypto": crypto, "id": "x", "version": 3}
    assert decode_keyfile_json(document, b"myverylongpassword") == key


@pytest.mark.parametrize(("kdf", "iterations"), [("scrypt", 1024), ("pbkdf2", 1000)])
def test_eth_keyfile_decrypts_here(kdf: Any, iterations: int) -> None:
    key = bytes(range(1, 33))
    document = create_keyfile_json(key, b"a password", kdf=kdf, iterations=iterations)
    assert decrypt_crypto_json(document["crypto"], "a password") == key
    with pytest.raises(DecryptError):
        decrypt_crypto_json(document["crypto"], "another password")


# -- reference errors -----------------------------------------------------------------------


def test_unsupported_kdf() -> None:
    crypto = _tiny()
    crypto["kdf"] = "argon2"
    with pytest.raises(SignerError, match=r"^unsupported KDF: argon2$"):
        decrypt_crypto_json(crypto, "pw")


def test_unsupported_prf() -> None:
    crypto = copy.deepcopy(V3["wikipage_test_vector_pbkdf2"]["json"]["crypto"])
    crypto["kdfparams"]["prf"] = "hmac-sha512"
    with pytest.raises(SignerError, match=r"^unsupported PBKDF2 PRF: hmac-sha512$"):
        decrypt_crypto_json(crypto, "testpassword")


def test_unsupported_cipher() -> None:
    crypto = _tiny()
    crypto["cipher"] = "aes-256-gcm"
    with pytest.raises(SignerError, match=r"^cipher not supported: aes-256-gcm$"):
        decrypt_crypto_json(crypto, "pw")


@pytest.mark.parametrize("field", ["mac", "ciphertext", "iv"])
def test_tampering_fails_mac(field: str) -> None:
    crypto = _tiny()
    target = crypto["cipherparams"] if field == "iv" else crypto
    raw = bytearray(bytes.fromhex(target[field]))
    raw[0] ^= 1
    target[field] = raw.hex()
    if field == "iv":
        # The IV is not covered by the MAC (as in the standard): the plaintext changes instead.
        assert decrypt_crypto_json(crypto, "pw") != b"\x11" * 32
    else:
        with pytest.raises(DecryptError):
            decrypt_crypto_json(crypto, "pw")


def test_mac_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    decrypt_crypto_json(_tiny(), "pw")
    assert len(calls) == 1


# -- hostile input --------------------------------------------------------------------------

HOSTILE: list[tuple[str, Any, Any]] = [
    ("cipher", None, None),
    ("cipher", 5, None),
    ("ciphertext", None, None),
    ("ciphertext", "zz", None),
    ("ciphertext", "abc", None),
    ("ciphertext", " 00", None),
    ("ciphertext", "00" * 5000, None),
    ("ciphertext", ["00"], None),
    ("cipherparams", None, None),
    ("cipherparams", "x", None),
    ("cipherparams", {}, None),
    ("cipherparams", {"iv": "00"}, None),
    ("cipherparams", {"iv": 7}, None),
    ("kdf", None, None),
    ("kdf", ["scrypt"], None),
    ("kdfparams", None, None),
    ("kdfparams", [], None),
    ("mac", None, None),
    ("mac", "00", None),
    ("mac", "0x" + "00" * 31, None),
    ("kdfparams", None, ("n", None)),
    ("kdfparams", None, ("n", "4096")),
    ("kdfparams", None, ("n", True)),
    ("kdfparams", None, ("n", 4096.5)),
    ("kdfparams", None, ("n", float("inf"))),
    ("kdfparams", None, ("n", 1)),
    ("kdfparams", None, ("n", 0)),
    ("kdfparams", None, ("n", -2)),
    ("kdfparams", None, ("n", 3)),
    ("kdfparams", None, ("n", 1 << 40)),
    ("kdfparams", None, ("n", 1 << 20)),
    ("kdfparams", None, ("n", 10**400)),
    ("kdfparams", None, ("r", 0)),
    ("kdfparams", None, ("r", 1 << 30)),
    ("kdfparams", None, ("p", 0)),
    ("kdfparams", None, ("p", 1 << 30)),
    ("kdfparams", None, ("p", 1000)),
    ("kdfparams", None, ("dklen", 16)),
    ("kdfparams", None, ("dklen", 10**9)),
    ("kdfparams", None, ("dklen", None)),
    ("kdfparams", None, ("salt", None)),
    ("kdfparams", None, ("salt", "0g")),
    ("kdfparams", None, ("salt", "00" * 2000)),
]


def _mutated(field: str, value: Any, param: Any) -> Any:
    crypto: dict[str, Any] = _tiny()
    if param is not None:
        name, param_value = param
        if param_value is None:
            del crypto["kdfparams"][name]
        else:
            crypto["kdfparams"][name] = param_value
    elif value is None:
        del crypto[field]
    else:
        crypto[field] = value
    return crypto


@pytest.mark.parametrize(("field", "value", "param"), HOSTILE)
def test_hostile_fields_clean_and_fast(field: str, value: Any, param: Any) -> None:
    crypto = _mutated(field, value, param)
    started = time.monotonic()
    with pytest.raises(SignerError) as info:
        decrypt_crypto_json(crypto, "pw")
    assert time.monotonic() - started < 0.5
    if field != "cipher" or value is None or not isinstance(value, str):
        assert "crypto." in info.value.message


def test_hostile_pbkdf2_iterations() -> None:
    crypto = copy.deepcopy(V3["wikipage_test_vector_pbkdf2"]["json"]["crypto"])
    for bad in (0, -1, 1 << 40, "262144", None):
        crypto["kdfparams"]["c"] = bad
        started = time.monotonic()
        with pytest.raises(SignerError, match=r"crypto\.kdfparams\.c"):
            decrypt_crypto_json(crypto, "testpassword")
        assert time.monotonic() - started < 0.5
    crypto["kdfparams"]["c"] = 262144
    crypto["kdfparams"]["prf"] = 7
    with pytest.raises(SignerError, match=r"crypto\.kdfparams\.prf"):
        decrypt_crypto_json(crypto, "testpassword")


@pytest.mark.parametrize("crypto", [None, [], "crypto", 3, {}])
def test_not_an_object(crypto: Any) -> None:
    with pytest.raises(SignerError):
        decrypt_crypto_json(crypto, "pw")
    with pytest.raises(SignerError):
        decrypt_crypto_v1(crypto, "pw")


def test_integral_float_accepted_like_go() -> None:
    crypto = _tiny()
    crypto["kdfparams"]["n"] = 2.0
    assert decrypt_crypto_json(crypto, "pw") == b"\x11" * 32


def test_v1_hostile_ciphertext_length() -> None:
    crypto = copy.deepcopy(V1["test1"]["json"]["Crypto"])
    crypto["ciphertext"] = crypto["ciphertext"][:-2]
    with pytest.raises(SignerError, match="AES blocks"):
        decrypt_crypto_v1(crypto, "g")


_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=12)
    | st.floats()
    | st.integers(-10, 10)
    | st.sampled_from([1 << 40, 1 << 64, -(1 << 63), 1 << 30, 3, 2**18]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_FIELDS = ["cipher", "ciphertext", "cipherparams", "kdf", "kdfparams", "mac"]
_PARAMS = ["n", "r", "p", "dklen", "salt", "c", "prf"]


@settings(max_examples=150, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from(_FIELDS), _JUNK, max_size=3),
    params=st.dictionaries(st.sampled_from(_PARAMS), _JUNK, max_size=3),
    kdf=st.sampled_from(["scrypt", "pbkdf2"]),
)
def test_fuzz_only_clean_errors(top: dict[str, Any], params: dict[str, Any], kdf: str) -> None:
    crypto: dict[str, Any] = _tiny()
    crypto["kdf"] = kdf
    crypto["kdfparams"].update({"c": 2, "prf": "hmac-sha256"})
    crypto["kdfparams"].update(params)
    crypto.update(top)
    started = time.monotonic()
    for decrypt in (decrypt_crypto_json, decrypt_crypto_v1):
        with contextlib.suppress(ClefError):
            decrypt(crypto, "pw")
    assert time.monotonic() - started < 2.0
