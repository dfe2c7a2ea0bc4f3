"""secp256k1 signing and recovery through libsecp256k1 (coincurve), the only ECDSA code we use.

coincurve is called directly rather than through eth-keys: eth-keys silently falls back to its
pure-Python backend unless one is bound explicitly (deps-probe §3), and that backend is neither
constant-time nor fast. libsecp256k1 signs with RFC 6979 nonces and always emits low-s
signatures.
"""

from __future__ import annotations

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from coincurve.ecdsa import serialize_recoverable

from clef.errors import InvalidParams
from clef.eth.hashing import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def _check_private_key(private_key: bytes) -> None:
    # The message never includes the key: errors may end up in logs.
    if not isinstance(private_key, bytes) or len(private_key) != 32:
        raise ValueError("private key must be 32 bytes")
    if not 0 < int.from_bytes(private_key, "big") < SECP256K1_N:
        raise ValueError("private key out of range")


def sign_hash(private_key: bytes, msg_hash: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte hash; return (recid, r, s) with recid in {0, 1} and s in the low half."""
    _check_private_key(private_key)
    if not isinstance(msg_hash, bytes) or len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    # libsecp256k1 directly, as coincurve's sign_recoverable does, without building a
    # coincurve.PrivateKey: that derives two public keys first (more than half the cost of a
    # signature) into objects that hold the secret too. RFC 6979 nonces (the default function).
    recoverable = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_sign_recoverable(
        GLOBAL_CONTEXT.ctx, recoverable, msg_hash, private_key, ffi.NULL, ffi.NULL
    ):
        raise RuntimeError("libsecp256k1 refused to sign")
    sig = serialize_recoverable(recoverable, GLOBAL_CONTEXT)
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    recid = sig[64]
    # libsecp256k1 guarantees these; a violation means a broken library, so fail closed.
    if recid not in (0, 1) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_HALF_N:
        raise RuntimeError("libsecp256k1 produced a non-canonical signature")
    return recid, r, s


def public_key_to_address(uncompressed: bytes) -> bytes:
    """The 20-byte address of a 65-byte uncompressed public key (0x04 ‖ X ‖ Y)."""
    if len(uncompressed) != 65 or uncompressed[0] != 4:
        raise ValueError("public key must be 65 bytes, uncompressed")
    return keccak256(uncompressed[1:])[12:]


def address_of(private_key: bytes) -> bytes:
    """The 20-byte address controlled by a private key."""
    _check_private_key(private_key)
    public = coincurve.PublicKey.from_valid_secret(private_key)
    return public_to_address(public)


def public_to_address(public: coincurve.PublicKey) -> bytes:
    """The 20-byte address of a coincurve public key."""
    return public_key_to_address(public.format(compressed=False))


def recover_address(
    msg_hash: bytes, recid: int, r: int, s: int, *, require_low_s: bool = False
) -> bytes:
    """Recover the signer's 20-byte address; raise InvalidParams if the signature is invalid.

    High-s signatures are accepted unless require_low_s is set (transactions and EIP-7702
    authorizations require low s; plain ecrecover does not).
    """
    if not isinstance(msg_hash, bytes) or len(msg_hash) != 32:
        raise InvalidParams("invalid signature: message hash must be 32 bytes")
    if type(recid) is not int or recid not in (0, 1):
        raise InvalidParams("invalid signature: recovery id must be 0 or 1")
    if type(r) is not int or not 0 < r < SECP256K1_N:
        raise InvalidParams("invalid signature: r out of range")
    limit = SECP256K1_HALF_N if require_low_s else SECP256K1_N - 1
    if type(s) is not int or not 0 < s <= limit:
        raise InvalidParams("invalid signature: s out of range")
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid])
    try:
        public = coincurve.PublicKey.from_signature_and_message(sig, msg_hash, hasher=None)
    except ValueError as exc:  # r is not the x coordinate of a curve point
        raise InvalidParams("invalid signature: recovery failed") from exc
    return public_to_address(public)
