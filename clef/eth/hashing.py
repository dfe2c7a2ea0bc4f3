"""Keccak-256 as used by Ethereum."""

from __future__ import annotations

from Cryptodome.Hash import keccak


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of data."""
    return keccak.new(digest_bits=256, data=data).digest()  # type: ignore[no-any-return,unused-ignore]
