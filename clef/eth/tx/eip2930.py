"""EIP-2930 access-list transactions (type 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.eth.tx.base import (
    TX_TYPE_ACCESS_LIST,
    AccessTuple,
    GasPriceTransaction,
    access_list_json,
    access_list_rlp,
    check_access_list,
    common_fields,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class AccessListTransaction(GasPriceTransaction):
    """Type 1: a legacy gas price plus an access list.

    Signed payload: [chainId, nonce, gasPrice, gas, to, value, data, accessList].
    """

    access_list: tuple[AccessTuple, ...]

    tx_type = TX_TYPE_ACCESS_LIST

    def __post_init__(self) -> None:
        super().__post_init__()
        check_access_list(self.access_list)

    def tail_payload(self) -> list[object]:
        """[accessList]."""
        return [access_list_rlp(self.access_list)]

    def lists_json(self) -> dict[str, object]:
        """accessList."""
        return {"accessList": access_list_json(self.access_list)}


def build_transaction(args: SendTxArgs, chain_id: int) -> AccessListTransaction:
    """Build the type-1 transaction for args; a missing gasPrice is 0, as in the reference."""
    if args.tx_type != TX_TYPE_ACCESS_LIST or args.access_list is None:
        raise ValueError("not an access-list transaction request")
    return AccessListTransaction(
        **common_fields(args, chain_id),
        gas_price=args.gas_price or 0,
        access_list=args.access_list,
    )
