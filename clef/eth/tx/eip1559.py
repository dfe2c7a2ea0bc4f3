"""EIP-1559 dynamic-fee transactions (type 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.eth.hexutil import encode_quantity
from clef.eth.tx.base import (
    TX_TYPE_DYNAMIC_FEE,
    AccessTuple,
    UnsignedTransaction,
    check_access_list,
    check_uint,
    resolve_chain_id,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class DynamicFeeTransaction(UnsignedTransaction):
    """Type 2: priority fee and fee cap instead of a gas price."""

    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    access_list: tuple[AccessTuple, ...]

    tx_type = TX_TYPE_DYNAMIC_FEE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.max_priority_fee_per_gas, 256, "maxPriorityFeePerGas")
        check_uint(self.max_fee_per_gas, 256, "maxFeePerGas")
        check_access_list(self.access_list)

    def payload(self) -> list[object]:
        """[chainId, nonce, tip, feeCap, gas, to, value, data, accessList]."""
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
        ]

    def fee_json(self) -> dict[str, object]:
        """gasPrice is null; the two fee caps."""
        return {
            "gasPrice": None,
            "maxPriorityFeePerGas": encode_quantity(self.max_priority_fee_per_gas),
            "maxFeePerGas": encode_quantity(self.max_fee_per_gas),
        }

    def lists_json(self) -> dict[str, object]:
        """accessList."""
        return {"accessList": [t.to_json() for t in self.access_list]}


def build_transaction(args: SendTxArgs, chain_id: int) -> DynamicFeeTransaction:
    """Build the type-2 transaction for args; a missing tip is 0 and gasPrice is not signed,
    as in the reference (the policy worker warns about both)."""
    if args.tx_type != TX_TYPE_DYNAMIC_FEE or args.max_fee_per_gas is None:
        raise ValueError("not a dynamic-fee transaction request")
    return DynamicFeeTransaction(
        chain_id=resolve_chain_id(args.chain_id, chain_id),
        nonce=args.nonce,
        gas=args.gas,
        to=None if args.to is None else args.to.raw,
        value=args.value,
        data=args.calldata,
        max_priority_fee_per_gas=args.max_priority_fee_per_gas or 0,
        max_fee_per_gas=args.max_fee_per_gas,
        access_list=args.access_list or (),
    )
