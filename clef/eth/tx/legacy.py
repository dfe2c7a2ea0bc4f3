"""Legacy transactions (type 0), replay-protected with EIP-155 unless the chain id is 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.eth.hashing import keccak256
from clef.eth.tx.base import TX_TYPE_LEGACY, GasPriceTransaction, common_fields, rlp_encode

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs


@dataclass(frozen=True)
class LegacyTransaction(GasPriceTransaction):
    """Type 0; chain_id 0 means unprotected (pre-EIP-155, v = 27/28), as with --chainid 0."""

    tx_type = TX_TYPE_LEGACY

    def payload(self) -> list[object]:
        """[nonce, gasPrice, gas, to, value, data]."""
        return [self.nonce, self.gas_price, self.gas, self.to_rlp, self.value, self.data]

    @property
    def protected(self) -> bool:
        """EIP-155 protection is on for every chain id but 0."""
        return self.chain_id != 0

    def v_value(self, y_parity: int) -> int:
        """EIP-155: v = 35 + 2·chainId + parity; unprotected: 27 + parity."""
        if self.protected:
            return 35 + 2 * self.chain_id + y_parity
        return 27 + y_parity

    def signing_hash(self) -> bytes:
        """keccak256(rlp(payload ‖ [chainId, 0, 0])) with EIP-155, else keccak256(rlp(payload))."""
        if self.protected:
            return keccak256(rlp_encode([*self.payload(), self.chain_id, 0, 0]))
        return keccak256(rlp_encode(self.payload()))

    def encode(self, v: int, r: int, s: int) -> bytes:
        """rlp(payload ‖ [v, r, s]), with no type byte."""
        return rlp_encode([*self.payload(), v, r, s])


def build_transaction(args: SendTxArgs, chain_id: int) -> LegacyTransaction:
    """Build the legacy transaction for args; a missing gasPrice is 0, as in the reference."""
    if args.tx_type != TX_TYPE_LEGACY:
        raise ValueError("not a legacy transaction request")
    return LegacyTransaction(**common_fields(args, chain_id), gas_price=args.gas_price or 0)
