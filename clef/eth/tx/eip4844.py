"""EIP-4844 blob transactions (type 3), without sidecars: blobs are refused at parse time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.errors import InvalidParams
from clef.eth.hexutil import encode_bytes, encode_quantity
from clef.eth.tx.base import (
    MAX_BLOB_HASHES,
    TX_TYPE_BLOB,
    AccessTuple,
    UnsignedTransaction,
    check_access_list,
    check_bytes,
    check_uint,
    resolve_chain_id,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class BlobTransaction(UnsignedTransaction):
    """Type 3: 1559 fees, a blob fee cap and at least one versioned blob hash; never a creation."""

    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    access_list: tuple[AccessTuple, ...]
    max_fee_per_blob_gas: int
    blob_versioned_hashes: tuple[bytes, ...]

    tx_type = TX_TYPE_BLOB

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.to is None:
            raise InvalidParams("invalid to: a blob transaction needs a recipient")
        check_uint(self.max_priority_fee_per_gas, 256, "maxPriorityFeePerGas")
        check_uint(self.max_fee_per_gas, 256, "maxFeePerGas")
        check_access_list(self.access_list)
        check_uint(self.max_fee_per_blob_gas, 256, "maxFeePerBlobGas")
        hashes = self.blob_versioned_hashes
        if not isinstance(hashes, tuple) or not 0 < len(hashes) <= MAX_BLOB_HASHES:
            raise InvalidParams(f"invalid blobVersionedHashes: want 1 to {MAX_BLOB_HASHES} hashes")
        for item in hashes:
            check_bytes(item, "blobVersionedHashes", length=32)

    def payload(self) -> list[object]:
        """[chainId, nonce, tip, feeCap, gas, to, value, data, accessList, blobFeeCap, hashes]."""
        return [
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas,
            self.to_rlp,
            self.value,
            self.data,
            [t.to_rlp() for t in self.access_list],
            self.max_fee_per_blob_gas,
            list(self.blob_versioned_hashes),
        ]

    def fee_json(self) -> dict[str, object]:
        """gasPrice is null; the two fee caps and the blob fee cap."""
        return {
            "gasPrice": None,
            "maxPriorityFeePerGas": encode_quantity(self.max_priority_fee_per_gas),
            "maxFeePerGas": encode_quantity(self.max_fee_per_gas),
            "maxFeePerBlobGas": encode_quantity(self.max_fee_per_blob_gas),
        }

    def lists_json(self) -> dict[str, object]:
        """accessList and blobVersionedHashes."""
        return {
            "accessList": [t.to_json() for t in self.access_list],
            "blobVersionedHashes": [encode_bytes(h) for h in self.blob_versioned_hashes],
        }


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
        chain_id=resolve_chain_id(args.chain_id, chain_id),
        nonce=args.nonce,
        gas=args.gas,
        to=args.to.raw,
        value=args.value,
        data=args.calldata,
        max_priority_fee_per_gas=args.max_priority_fee_per_gas,
        max_fee_per_gas=args.max_fee_per_gas,
        access_list=args.access_list or (),
        max_fee_per_blob_gas=args.max_fee_per_blob_gas,
        blob_versioned_hashes=args.blob_versioned_hashes,
    )
