"""EIP-1559 dynamic-fee transactions (type 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.eth.tx.base import TX_TYPE_DYNAMIC_FEE, FeeCapTransaction, common_fields

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class DynamicFeeTransaction(FeeCapTransaction):
    """Type 2: priority fee and fee cap instead of a gas price.

    Signed payload: [chainId, nonce, tip, feeCap, gas, to, value, data, accessList].
    """

    tx_type = TX_TYPE_DYNAMIC_FEE


def build_transaction(args: SendTxArgs, chain_id: int) -> DynamicFeeTransaction:
    """Build the type-2 transaction for args; a missing tip is 0 and gasPrice is not signed,
    as in the reference (the policy worker warns about both)."""
    if args.tx_type != TX_TYPE_DYNAMIC_FEE or args.max_fee_per_gas is None:
        raise ValueError("not a dynamic-fee transaction request")
    return DynamicFeeTransaction(
        **common_fields(args, chain_id),
        max_priority_fee_per_gas=args.max_priority_fee_per_gas or 0,
        max_fee_per_gas=args.max_fee_per_gas,
        access_list=args.access_list or (),
    )
