"""EIP-4844 blob transactions (type 3), without sidecars: blobs are refused at parse time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.errors import InvalidParams
from clef.eth.hexutil import encode_bytes, encode_quantity
from clef.eth.tx.base import (
    MAX_BLOB_HASHES,
    TX_TYPE_BLOB,
    FeeCapTransaction,
    check_bytes,
    check_uint,
    common_fields,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class BlobTransaction(FeeCapTransaction):
    """Type 3: 1559 fees, a blob fee cap and at least one versioned blob hash; never a creation.

    Signed payload: [chainId, nonce, tip, feeCap, gas, to, value, data, accessList, blobFeeCap,
    blobVersionedHashes].
    """

    max_fee_per_blob_gas: int
    blob_versioned_hashes: tuple[bytes, ...]

    tx_type = TX_TYPE_BLOB
    needs_recipient = "a blob transaction"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.max_fee_per_blob_gas, 256, "maxFeePerBlobGas")
        check_blob_hashes(self.blob_versioned_hashes)

    def tail_payload(self) -> list[object]:
        """[accessList, blobFeeCap, blobVersionedHashes]."""
        return [*super().tail_payload(), self.max_fee_per_blob_gas, list(self.blob_versioned_hashes)]

    def fee_json(self) -> dict[str, object]:
        """gasPrice is null; the two fee caps and the blob fee cap."""
        return {**super().fee_json(), "maxFeePerBlobGas": encode_quantity(self.max_fee_per_blob_gas)}

    def lists_json(self) -> dict[str, object]:
        """accessList and blobVersionedHashes."""
        return {
            **super().lists_json(),
            "blobVersionedHashes": [encode_bytes(h) for h in self.blob_versioned_hashes],
        }


def check_blob_hashes(value: object) -> tuple[bytes, ...]:
    """Check built blob hashes: a non-empty tuple of 32-byte hashes within the bound."""
    if not isinstance(value, tuple):
        raise InvalidParams("invalid blobVersionedHashes: not a tuple")
    # EIP-4844: a blob transaction carries at least one blob.
    if not value:
        raise InvalidParams(
            "invalid blobVersionedHashes: a blob transaction needs at least one hash"
        )
    if len(value) > MAX_BLOB_HASHES:
        raise InvalidParams(
            f"invalid blobVersionedHashes: too many items ({len(value)} > {MAX_BLOB_HASHES})"
        )
    for item in value:
        check_bytes(item, "blobVersionedHashes", length=32)
    return value


def build_transaction(args: SendTxArgs, chain_id: int) -> BlobTransaction:
    """Build the type-3 transaction for args (SendTxArgs guarantees the required fields)."""
    if (
        args.tx_type != TX_TYPE_BLOB
        or args.to is None
        or args.blob_versioned_hashes is None
        or args.max_fee_per_gas is None
        or args.max_priority_fee_per_gas is None
        or args.max_fee_per_blob_gas is None
    ):
        raise ValueError("not a complete blob transaction request")
    return BlobTransaction(
        **common_fields(args, chain_id),
        max_priority_fee_per_gas=args.max_priority_fee_per_gas,
        max_fee_per_gas=args.max_fee_per_gas,
        access_list=args.access_list or (),
        max_fee_per_blob_gas=args.max_fee_per_blob_gas,
        blob_versioned_hashes=args.blob_versioned_hashes,
    )
