"""EIP-2930 access-list transactions (type 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.eth.hexutil import encode_quantity
from clef.eth.tx.base import (
    TX_TYPE_ACCESS_LIST,
    AccessTuple,
    UnsignedTransaction,
    check_access_list,
    check_uint,
    resolve_chain_id,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class AccessListTransaction(UnsignedTransaction):
    """Type 1: a legacy gas price plus an access list."""

    gas_price: int
    access_list: tuple[AccessTuple, ...]

    tx_type = TX_TYPE_ACCESS_LIST

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.gas_price, 256, "gasPrice")
        check_access_list(self.access_list)

    def payload(self) -> list[object]:
        """[chainId, nonce, gasPrice, gas, to, value, data, accessList]."""
        return [
            self.chain_id,
            self.nonce,
            self.gas_price,
            self.gas,
            self.to_rlp,
            self.value,
            self.data,
            [t.to_rlp() for t in self.access_list],
        ]

    def fee_json(self) -> dict[str, object]:
        """gasPrice, and the 1559 fee fields as null."""
        return {
            "gasPrice": encode_quantity(self.gas_price),
            "maxPriorityFeePerGas": None,
            "maxFeePerGas": None,
        }

    def lists_json(self) -> dict[str, object]:
        """accessList."""
        return {"accessList": [t.to_json() for t in self.access_list]}


def build_transaction(args: SendTxArgs, chain_id: int) -> AccessListTransaction:
    """Build the type-1 transaction for args; a missing gasPrice is 0, as in the reference."""
    if args.tx_type != TX_TYPE_ACCESS_LIST or args.access_list is None:
        raise ValueError("not an access-list transaction request")
    return AccessListTransaction(
        chain_id=resolve_chain_id(args.chain_id, chain_id),
        nonce=args.nonce,
        gas=args.gas,
        to=None if args.to is None else args.to.raw,
        value=args.value,
        data=args.calldata,
        gas_price=args.gas_price or 0,
        access_list=args.access_list,
    )
