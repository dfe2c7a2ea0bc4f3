"""The reference's SendTxArgs: the transaction request a caller (or a UI, modified) sends.

Parsing follows geth (keys matched case-insensitively, unknown keys ignored, null = absent, the
type inferred from the fields) except where geth would sign something other than what the
request says: a `type` that contradicts the fields, blob fields on a non-blob transaction,
authorizations next to blob hashes, and blob sidecars are refused instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from clef.errors import InvalidParams, SignerError
from clef.eth.address import MixedcaseAddress
from clef.eth.hexutil import encode_bytes, encode_quantity, parse_bytes, parse_quantity
from clef.eth.tx.base import (
    MAX_BLOB_HASHES,
    MAX_DATA_BYTES,
    TX_TYPE_ACCESS_LIST,
    TX_TYPE_BLOB,
    TX_TYPE_DYNAMIC_FEE,
    TX_TYPE_LEGACY,
    TX_TYPE_SET_CODE,
    AccessTuple,
    check_access_list,
    check_bytes,
    check_uint,
    json_kind,
    json_list,
    object_fields,
    parse_access_list,
    parse_hash,
    resolve_chain_id,
)
from clef.eth.tx.eip4844 import check_blob_hashes
from clef.eth.tx.eip7702 import Authorization, check_authorization_list, parse_authorization_list

AMBIGUOUS_DATA_INPUT = 'ambiguous request: both "data" and "input" are set and are not identical'
BLOB_RECIPIENT_REQUIRED = "transaction recipient must be set for blob transactions"
SIDECARS_NOT_SUPPORTED = "blob sidecars are not supported"

_FIELDS = (
    "from",
    "to",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "nonce",
    "data",
    "input",
    "accessList",
    "chainId",
    "maxFeePerBlobGas",
    "blobVersionedHashes",
    "authorizationList",
    # Not fields of SendTxArgs, but keys whose silent dropping would change what is signed.
    "type",
    "blobVersion",
    "blobs",
    "commitments",
    "proofs",
)
_SIDECAR_FIELDS = ("blobVersion", "blobs", "commitments", "proofs")


@dataclass(frozen=True)
class SendTxArgs:
    """A transaction request; None means the field was absent (or null) in the JSON.

    `data` holds the calldata whether it was sent as "data" or "input". Construction checks
    every field and the cross-field rules, so an instance is always signable.
    """

    from_: MixedcaseAddress
    to: MixedcaseAddress | None = None
    gas: int = 0
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    value: int = 0
    nonce: int = 0
    data: bytes | None = None
    access_list: tuple[AccessTuple, ...] | None = None
    chain_id: int | None = None
    max_fee_per_blob_gas: int | None = None
    blob_versioned_hashes: tuple[bytes, ...] | None = None
    authorization_list: tuple[Authorization, ...] | None = None

    def __post_init__(self) -> None:
        _check_address(self.from_, "from")
        if self.to is not None:
            _check_address(self.to, "to")
        check_uint(self.gas, 64, "gas")
        check_uint(self.value, 256, "value")
        check_uint(self.nonce, 64, "nonce")
        for name, number in (
            ("gasPrice", self.gas_price),
            ("maxFeePerGas", self.max_fee_per_gas),
            ("maxPriorityFeePerGas", self.max_priority_fee_per_gas),
            ("chainId", self.chain_id),
            ("maxFeePerBlobGas", self.max_fee_per_blob_gas),
        ):
            if number is not None:
                check_uint(number, 256, name)
        if self.data is not None:
            check_bytes(self.data, "data", max_len=MAX_DATA_BYTES)
        if self.access_list is not None:
            check_access_list(self.access_list)
        if self.blob_versioned_hashes is not None:
            check_blob_hashes(self.blob_versioned_hashes)
        if self.authorization_list is not None:
            check_authorization_list(self.authorization_list)
        self._check_type_fields()

    def _check_type_fields(self) -> None:
        # Fields the reference would silently drop for the inferred type are refused: the
        # user must never approve a field that does not end up in what is signed.
        if self.blob_versioned_hashes is not None and self.authorization_list is not None:
            raise InvalidParams(
                "invalid authorizationList: cannot be combined with blobVersionedHashes"
            )
        if self.max_fee_per_blob_gas is not None and self.blob_versioned_hashes is None:
            raise InvalidParams(
                "invalid maxFeePerBlobGas: set on a transaction without blobVersionedHashes"
            )
        tx_type = self.tx_type
        if tx_type == TX_TYPE_BLOB:
            if self.to is None:
                raise SignerError(BLOB_RECIPIENT_REQUIRED)
            # The reference panics here (uint256.MustFromBig on nil); we refuse cleanly.
            if self.max_fee_per_blob_gas is None:
                raise InvalidParams("missing maxFeePerBlobGas: required for blob transactions")
        if tx_type in (TX_TYPE_BLOB, TX_TYPE_SET_CODE):
            kind = "blob" if tx_type == TX_TYPE_BLOB else "set-code"
            if self.max_fee_per_gas is None:
                raise InvalidParams(f"missing maxFeePerGas: required for {kind} transactions")
            if self.max_priority_fee_per_gas is None:
                raise InvalidParams(
                    f"missing maxPriorityFeePerGas: required for {kind} transactions"
                )
        if tx_type == TX_TYPE_SET_CODE and self.to is None:
            raise InvalidParams("invalid to: a set-code (EIP-7702) transaction needs a recipient")

    @property
    def tx_type(self) -> int:
        """The transaction type the fields select (reference order, plus 7702 after blobs)."""
        if self.blob_versioned_hashes is not None:
            return TX_TYPE_BLOB
        if self.authorization_list is not None:
            return TX_TYPE_SET_CODE
        if self.max_fee_per_gas is not None:
            return TX_TYPE_DYNAMIC_FEE
        if self.access_list is not None:
            return TX_TYPE_ACCESS_LIST
        return TX_TYPE_LEGACY

    @property
    def calldata(self) -> bytes:
        """The calldata, empty when none was given."""
        return self.data if self.data is not None else b""

    @property
    def is_creation(self) -> bool:
        """True when the transaction deploys a contract (no recipient)."""
        return self.to is None

    def to_json(self) -> dict[str, object]:
        """The reference's marshalling for the UI; parse_send_tx_args() reads it back unchanged."""
        out: dict[str, object] = {
            "from": _mixedcase_json(self.from_),
            "to": None if self.to is None else _mixedcase_json(self.to),
            "gas": encode_quantity(self.gas),
            "gasPrice": _optional_quantity(self.gas_price),
            "maxFeePerGas": _optional_quantity(self.max_fee_per_gas),
            "maxPriorityFeePerGas": _optional_quantity(self.max_priority_fee_per_gas),
            "value": encode_quantity(self.value),
            "nonce": encode_quantity(self.nonce),
        }
        if self.data is not None:
            out["data"] = encode_bytes(self.data)
        # An empty access list is still emitted: its presence is what makes a type-1 tx.
        if self.access_list is not None:
            out["accessList"] = [t.to_json() for t in self.access_list]
        if self.chain_id is not None:
            out["chainId"] = encode_quantity(self.chain_id)
        if self.max_fee_per_blob_gas is not None:
            out["maxFeePerBlobGas"] = encode_quantity(self.max_fee_per_blob_gas)
        if self.blob_versioned_hashes is not None:
            out["blobVersionedHashes"] = [encode_bytes(h) for h in self.blob_versioned_hashes]
        if self.authorization_list is not None:
            out["authorizationList"] = [a.to_json() for a in self.authorization_list]
        return out


def _check_address(value: object, name: str) -> None:
    if not isinstance(value, MixedcaseAddress):
        raise InvalidParams(f"invalid {name}: not a MixedcaseAddress")
    check_bytes(value.raw, name, length=20)


def _mixedcase_json(address: MixedcaseAddress) -> str:
    original = address.original
    return original if original.startswith(("0x", "0X")) else "0x" + original


def _optional_quantity(number: int | None) -> str | None:
    return None if number is None else encode_quantity(number)


def _optional(fields: dict[str, object], key: str, bits: int = 256) -> int | None:
    value = fields.get(key)
    return None if value is None else parse_quantity(value, key, bits)


def _parse_to(value: object) -> MixedcaseAddress | None:
    # The spec: "If omitted or 0x, will cause contract creation".
    if value is None or value == "0x":
        return None
    return MixedcaseAddress.parse(value, "to")


def _parse_data(fields: dict[str, object]) -> bytes | None:
    data = None if "data" not in fields else parse_bytes(fields["data"], "data", MAX_DATA_BYTES)
    if "input" not in fields:
        return data
    given = parse_bytes(fields["input"], "input", MAX_DATA_BYTES)
    if data is not None and data != given:
        raise SignerError(AMBIGUOUS_DATA_INPUT)
    return given


def parse_send_tx_args(obj: object) -> SendTxArgs:
    """Parse a SendTxArgs JSON object (a request's params[0], or a UI's modified transaction).

    Raises InvalidParams naming the field for any bad encoding, type or size, and SignerError
    with the reference's message for data/input ambiguity and a blob tx without recipient.
    """
    if not isinstance(obj, dict):
        # object_fields would name the field "" at the top level ("invalid : json: ...").
        raise InvalidParams(
            f"invalid transaction: json: cannot unmarshal {json_kind(obj)} into object"
        )
    fields = object_fields(obj, "", _FIELDS)
    for sidecar in _SIDECAR_FIELDS:
        if sidecar in fields:
            raise InvalidParams(f"invalid {sidecar}: {SIDECARS_NOT_SUPPORTED}")
    if "from" not in fields:
        raise InvalidParams("missing from: the sending account is required")
    hashes = None
    if "blobVersionedHashes" in fields:
        items = json_list(fields["blobVersionedHashes"], "blobVersionedHashes", MAX_BLOB_HASHES)
        hashes = tuple(parse_hash(h, f"blobVersionedHashes[{i}]") for i, h in enumerate(items))
    args = SendTxArgs(
        from_=MixedcaseAddress.parse(fields["from"], "from"),
        to=_parse_to(fields.get("to")),
        gas=parse_quantity(fields.get("gas", "0x0"), "gas", bits=64),
        gas_price=_optional(fields, "gasPrice"),
        max_fee_per_gas=_optional(fields, "maxFeePerGas"),
        max_priority_fee_per_gas=_optional(fields, "maxPriorityFeePerGas"),
        value=parse_quantity(fields.get("value", "0x0"), "value"),
        nonce=parse_quantity(fields.get("nonce", "0x0"), "nonce", bits=64),
        data=_parse_data(fields),
        access_list=None if "accessList" not in fields else parse_access_list(fields["accessList"]),
        chain_id=_optional(fields, "chainId"),
        max_fee_per_blob_gas=_optional(fields, "maxFeePerBlobGas"),
        blob_versioned_hashes=hashes,
        authorization_list=(
            None
            if "authorizationList" not in fields
            else parse_authorization_list(fields["authorizationList"])
        ),
    )
    if "type" in fields:
        declared = parse_quantity(fields["type"], "type", bits=8)
        if declared != args.tx_type:
            raise InvalidParams(
                f"invalid type: {encode_quantity(declared)} contradicts the fields, "
                f"which make a type {encode_quantity(args.tx_type)} transaction"
            )
    return args


def check_chain_id(args: SendTxArgs, configured: int) -> int:
    """Return the chain id to sign for; refuse a request whose chainId differs (reference text)."""
    return resolve_chain_id(args.chain_id, configured)
