"""Transactions: the SendTxArgs request, one module per type, and the dispatcher between them."""

from __future__ import annotations

from collections.abc import Callable

from clef.eth.tx import eip1559, eip2930, eip4844, eip7702, legacy
from clef.eth.tx.args import SendTxArgs, check_chain_id, parse_send_tx_args
from clef.eth.tx.base import AccessTuple, SignedTransaction, UnsignedTransaction
from clef.eth.tx.eip7702 import Authorization

__all__ = [
    "AccessTuple",
    "Authorization",
    "SendTxArgs",
    "SignedTransaction",
    "UnsignedTransaction",
    "build_transaction",
    "check_chain_id",
    "parse_send_tx_args",
]

_BUILDERS: dict[int, Callable[[SendTxArgs, int], UnsignedTransaction]] = {
    legacy.LegacyTransaction.tx_type: legacy.build_transaction,
    eip2930.AccessListTransaction.tx_type: eip2930.build_transaction,
    eip1559.DynamicFeeTransaction.tx_type: eip1559.build_transaction,
    eip4844.BlobTransaction.tx_type: eip4844.build_transaction,
    eip7702.SetCodeTransaction.tx_type: eip7702.build_transaction,
}


def build_transaction(args: SendTxArgs, chain_id: int) -> UnsignedTransaction:
    """Build the unsigned transaction of the type args selects, for the configured chain id.

    Raises SignerError("requested chainid N does not match ...") if args.chainId differs.
    """
    return _BUILDERS[args.tx_type](args, chain_id)
