"""Addresses: EIP-55 checksums and the reference's MixedcaseAddress (keeps the caller's spelling)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clef.errors import InvalidParams
from clef.eth.hashing import keccak256

_ADDRESS = re.compile(r"(0x|0X)?[0-9a-fA-F]{40}")


def to_checksum(raw: bytes) -> str:
    """Return the EIP-55 mixed-case form of a 20-byte address."""
    if len(raw) != 20:
        raise ValueError("address must be 20 bytes")
    lower = raw.hex()
    digest = keccak256(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(lower))


def is_hex_address(text: str) -> bool:
    """True when text is 40 hex digits with an optional 0x prefix (geth IsHexAddress)."""
    return bool(_ADDRESS.fullmatch(text))


def parse_address(value: object, field: str) -> bytes:
    """Parse an address given as 0x + 40 hex digits (any case) into 20 bytes."""
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise InvalidParams(
            f"invalid {field}: hex string has length {_hexlen(value)}, want 40 for common.Address")
    return bytes.fromhex(value[2:])


def _hexlen(value: object) -> int:
    if isinstance(value, str):
        return len(value[2:] if value.startswith(("0x", "0X")) else value)
    return 0


@dataclass(frozen=True)
class MixedcaseAddress:
    """An address plus the exact string the caller sent, for the checksum warning."""

    raw: bytes
    original: str

    @classmethod
    def parse(cls, value: object, field: str) -> MixedcaseAddress:
        """Parse 0x + 40 hex digits, remembering the original spelling."""
        return cls(parse_address(value, field), str(value))

    @property
    def checksummed(self) -> str:
        """The EIP-55 form."""
        return to_checksum(self.raw)

    @property
    def lower(self) -> str:
        """0x + 40 lowercase hex digits."""
        return "0x" + self.raw.hex()

    def valid_checksum(self) -> bool:
        """True when the caller's spelling equals the EIP-55 form (geth ValidChecksum)."""
        original = self.original if self.original.startswith("0x") else "0x" + self.original
        return original == self.checksummed
