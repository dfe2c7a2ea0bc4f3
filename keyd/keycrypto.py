"""Web3 Secret Storage `crypto` objects: scrypt/pbkdf2 key derivation, AES-128, Keccak MAC.

Sans-IO and synchronous: each call runs one KDF (about 0.8 s at the standard scrypt setting), so
keyd calls these from a worker thread (Cryptodome's scrypt and hashlib's pbkdf2 release the GIL).

Every field of a `crypto` object read from disk is attacker-controlled (a planted or corrupted
keystore file, an imported JSON). Types and encodings are checked before use, and the KDF cost
parameters are bounded *before* the KDF runs, so a hostile file gives a clean SignerError instead
of exhausting memory or CPU. The limits (all generous multiples of what geth writes):

- scrypt: n a power of two, 2 <= n; memory 128*n*r <= 256 MiB (geth's standard setting is exactly
  256 MiB); work n*r*p <= 2**23 (4x the standard); r*p <= 1024 (Cryptodome allocates 128*r*p bytes
  up front); 1 <= r, 1 <= p.
- pbkdf2: prf hmac-sha256 only, 1 <= c <= 2**22 (16x the common 262144).
- dklen 32..64 (the MAC needs dk[16:32]); salt <= 1024 bytes; iv exactly 16 bytes; ciphertext
  <= 4096 bytes; mac exactly 32 bytes.

Secret hygiene: the derived key and the plaintext live in bytearrays that are zeroed after use.
Python cannot guarantee more than that: the password `str`, its UTF-8 `bytes`, and the intermediate
`bytes` objects returned by Cryptodome/hashlib are immutable and are freed (not wiped) by the
garbage collector, and the allocator may have copied buffers. Keys only ever live in keyd.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from Cryptodome.Cipher import AES
from Cryptodome.Protocol.KDF import scrypt

from clef.errors import DecryptError, InvalidParams, SignerError
from clef.eth.hashing import keccak256

STANDARD_SCRYPT_N = 1 << 18
STANDARD_SCRYPT_P = 1
LIGHT_SCRYPT_N = 1 << 12
LIGHT_SCRYPT_P = 6
SCRYPT_R = 8
SCRYPT_DKLEN = 32

MAX_SCRYPT_MEMORY = 1 << 28
MAX_SCRYPT_WORK = 1 << 23
MAX_SCRYPT_RP = 1 << 10
MAX_PBKDF2_C = 1 << 22
MIN_DKLEN = 32
MAX_DKLEN = 64
MAX_SALT_BYTES = 1024
MAX_CIPHERTEXT_BYTES = 4096

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def encrypt_crypto_json(secret: bytes | bytearray, password: str, *, light: bool) -> dict[str, Any]:
    """Encrypt secret under password with geth's standard (or --lightkdf) scrypt parameters."""
    if light:
        return encrypt_crypto_json_scrypt(secret, password, n=LIGHT_SCRYPT_N, p=LIGHT_SCRYPT_P)
    return encrypt_crypto_json_scrypt(secret, password, n=STANDARD_SCRYPT_N, p=STANDARD_SCRYPT_P)


def encrypt_crypto_json_scrypt(
    secret: bytes | bytearray, password: str, *, n: int, p: int
) -> dict[str, Any]:
    """Encrypt secret with explicit scrypt n and p (r=8, dklen=32); the result is a V3 `crypto`."""
    if not isinstance(secret, bytes | bytearray):
        raise TypeError("secret must be bytes")
    if len(secret) > MAX_CIPHERTEXT_BYTES:
        raise ValueError(f"secret longer than {MAX_CIPHERTEXT_BYTES} bytes")
    _check_scrypt_params(n, SCRYPT_R, p)
    salt = os.urandom(32)
    iv = os.urandom(16)
    dk = _scrypt(_password_bytes(password), salt, SCRYPT_DKLEN, n, SCRYPT_R, p)
    try:
        ciphertext = bytes(_aes_ctr(dk, iv, secret))
        mac = keccak256(bytes(dk[16:32]) + ciphertext)
    finally:
        wipe(dk)
    # Key order matches geth's json.Marshal output (struct order; kdfparams is a sorted map).
    return {
        "cipher": "aes-128-ctr",
        "ciphertext": ciphertext.hex(),
        "cipherparams": {"iv": iv.hex()},
        "kdf": "scrypt",
        "kdfparams": {"dklen": SCRYPT_DKLEN, "n": n, "p": p, "r": SCRYPT_R, "salt": salt.hex()},
        "mac": mac.hex(),
    }


def decrypt_crypto_json(crypto: Mapping[str, Any], password: str) -> bytearray:
    """Decrypt a V3 `crypto` object (aes-128-ctr, scrypt or pbkdf2); bad MAC -> DecryptError."""
    crypto = _mapping(crypto, "crypto")
    cipher = _string(crypto.get("cipher"), "crypto.cipher")
    if cipher != "aes-128-ctr":
        raise SignerError(f"cipher not supported: {cipher}")
    mac, iv, ciphertext = _mac_iv_ciphertext(crypto)
    dk = _derive_key(crypto, password)
    try:
        _verify_mac(dk, ciphertext, mac)
        return _aes_ctr(dk, iv, ciphertext)
    finally:
        wipe(dk)


def decrypt_crypto_v1(crypto: Mapping[str, Any], password: str) -> bytearray:
    """Decrypt a legacy V1 `Crypto` object (aes-128-cbc keyed by keccak256(dk[:16])[:16])."""
    crypto = _mapping(crypto, "Crypto")
    mac, iv, ciphertext = _mac_iv_ciphertext(crypto)
    if not ciphertext or len(ciphertext) % 16:
        raise _field_error("crypto.ciphertext", "not a whole number of AES blocks")
    dk = _derive_key(crypto, password)
    try:
        _verify_mac(dk, ciphertext, mac)
        aes_key = bytearray(keccak256(bytes(dk[:16]))[:16])
    finally:
        wipe(dk)
    padded = bytearray(len(ciphertext))
    try:
        AES.new(aes_key, AES.MODE_CBC, iv=iv).decrypt(ciphertext, output=padded)
    finally:
        wipe(aes_key)
    pad = padded[-1]
    if not 1 <= pad <= 16 or any(b != pad for b in padded[-pad:]):
        wipe(padded)
        raise DecryptError()
    plaintext = padded[:-pad]
    wipe(padded)
    return plaintext


def _mac_iv_ciphertext(crypto: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    mac = _hex(crypto.get("mac"), "crypto.mac", exact=32)
    params = _mapping(crypto.get("cipherparams"), "crypto.cipherparams")
    iv = _hex(params.get("iv"), "crypto.cipherparams.iv", exact=16)
    ciphertext = _hex(crypto.get("ciphertext"), "crypto.ciphertext", limit=MAX_CIPHERTEXT_BYTES)
    return mac, iv, ciphertext


def _derive_key(crypto: Mapping[str, Any], password: str) -> bytearray:
    kdf = _string(crypto.get("kdf"), "crypto.kdf")
    if kdf not in ("scrypt", "pbkdf2"):
        raise SignerError(f"unsupported KDF: {kdf}")
    params = _mapping(crypto.get("kdfparams"), "crypto.kdfparams")
    salt = _hex(params.get("salt"), "crypto.kdfparams.salt", limit=MAX_SALT_BYTES)
    dklen = _int(params.get("dklen"), "crypto.kdfparams.dklen")
    if not MIN_DKLEN <= dklen <= MAX_DKLEN:
        raise _field_error("crypto.kdfparams.dklen", f"must be between {MIN_DKLEN} and {MAX_DKLEN}")
    secret = _password_bytes(password)
    if kdf == "scrypt":
        n = _int(params.get("n"), "crypto.kdfparams.n")
        r = _int(params.get("r"), "crypto.kdfparams.r")
        p = _int(params.get("p"), "crypto.kdfparams.p")
        _check_scrypt_params(n, r, p)
        return _scrypt(secret, salt, dklen, n, r, p)
    c = _int(params.get("c"), "crypto.kdfparams.c")
    prf = _string(params.get("prf"), "crypto.kdfparams.prf")
    if prf != "hmac-sha256":
        raise SignerError(f"unsupported PBKDF2 PRF: {prf}")
    if not 1 <= c <= MAX_PBKDF2_C:
        raise _field_error("crypto.kdfparams.c", f"must be between 1 and {MAX_PBKDF2_C}")
    return bytearray(hashlib.pbkdf2_hmac("sha256", secret, salt, c, dklen))


def _check_scrypt_params(n: int, r: int, p: int) -> None:
    # Threat: a planted keystore with huge n/r/p pins a CPU for hours or exhausts keyd's memory.
    if n < 2 or n & (n - 1):
        raise _field_error("crypto.kdfparams.n", "must be a power of two greater than 1")
    if r < 1:
        raise _field_error("crypto.kdfparams.r", "must be at least 1")
    if p < 1:
        raise _field_error("crypto.kdfparams.p", "must be at least 1")
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise _field_error("crypto.kdfparams.n", f"memory 128*n*r exceeds {MAX_SCRYPT_MEMORY}")
    if r * p > MAX_SCRYPT_RP:
        raise _field_error("crypto.kdfparams.p", f"r*p exceeds {MAX_SCRYPT_RP}")
    if n * r * p > MAX_SCRYPT_WORK:
        raise _field_error("crypto.kdfparams.n", f"scrypt work n*r*p exceeds {MAX_SCRYPT_WORK}")


def _verify_mac(dk: bytearray, ciphertext: bytes, mac: bytes) -> None:
    # Constant-time comparison: the MAC is the password oracle.
    if not hmac.compare_digest(keccak256(bytes(dk[16:32]) + ciphertext), mac):
        raise DecryptError()


def _aes_ctr(dk: bytearray, iv: bytes, data: bytes | bytearray) -> bytearray:
    # Key by view and write into a bytearray: no immutable copy of the AES key or plaintext.
    out = bytearray(len(data))
    cipher = AES.new(memoryview(dk)[:16], AES.MODE_CTR, initial_value=iv, nonce=b"")
    cipher.encrypt(data, output=out)
    return out


def _scrypt(password: bytes, salt: bytes, dklen: int, n: int, r: int, p: int) -> bytearray:
    # Cryptodome, not hashlib: OpenSSL refuses valid geth parameters such as n=2**18, r=1.
    derived = scrypt(password, salt, dklen, n, r, p)  # type: ignore[arg-type]
    if not isinstance(derived, bytes):
        raise TypeError("scrypt returned several keys")
    return bytearray(derived)


def _password_bytes(password: str) -> bytes:
    if not isinstance(password, str):
        raise InvalidParams("invalid password: must be a string")
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParams("invalid password: not valid unicode") from None


def wipe(buf: bytearray) -> None:
    """Overwrite a buffer we own (Python may hold copies we cannot reach; see docs)."""
    buf[:] = bytes(len(buf))


def _field_error(field: str, why: str) -> SignerError:
    return SignerError(f"invalid keystore field {field}: {why}")


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _field_error(field, "must be a JSON object")
    return value


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _field_error(field, "must be a string")
    return value


def _int(value: object, field: str) -> int:
    # Go decodes JSON numbers as float64, so 262144.0 is accepted; booleans are not numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _field_error(field, "must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise _field_error(field, "must be an integer")
        value = int(value)
    return value


def _hex(value: object, field: str, *, exact: int | None = None, limit: int | None = None) -> bytes:
    text = _string(value, field)
    cap = exact if exact is not None else limit
    if cap is not None and len(text) > 2 * cap:
        raise _field_error(field, f"longer than {cap} bytes")
    if not _HEX.fullmatch(text):
        raise _field_error(field, "invalid hex")
    raw = bytes.fromhex(text)
    if exact is not None and len(raw) != exact:
        raise _field_error(field, f"must be {exact} bytes")
    return raw
