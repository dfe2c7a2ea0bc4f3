"""Strict hex encodings of the execution API: 0x quantities and 0x byte strings."""

from __future__ import annotations

import re

from clef.errors import InvalidParams

_QUANTITY = re.compile(r"0x(0|[1-9a-fA-F][0-9a-fA-F]*)")
_BYTES = re.compile(r"0x([0-9a-fA-F]{2})*")


def parse_quantity(value: object, field: str, bits: int = 256) -> int:
    """Parse a 0x-prefixed quantity without leading zeros that fits in `bits` bits."""
    if not isinstance(value, str):
        raise InvalidParams(f"invalid {field}: json: cannot unmarshal non-string into quantity")
    if not value.startswith(("0x", "0X")):
        raise InvalidParams(f"invalid {field}: hex string without 0x prefix")
    if value in ("0x", "0X"):
        raise InvalidParams(f"invalid {field}: hex string \"0x\"")
    if not _QUANTITY.fullmatch("0x" + value[2:]):
        if len(value) > 3 and value[2] == "0":
            raise InvalidParams(f"invalid {field}: hex number with leading zero digits")
        raise InvalidParams(f"invalid {field}: invalid hex string")
    number = int(value[2:], 16)
    if number.bit_length() > bits:
        raise InvalidParams(f"invalid {field}: hex number > {bits} bits")
    return number


def parse_bytes(value: object, field: str, max_len: int | None = None) -> bytes:
    """Parse 0x-prefixed, even-length hex into bytes."""
    if not isinstance(value, str):
        raise InvalidParams(f"invalid {field}: json: cannot unmarshal non-string into bytes")
    if not value.startswith(("0x", "0X")):
        raise InvalidParams(f"invalid {field}: hex string without 0x prefix")
    if len(value) % 2:
        raise InvalidParams(f"invalid {field}: hex string of odd length")
    if not _BYTES.fullmatch("0x" + value[2:]):
        raise InvalidParams(f"invalid {field}: invalid hex string")
    raw = bytes.fromhex(value[2:])
    if max_len is not None and len(raw) > max_len:
        raise InvalidParams(f"invalid {field}: longer than {max_len} bytes")
    return raw


def encode_quantity(number: int) -> str:
    """Encode a non-negative integer as a 0x quantity."""
    if number < 0:
        raise ValueError("negative quantity")
    return hex(number)


def encode_bytes(raw: bytes) -> str:
    """Encode bytes as 0x-prefixed lowercase hex."""
    return "0x" + raw.hex()
