"""clef.eth.secp: libsecp256k1 signing and recovery, checked against eth-keys/eth-account."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_keys.backends.native.main import NativeECCBackend
from eth_keys.datatypes import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams
from clef.eth.secp import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    address_of,
    public_key_to_address,
    recover_address,
    sign_hash,
)

KNOWN_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KNOWN_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda k: k.to_bytes(32, "big")
)
hashes = st.binary(min_size=32, max_size=32)


def test_known_vector_address() -> None:
    assert address_of(KNOWN_KEY) == bytes.fromhex(KNOWN_ADDRESS[2:])


@settings(max_examples=60, deadline=None)
@given(key=private_keys, msg_hash=hashes)
def test_sign_matches_pure_python_backend_and_recovers(key: bytes, msg_hash: bytes) -> None:
    recid, r, s = sign_hash(key, msg_hash)
    assert recid in (0, 1)
    assert 0 < r < SECP256K1_N
    assert 0 < s <= SECP256K1_HALF_N
    # An independent implementation (eth-keys' pure-Python backend, bound explicitly) must
    # produce the same deterministic RFC 6979 signature.
    oracle = PrivateKey(key, backend=NativeECCBackend()).sign_msg_hash(msg_hash)
    assert (oracle.v, oracle.r, oracle.s) == (recid, r, s)
    assert recover_address(msg_hash, recid, r, s) == address_of(key)
    assert address_of(key) == bytes.fromhex(Account.from_key(key).address[2:])


@settings(max_examples=30, deadline=None)
@given(key=private_keys, msg_hash=hashes)
def test_high_s_twin_recovers_only_when_allowed(key: bytes, msg_hash: bytes) -> None:
    recid, r, s = sign_hash(key, msg_hash)
    twin = (recid ^ 1, r, SECP256K1_N - s)  # the malleated signature of the same key
    assert recover_address(msg_hash, *twin) == address_of(key)
    with pytest.raises(InvalidParams, match="s out of range"):
        recover_address(msg_hash, *twin, require_low_s=True)


def test_deterministic() -> None:
    h = bytes(range(32))
    assert sign_hash(KNOWN_KEY, h) == sign_hash(KNOWN_KEY, h)


@pytest.mark.parametrize(
    "key",
    [b"", b"\x01" * 31, b"\x01" * 33, bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32],
)
def test_bad_private_keys_refused_without_echo(key: bytes) -> None:
    for call in (lambda: sign_hash(key, bytes(32)), lambda: address_of(key)):
        with pytest.raises(ValueError, match="private key") as info:
            call()
        if key:
            assert key.hex() not in str(info.value)


def test_private_key_type_checked() -> None:
    with pytest.raises(ValueError, match="private key"):
        sign_hash("00" * 32, bytes(32))  # type: ignore[arg-type]


@pytest.mark.parametrize("msg_hash", [b"", bytes(31), bytes(33)])
def test_bad_hash_length(msg_hash: bytes) -> None:
    with pytest.raises(ValueError, match="hash"):
        sign_hash(KNOWN_KEY, msg_hash)
    with pytest.raises(InvalidParams, match="hash"):
        recover_address(msg_hash, 0, 1, 1)


@pytest.mark.parametrize(
    ("recid", "r", "s", "what"),
    [
        (2, 1, 1, "recovery id"),
        (-1, 1, 1, "recovery id"),
        (True, 1, 1, "recovery id"),
        (0, 0, 1, "r out of range"),
        (0, SECP256K1_N, 1, "r out of range"),
        (0, 1, 0, "s out of range"),
        (0, 1, SECP256K1_N, "s out of range"),
        (0, 1.0, 1, "r out of range"),
    ],
)
def test_recover_rejects_out_of_range(recid: int, r: int, s: int, what: str) -> None:
    with pytest.raises(InvalidParams, match=what):
        recover_address(bytes(32), recid, r, s)


def test_recover_rejects_r_off_curve() -> None:
    # x = 5 is not the x coordinate of any secp256k1 point (5^3 + 7 = 132 is a non-residue).
    with pytest.raises(InvalidParams, match="recovery failed"):
        recover_address(b"\x01" * 32, 0, 5, 1)


def test_public_key_to_address_shape() -> None:
    with pytest.raises(ValueError, match="uncompressed"):
        public_key_to_address(b"\x02" + bytes(32))
