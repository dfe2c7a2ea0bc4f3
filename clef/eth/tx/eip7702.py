"""EIP-7702 set-code transactions (type 4) and their signed authorizations.

The reference had no authorizationList field and signed such requests as type 2, silently
dropping the authorizations; here they are carried into the signed transaction unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clef.errors import InvalidParams
from clef.eth.address import parse_address
from clef.eth.hashing import keccak256
from clef.eth.hexutil import encode_bytes, encode_quantity, parse_quantity
from clef.eth.secp import SECP256K1_HALF_N, SECP256K1_N, recover_address
from clef.eth.tx.base import (
    MAX_AUTHORIZATIONS,
    TX_TYPE_SET_CODE,
    FeeCapTransaction,
    check_bytes,
    check_uint,
    common_fields,
    json_list,
    required_fields,
    rlp_encode,
)

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs

AUTHORIZATION_MAGIC = b"\x05"
_AUTH_FIELDS = ("chainId", "address", "nonce", "yParity", "r", "s")


@dataclass(frozen=True)
class Authorization:
    """A signed EIP-7702 authorization: delegate `address`'s code to the signer's account."""

    chain_id: int
    address: bytes
    nonce: int
    y_parity: int
    r: int
    s: int

    def __post_init__(self) -> None:
        # Bounds from EIP-7702: a tuple outside them makes the whole transaction invalid.
        check_uint(self.chain_id, 256, "authorizationList.chainId")
        check_bytes(self.address, "authorizationList.address", length=20)
        check_uint(self.nonce, 64, "authorizationList.nonce")
        check_uint(self.y_parity, 8, "authorizationList.yParity")
        check_uint(self.r, 256, "authorizationList.r")
        check_uint(self.s, 256, "authorizationList.s")

    @classmethod
    def from_json(cls, value: object, name: str) -> Authorization:
        """Parse {chainId, address, nonce, yParity, r, s} (hex quantities, all required)."""
        fields = required_fields(value, name, _AUTH_FIELDS, "SetCodeAuthorization")
        return cls(
            chain_id=parse_quantity(fields["chainId"], f"{name}.chainId"),
            address=parse_address(fields["address"], f"{name}.address"),
            nonce=parse_quantity(fields["nonce"], f"{name}.nonce", bits=64),
            y_parity=parse_quantity(fields["yParity"], f"{name}.yParity", bits=8),
            r=parse_quantity(fields["r"], f"{name}.r"),
            s=parse_quantity(fields["s"], f"{name}.s"),
        )

    def to_json(self) -> dict[str, object]:
        """The execution-API form, in geth's field order."""
        return {
            "chainId": encode_quantity(self.chain_id),
            "address": encode_bytes(self.address),
            "nonce": encode_quantity(self.nonce),
            "yParity": encode_quantity(self.y_parity),
            "r": encode_quantity(self.r),
            "s": encode_quantity(self.s),
        }

    def to_rlp(self) -> list[object]:
        """[chain_id, address, nonce, y_parity, r, s]."""
        return [self.chain_id, self.address, self.nonce, self.y_parity, self.r, self.s]

    def signing_hash(self) -> bytes:
        """keccak256(0x05 ‖ rlp([chain_id, address, nonce])), what the authority signed."""
        return keccak256(
            AUTHORIZATION_MAGIC + rlp_encode([self.chain_id, self.address, self.nonce])
        )

    def recover_signer(self) -> bytes | None:
        """The authority's 20-byte address, or None if the signature is one EIP-7702 skips."""
        if self.y_parity not in (0, 1) or not 0 < self.r < SECP256K1_N:
            return None
        if not 0 < self.s <= SECP256K1_HALF_N:
            return None
        try:
            return recover_address(
                self.signing_hash(), self.y_parity, self.r, self.s, require_low_s=True
            )
        except InvalidParams:
            return None


def parse_authorization_list(
    value: object, name: str = "authorizationList"
) -> tuple[Authorization, ...]:
    """Parse a JSON authorization list, bounded in length before any item is looked at."""
    items = json_list(value, name, MAX_AUTHORIZATIONS)
    return tuple(Authorization.from_json(item, f"{name}[{i}]") for i, item in enumerate(items))


@dataclass(frozen=True)
class SetCodeTransaction(FeeCapTransaction):
    """Type 4: EIP-1559 fees plus a non-empty authorization list; never a contract creation.

    Signed payload: [chainId, nonce, tip, feeCap, gas, to, value, data, accessList,
    authorizationList].
    """

    authorization_list: tuple[Authorization, ...]

    tx_type = TX_TYPE_SET_CODE
    needs_recipient = "a set-code (EIP-7702) transaction"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_authorization_list(self.authorization_list)

    def tail_payload(self) -> list[object]:
        """[accessList, authorizationList]."""
        return [*super().tail_payload(), [a.to_rlp() for a in self.authorization_list]]

    def lists_json(self) -> dict[str, object]:
        """accessList and authorizationList."""
        return {
            **super().lists_json(),
            "authorizationList": [a.to_json() for a in self.authorization_list],
        }


def check_authorization_list(value: object) -> tuple[Authorization, ...]:
    """Check a built authorization list: a non-empty tuple of Authorization within the bound."""
    if not isinstance(value, tuple) or not all(isinstance(a, Authorization) for a in value):
        raise InvalidParams("invalid authorizationList: not a tuple of Authorization")
    # EIP-7702: a set-code transaction with an empty list is invalid.
    if not value:
        raise InvalidParams("invalid authorizationList: must not be empty")
    if len(value) > MAX_AUTHORIZATIONS:
        raise InvalidParams(
            f"invalid authorizationList: too many items ({len(value)} > {MAX_AUTHORIZATIONS})"
        )
    return value


def build_transaction(args: SendTxArgs, chain_id: int) -> SetCodeTransaction:
    """Build the type-4 transaction for args, signed for the configured chain id."""
    if args.tx_type != TX_TYPE_SET_CODE or args.to is None or args.authorization_list is None:
        raise ValueError("not a set-code transaction request")
    if args.max_fee_per_gas is None or args.max_priority_fee_per_gas is None:
        raise ValueError("set-code transaction request without fee caps")
    return SetCodeTransaction(
        **common_fields(args, chain_id),
        max_priority_fee_per_gas=args.max_priority_fee_per_gas,
        max_fee_per_gas=args.max_fee_per_gas,
        access_list=args.access_list or (),
        authorization_list=args.authorization_list,
    )
