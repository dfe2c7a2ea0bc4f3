"""Clique (PoA) block headers: strict RLP decoding and the seal hash a signer signs.

The caller sends the RLP of a header without the 65-byte seal; the reference appends 65 zero
bytes to extraData, then signs keccak256(CliqueRLP(header)), where CliqueRLP drops those 65
bytes again. Only pre-London (15 fields) and London (16, with baseFee) headers exist for
clique: later optional fields made the reference's encoder panic, here they are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from rlp.exceptions import RLPException

from clef.errors import SignerError
from clef.eth.hashing import keccak256

SEAL_LENGTH = 65
MAX_HEADER_BYTES = 1 << 20

# (name, kind, size): kind "fixed" = exactly size bytes, "int" = canonical integer of at
# most size bytes, "bytes" = any byte string.
_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("parentHash", "fixed", 32),
    ("sha3Uncles", "fixed", 32),
    ("miner", "fixed", 20),
    ("stateRoot", "fixed", 32),
    ("transactionsRoot", "fixed", 32),
    ("receiptsRoot", "fixed", 32),
    ("logsBloom", "fixed", 256),
    ("difficulty", "int", 32),
    ("number", "int", 32),
    ("gasLimit", "int", 8),
    ("gasUsed", "int", 8),
    ("timestamp", "int", 8),
    ("extraData", "bytes", 0),
    ("mixHash", "fixed", 32),
    ("nonce", "fixed", 8),
    ("baseFeePerGas", "int", 32),
)
_PRE_LONDON = 15
_EXTRA = 12


def _check_field(name: str, kind: str, size: int, item: object) -> bytes:
    if not isinstance(item, bytes):
        raise SignerError(f"invalid clique header: {name} must be a byte string, not a list")
    if kind == "fixed" and len(item) != size:
        raise SignerError(f"invalid clique header: {name} must be {size} bytes, got {len(item)}")
    if kind == "int":
        if item[:1] == b"\x00":
            raise SignerError(
                f"invalid clique header: {name}: non-canonical integer (leading zero bytes)"
            )
        if len(item) > size:
            raise SignerError(f"invalid clique header: {name} is larger than {size * 8} bits")
    return item


@dataclass(frozen=True)
class CliqueHeader:
    """A decoded, unsealed clique header: its RLP items in header order (15 or 16)."""

    items: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple) or len(self.items) not in (_PRE_LONDON, 16):
            raise SignerError("invalid clique header: expected 15 or 16 fields")
        for (name, kind, size), item in zip(_FIELDS, self.items, strict=False):
            _check_field(name, kind, size, item)

    @classmethod
    def decode(cls, data: bytes) -> CliqueHeader:
        """Decode the RLP of a header without its seal; errors are clean, never a crash."""
        if len(data) > MAX_HEADER_BYTES:
            raise SignerError(f"invalid clique header: larger than {MAX_HEADER_BYTES} bytes")
        try:
            decoded = rlp.decode(data, strict=True)
        except (RLPException, RecursionError) as exc:
            raise SignerError(f"invalid clique header: rlp: {exc}") from None
        if not isinstance(decoded, list):
            raise SignerError("rlp: expected input list for types.Header")
        if len(decoded) < _PRE_LONDON:
            raise SignerError("rlp: too few elements for types.Header")
        if len(decoded) > len(_FIELDS):
            raise SignerError(
                "invalid clique header: post-London fields (withdrawalsHash, blobGasUsed, "
                "excessBlobGas, parentBeaconRoot, ...) cannot be sealed by clique"
            )
        return cls(
            tuple(_check_field(*spec, item) for spec, item in zip(_FIELDS, decoded, strict=False))
        )

    @property
    def number(self) -> int:
        """The block number."""
        return int.from_bytes(self.items[8], "big")

    def clique_rlp(self) -> bytes:
        """CliqueRLP: the header RLP with extraData minus the seal (the signed bytes)."""
        return bytes(rlp.encode(list(self.items)))

    def seal_hash(self) -> bytes:
        """keccak256(CliqueRLP(header)): the hash the signer signs."""
        return keccak256(self.clique_rlp())

    def hash(self) -> bytes:
        """The block hash of the header with 65 zero bytes reserved for the seal in extraData."""
        items = list(self.items)
        items[_EXTRA] = items[_EXTRA] + bytes(SEAL_LENGTH)
        return keccak256(bytes(rlp.encode(items)))
