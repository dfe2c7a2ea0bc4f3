"""account_signGnosisSafeTx: the reference's Safe transaction, its EIP-712 form and response.

The caller supplies the Safe transaction and, usually, the safeTxHash it expects. The hash is
recomputed here; a supplied hash that does not match is refused. The reference only refused
when chainId was absent and otherwise signed its own hash silently, so a caller could obtain a
signature over a different transaction than the one whose hash it presented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clef.errors import InvalidParams, SignerError
from clef.eth.address import MixedcaseAddress, parse_address, to_checksum
from clef.eth.eip712 import DOMAIN_TYPE, TypedData, parse_big256
from clef.eth.hexutil import parse_bytes
from clef.eth.signdata import mixedcase_json
from clef.eth.tx.args import SendTxArgs

MAX_SAFE_DATA = 1 << 20
_UINT64 = (1 << 64) - 1
_UINT256 = (1 << 256) - 1

SAFE_TX_FIELDS = (
    ("to", "address"),
    ("value", "uint256"),
    ("data", "bytes"),
    ("operation", "uint8"),
    ("safeTxGas", "uint256"),
    ("baseGas", "uint256"),
    ("gasPrice", "uint256"),
    ("gasToken", "address"),
    ("refundReceiver", "address"),
    ("nonce", "uint256"),
)


def _uint(value: int, bits: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"invalid {name}: not an integer")
    if value < 0:
        raise InvalidParams(f"invalid {name}: negative")
    if value.bit_length() > bits:
        raise InvalidParams(f"invalid {name}: larger than {bits} bits")
    return value


def _decimal256(raw: object, name: str) -> int:
    # math.Decimal256: a JSON string (decimal or 0x-hex) or a bare JSON integer.
    if raw is None:
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _uint(raw, 256, name)
    if isinstance(raw, str):
        parsed = parse_big256(raw)
        if parsed is not None:
            return _uint(parsed, 256, name)
    raise InvalidParams(f"invalid {name}: want a decimal or 0x-hex integer string")


def _json_integer(raw: object, name: str, bits: int) -> int:
    # big.Int / uint8 from JSON: a bare integer number; quoted numbers and floats fail.
    if raw is None:
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _uint(raw, bits, name)
    raise InvalidParams(f"invalid {name}: want a JSON integer")


def _plain_address(raw: object, name: str) -> bytes:
    return bytes(20) if raw is None else parse_address(raw, name)


@dataclass(frozen=True)
class GnosisSafeTx:
    """A Safe multisig transaction as the reference's GnosisSafeTx (input fields only)."""

    safe: MixedcaseAddress
    to: MixedcaseAddress
    value: int = 0
    gas_price: int = 0
    data: bytes | None = None
    operation: int = 0
    gas_token: bytes = bytes(20)
    refund_receiver: bytes = bytes(20)
    base_gas: int = 0
    safe_tx_gas: int = 0
    nonce: int = 0
    safe_tx_hash: bytes | None = None
    chain_id: int | None = None

    def __post_init__(self) -> None:
        for name, address in (("safe", self.safe), ("to", self.to)):
            if not isinstance(address, MixedcaseAddress) or len(address.raw) != 20:
                raise InvalidParams(f"invalid {name}: not an address")
        for name, raw in (("gasToken", self.gas_token), ("refundReceiver", self.refund_receiver)):
            if not isinstance(raw, bytes) or len(raw) != 20:
                raise InvalidParams(f"invalid {name}: not a 20-byte address")
        _uint(self.value, 256, "value")
        _uint(self.gas_price, 256, "gasPrice")
        _uint(self.operation, 8, "operation")
        _uint(self.base_gas, 256, "baseGas")
        _uint(self.safe_tx_gas, 256, "safeTxGas")
        # The reference signed nonce.Uint64(), silently truncating a larger nonce.
        _uint(self.nonce, 64, "nonce")
        if self.chain_id is not None:
            _uint(self.chain_id, 256, "chainId")
        if self.data is not None and (
            not isinstance(self.data, bytes) or len(self.data) > MAX_SAFE_DATA
        ):
            raise InvalidParams(f"invalid data: not bytes of at most {MAX_SAFE_DATA} bytes")
        if self.safe_tx_hash is not None and (
            not isinstance(self.safe_tx_hash, bytes) or len(self.safe_tx_hash) != 32
        ):
            raise InvalidParams("invalid safeTxHash: not 32 bytes")

    @classmethod
    def parse(cls, obj: object) -> GnosisSafeTx:
        """Parse the caller's JSON (relay fields such as confirmations are ignored)."""
        if not isinstance(obj, dict):
            raise InvalidParams("invalid safeTx: not a JSON object")
        for required in ("safe", "to"):
            if obj.get(required) is None:
                raise InvalidParams(f"missing {required}: required in a Safe transaction")
        data = obj.get("data")
        tx_hash = obj.get("safeTxHash")
        chain = obj.get("chainId")
        return cls(
            safe=MixedcaseAddress.parse(obj["safe"], "safe"),
            to=MixedcaseAddress.parse(obj["to"], "to"),
            value=_decimal256(obj.get("value"), "value"),
            gas_price=_decimal256(obj.get("gasPrice"), "gasPrice"),
            data=None if data is None else parse_bytes(data, "data", MAX_SAFE_DATA),
            operation=_json_integer(obj.get("operation"), "operation", 8),
            gas_token=_plain_address(obj.get("gasToken"), "gasToken"),
            refund_receiver=_plain_address(obj.get("refundReceiver"), "refundReceiver"),
            base_gas=_json_integer(obj.get("baseGas"), "baseGas", 256),
            safe_tx_gas=_json_integer(obj.get("safeTxGas"), "safeTxGas", 256),
            nonce=_json_integer(obj.get("nonce"), "nonce", 64),
            safe_tx_hash=None if tx_hash is None else parse_bytes(tx_hash, "safeTxHash", 32),
            chain_id=None if chain is None else _decimal256(chain, "chainId"),
        )

    def typed_data(self, chain_id: int | None) -> TypedData:
        """The EIP-712 form; the domain has chainId only when one is given."""
        domain_type = [{"name": "verifyingContract", "type": "address"}]
        domain: dict[str, Any] = {"verifyingContract": to_checksum(self.safe.raw)}
        if chain_id is not None:
            domain_type.insert(0, {"name": "chainId", "type": "uint256"})
            domain["chainId"] = chain_id
        message = {
            "to": to_checksum(self.to.raw),
            "value": str(self.value),
            "data": "0x" + (self.data or b"").hex(),
            "operation": str(self.operation),
            "safeTxGas": str(self.safe_tx_gas),
            "baseGas": str(self.base_gas),
            "gasPrice": str(self.gas_price),
            "gasToken": to_checksum(self.gas_token),
            "refundReceiver": to_checksum(self.refund_receiver),
            "nonce": str(self.nonce),
        }
        return TypedData.parse(
            {
                "types": {
                    DOMAIN_TYPE: domain_type,
                    "SafeTx": [{"name": n, "type": t} for n, t in SAFE_TX_FIELDS],
                },
                "primaryType": "SafeTx",
                "domain": domain,
                "message": message,
            }
        )

    def to_typed_data(self, chain_id_default: int) -> TypedData:
        """The typed data to sign, checked against the caller's safeTxHash.

        As in the reference, a transaction without chainId is first hashed without one
        (Safe contracts before v1.3 had no chainId in the domain), then with the signer's
        chain id. A supplied hash that matches neither is refused, with or without chainId.
        """
        typed = self.typed_data(self.chain_id)
        if self.safe_tx_hash is None:
            if self.chain_id is not None:
                return typed
            # The reference compared with the zero hash here, so this always fails.
            expected = bytes(32)
        else:
            expected = self.safe_tx_hash
        if typed.digest() == expected:
            return typed
        if self.chain_id is None:
            typed = self.typed_data(chain_id_default)
            if typed.digest() == expected:
                return typed
        raise SignerError(
            f"mismatched safeTxHash; have 0x{typed.digest().hex()} want 0x{expected.hex()}"
        )

    def validation_args(self) -> SendTxArgs:
        """The transaction the validator checks (reference ArgsForValidation)."""
        return SendTxArgs(
            from_=self.safe,
            to=self.to,
            # gas only feeds the validator; saturate instead of the reference's truncation.
            gas=min(self.safe_tx_gas, _UINT64),
            gas_price=self.gas_price,
            value=self.value,
            nonce=self.nonce,
            data=self.data,
            chain_id=self.chain_id,
        )

    def result_json(self, typed: TypedData, signature: bytes, sender: bytes) -> dict[str, Any]:
        """The response: the input plus signature, contractTransactionHash and sender."""
        chain_id = _domain_chain_id(typed)
        if typed != self.typed_data(chain_id):
            raise ValueError("typed data is not this Safe transaction")
        if len(signature) != 65 or len(sender) != 20:
            raise ValueError("signature must be 65 bytes and sender 20 bytes")
        out: dict[str, Any] = {
            "signature": "0x" + signature.hex(),
            "contractTransactionHash": "0x" + typed.digest().hex(),
            "sender": to_checksum(sender),
            "safe": mixedcase_json(self.safe.original),
            "to": mixedcase_json(self.to.original),
            "value": str(self.value),
            "gasPrice": str(self.gas_price),
            "data": None if self.data is None else "0x" + self.data.hex(),
            "operation": self.operation,
            "gasToken": "0x" + self.gas_token.hex(),
            "refundReceiver": "0x" + self.refund_receiver.hex(),
            "baseGas": self.base_gas,
            "safeTxGas": self.safe_tx_gas,
            "nonce": self.nonce,
            "safeTxHash": "0x" + (self.safe_tx_hash or bytes(32)).hex(),
        }
        if chain_id is not None:
            out["chainId"] = hex(chain_id)
        return out


def _domain_chain_id(typed: TypedData) -> int | None:
    names = [member.name for member in typed.schema.fields(DOMAIN_TYPE)]
    if "chainId" not in names:
        return None
    chain = typed.domain[names.index("chainId")]
    return chain if isinstance(chain, int) else None
