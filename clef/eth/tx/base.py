"""What every transaction type shares: field checks, JSON object decoding, access lists, the
unsigned/signed pair, RLP and hashing, and the two fee models (a gas price for types 0-1, the
EIP-1559 fee caps with an access list for types 2-4). One subclass per type lives in its own
module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypedDict

from clef.errors import InvalidParams, SignerError
from clef.eth.address import parse_address
from clef.eth.hashing import keccak256
from clef.eth.hexutil import encode_bytes, encode_quantity, parse_bytes
from clef.eth.secp import SECP256K1_HALF_N, SECP256K1_N, recover_address

if TYPE_CHECKING:
    from clef.eth.tx.args import SendTxArgs

# Size bounds on attacker-chosen lists and calldata (DoS). geth's transaction pool refuses
# transactions over 128 KiB, so nothing larger could be broadcast anyway.
MAX_DATA_BYTES = 128 * 1024
MAX_ACCESS_LIST_TUPLES = 4096
MAX_STORAGE_KEYS = 4096  # in total, over all tuples of one access list
MAX_BLOB_HASHES = 64
MAX_AUTHORIZATIONS = 1024

TX_TYPE_LEGACY = 0
TX_TYPE_ACCESS_LIST = 1
TX_TYPE_DYNAMIC_FEE = 2
TX_TYPE_BLOB = 3
TX_TYPE_SET_CODE = 4


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages (never echoes the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_uint(value: object, bits: int, name: str) -> int:
    """Return value if it is an int in [0, 2**bits), else raise InvalidParams naming the field."""
    if type(value) is not int:
        raise InvalidParams(f"invalid {name}: not an integer")
    if value < 0 or value.bit_length() > bits:
        raise InvalidParams(f"invalid {name}: out of range for uint{bits}")
    return value


def check_bytes(
    value: object, name: str, length: int | None = None, max_len: int | None = None
) -> bytes:
    """Return value if it is bytes of the given exact or maximum length; else InvalidParams."""
    if type(value) is not bytes:
        raise InvalidParams(f"invalid {name}: not bytes")
    if length is not None and len(value) != length:
        raise InvalidParams(f"invalid {name}: want {length} bytes, have {len(value)}")
    if max_len is not None and len(value) > max_len:
        raise InvalidParams(f"invalid {name}: longer than {max_len} bytes")
    return value


def object_fields(value: object, name: str, known: Sequence[str]) -> dict[str, object]:
    """Map the known keys of a JSON object to their values; unknown keys and nulls are dropped.

    Keys match case-insensitively, as Go's decoder does. Two keys that differ only in case are
    an error rather than "last one wins": a UI or rule that reads one of them must not see a
    different value from the one that is signed. Non-ASCII keys that Unicode case-folding maps
    onto a field (Go folds the Kelvin sign and long s) are refused for the same reason.
    """
    if not isinstance(value, dict):
        raise InvalidParams(
            f"invalid {name}: json: cannot unmarshal {json_kind(value)} into object"
        )
    by_lower = {k.lower(): k for k in known}
    prefix = f"{name}." if name else ""
    seen: set[str] = set()
    out: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidParams(f"invalid {name or 'object'}: object key is not a string")
        if key.isascii():
            canonical = by_lower.get(key.lower())
        else:
            folded = by_lower.get(key.casefold())
            if folded is not None:
                raise InvalidParams(f"invalid {prefix}{folded}: non-ASCII spelling of the key")
            canonical = None
        if canonical is None:
            continue
        if canonical in seen:
            raise InvalidParams(
                f"invalid {prefix}{canonical}: duplicate keys differing only in case"
            )
        seen.add(canonical)
        if item is not None:
            out[canonical] = item
    return out


def required_fields(
    value: object, name: str, known: Sequence[str], go_type: str
) -> dict[str, object]:
    """object_fields() of a JSON object whose known keys are all required (null is missing).

    The error is the reference's gencodec text: "missing required field 'k' for <go_type>".
    """
    fields = object_fields(value, name, known)
    for required in known:
        if required not in fields:
            raise InvalidParams(
                f"invalid {name}: missing required field '{required}' for {go_type}"
            )
    return fields


def json_list(value: object, name: str, max_items: int) -> list[object]:
    """Check that value is a JSON array of at most max_items elements (checked before any work)."""
    if not isinstance(value, list):
        raise InvalidParams(f"invalid {name}: json: cannot unmarshal {json_kind(value)} into array")
    if len(value) > max_items:
        raise InvalidParams(f"invalid {name}: too many items ({len(value)} > {max_items})")
    return value


def parse_hash(value: object, name: str) -> bytes:
    """Parse a 0x-prefixed 32-byte hash."""
    raw = parse_bytes(value, name)
    if len(raw) != 32:
        raise InvalidParams(
            f"invalid {name}: hex string has length {2 * len(raw)}, want 64 for common.Hash"
        )
    return raw


def resolve_chain_id(requested: int | None, configured: int) -> int:
    """The chain id to sign for: the configured one; a different requested one is refused."""
    check_uint(configured, 256, "configured chain id")
    if requested is not None and requested != configured:
        raise SignerError(
            f"requested chainid {requested} does not match the configuration of the signer"
        )
    return configured


def rlp_encode(item: object) -> bytes:
    """RLP-encode nested lists of bytes and non-negative ints (byte-identical to pyrlp).

    A direct encoder: pyrlp infers a serializer for every item and was a third of keyd's time
    per signed transaction (two encodings each). TypeError/ValueError for anything else.
    """
    return _rlp_item(item)


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


def _rlp_item(item: object) -> bytes:
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP cannot encode a negative integer")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    if isinstance(item, list | tuple):
        payload = b"".join([_rlp_item(child) for child in item])
        return _rlp_length(len(payload), 0xC0) + payload
    raise TypeError(f"RLP cannot encode {type(item).__name__}")


@dataclass(frozen=True)
class AccessTuple:
    """One EIP-2930 access-list entry: an address and the storage slots it pre-warms."""

    address: bytes
    storage_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_bytes(self.address, "accessList.address", length=20)
        if not isinstance(self.storage_keys, tuple):
            raise InvalidParams("invalid accessList.storageKeys: not a tuple")
        for key in self.storage_keys:
            check_bytes(key, "accessList.storageKeys", length=32)

    @classmethod
    def from_json(cls, value: object, name: str) -> AccessTuple:
        """Parse {"address", "storageKeys"} (both required, as in geth's gencodec)."""
        fields = required_fields(value, name, ("address", "storageKeys"), "AccessTuple")
        address = parse_address(fields["address"], f"{name}.address")
        keys = json_list(fields["storageKeys"], f"{name}.storageKeys", MAX_STORAGE_KEYS)
        return cls(
            address, tuple(parse_hash(k, f"{name}.storageKeys[{i}]") for i, k in enumerate(keys))
        )

    def to_json(self) -> dict[str, object]:
        """The execution-API form: lowercase address and hashes."""
        return {
            "address": encode_bytes(self.address),
            "storageKeys": [encode_bytes(k) for k in self.storage_keys],
        }

    def to_rlp(self) -> list[object]:
        """[address, [key, ...]]."""
        return [self.address, list(self.storage_keys)]


def parse_access_list(value: object, name: str = "accessList") -> tuple[AccessTuple, ...]:
    """Parse an access list, bounding the number of tuples and of storage keys overall."""
    items = json_list(value, name, MAX_ACCESS_LIST_TUPLES)
    total = 0
    out: list[AccessTuple] = []
    for i, item in enumerate(items):
        entry = AccessTuple.from_json(item, f"{name}[{i}]")
        total += len(entry.storage_keys)
        if total > MAX_STORAGE_KEYS:
            raise InvalidParams(f"invalid {name}: more than {MAX_STORAGE_KEYS} storage keys")
        out.append(entry)
    return tuple(out)


def check_access_list(value: object, name: str = "accessList") -> tuple[AccessTuple, ...]:
    """Check an already-built access list (a tuple of AccessTuple within the size bounds)."""
    if not isinstance(value, tuple) or not all(isinstance(t, AccessTuple) for t in value):
        raise InvalidParams(f"invalid {name}: not a tuple of AccessTuple")
    if len(value) > MAX_ACCESS_LIST_TUPLES:
        raise InvalidParams(f"invalid {name}: too many items")
    if sum(len(t.storage_keys) for t in value) > MAX_STORAGE_KEYS:
        raise InvalidParams(f"invalid {name}: more than {MAX_STORAGE_KEYS} storage keys")
    return value


def access_list_rlp(access_list: tuple[AccessTuple, ...]) -> list[object]:
    """The access list as it stands in the signed RLP list."""
    return [t.to_rlp() for t in access_list]


def access_list_json(access_list: tuple[AccessTuple, ...]) -> list[object]:
    """The access list as it stands in the reference's tx JSON."""
    return [t.to_json() for t in access_list]


class CommonFields(TypedDict):
    """The constructor arguments every transaction type takes, as common_fields() fills them."""

    chain_id: int
    nonce: int
    gas: int
    to: bytes | None
    value: int
    data: bytes


def common_fields(args: SendTxArgs, chain_id: int) -> CommonFields:
    """The shared fields of the transaction args asks for, signed for the configured chain id.

    Raises SignerError("requested chainid N does not match ...") if args.chainId differs.
    """
    return CommonFields(
        chain_id=resolve_chain_id(args.chain_id, chain_id),
        nonce=args.nonce,
        gas=args.gas,
        to=None if args.to is None else args.to.raw,
        value=args.value,
        data=args.calldata,
    )


@dataclass(frozen=True)
class UnsignedTransaction(ABC):
    """A transaction ready to be signed: the fields every type shares, checked on creation."""

    chain_id: int
    nonce: int
    gas: int
    to: bytes | None
    value: int
    data: bytes

    tx_type: ClassVar[int]
    needs_recipient: ClassVar[str] = ""
    """For types that can never create a contract: the type's name for the error on to=None."""

    def __post_init__(self) -> None:
        if not isinstance(getattr(type(self), "tx_type", None), int):
            raise TypeError(f"{type(self).__name__} is not a concrete transaction type")
        check_uint(self.chain_id, 256, "chainId")
        check_uint(self.nonce, 64, "nonce")
        check_uint(self.gas, 64, "gas")
        if self.to is not None:
            check_bytes(self.to, "to", length=20)
        check_uint(self.value, 256, "value")
        check_bytes(self.data, "data", max_len=MAX_DATA_BYTES)
        if self.to is None and self.needs_recipient:
            raise InvalidParams(f"invalid to: {self.needs_recipient} needs a recipient")

    @property
    def to_rlp(self) -> bytes:
        """The recipient as RLP wants it: empty for a contract creation."""
        return b"" if self.to is None else self.to

    @abstractmethod
    def fee_payload(self) -> list[object]:
        """The fee fields of payload(), in RLP order (they stand between nonce and gas)."""

    def tail_payload(self) -> list[object]:
        """The RLP fields after data: the access list and the type-specific lists."""
        return []

    def payload(self) -> list[object]:
        """The RLP fields that are signed, without chain-id suffix (legacy) or signature.

        Typed: [chainId, nonce, <fee_payload>, gas, to, value, data, <tail_payload>].
        """
        return [
            self.chain_id,
            self.nonce,
            *self.fee_payload(),
            self.gas,
            self.to_rlp,
            self.value,
            self.data,
            *self.tail_payload(),
        ]

    @abstractmethod
    def fee_json(self) -> dict[str, object]:
        """The fee fields of the reference's tx JSON, in its order (absent ones as null)."""

    def lists_json(self) -> dict[str, object]:
        """The list fields of the reference's tx JSON (accessList and type-specific lists)."""
        return {}

    @property
    def protected(self) -> bool:
        """Whether the signature commits to the chain id (always, except legacy with id 0)."""
        return True

    def v_value(self, y_parity: int) -> int:
        """The v that goes on the wire for a given y parity (typed: the parity itself)."""
        return y_parity

    def signing_hash(self) -> bytes:
        """The hash the sender signs: keccak256(type ‖ rlp(payload))."""
        return keccak256(bytes([self.tx_type]) + rlp_encode(self.payload()))

    def encode(self, v: int, r: int, s: int) -> bytes:
        """The wire encoding with the given signature values: type ‖ rlp(payload ‖ [v, r, s])."""
        return bytes([self.tx_type]) + rlp_encode([*self.payload(), v, r, s])

    def unsigned_hash(self) -> bytes:
        """geth's tx.Hash() of this transaction before signing (v = r = s = 0)."""
        return keccak256(self.encode(0, 0, 0))

    def sign(self, y_parity: int, r: int, s: int) -> SignedTransaction:
        """Attach a signature over signing_hash(); (y_parity, r, s) as sign_hash returns them."""
        return SignedTransaction(self, y_parity, r, s)


@dataclass(frozen=True)
class GasPriceTransaction(UnsignedTransaction):
    """The fee model of types 0 and 1: one gas price (the 1559 fee fields are null in JSON)."""

    gas_price: int

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.gas_price, 256, "gasPrice")

    def fee_payload(self) -> list[object]:
        """[gasPrice]."""
        return [self.gas_price]

    def fee_json(self) -> dict[str, object]:
        """gasPrice, and the 1559 fee fields as null."""
        return {
            "gasPrice": encode_quantity(self.gas_price),
            "maxPriorityFeePerGas": None,
            "maxFeePerGas": None,
        }


@dataclass(frozen=True)
class FeeCapTransaction(UnsignedTransaction):
    """The fee model of types 2, 3 and 4: EIP-1559 priority fee and fee cap, and an access list."""

    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    access_list: tuple[AccessTuple, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.max_priority_fee_per_gas, 256, "maxPriorityFeePerGas")
        check_uint(self.max_fee_per_gas, 256, "maxFeePerGas")
        check_access_list(self.access_list)

    def fee_payload(self) -> list[object]:
        """[tip, feeCap]."""
        return [self.max_priority_fee_per_gas, self.max_fee_per_gas]

    def tail_payload(self) -> list[object]:
        """[accessList]; subclasses append their own lists after it."""
        return [access_list_rlp(self.access_list)]

    def fee_json(self) -> dict[str, object]:
        """gasPrice is null; the two fee caps."""
        return {
            "gasPrice": None,
            "maxPriorityFeePerGas": encode_quantity(self.max_priority_fee_per_gas),
            "maxFeePerGas": encode_quantity(self.max_fee_per_gas),
        }

    def lists_json(self) -> dict[str, object]:
        """accessList; subclasses add their own lists after it."""
        return {"accessList": access_list_json(self.access_list)}


@dataclass(frozen=True)
class SignedTransaction:
    """An unsigned transaction plus a canonical (low-s) signature, with its wire form and hash."""

    unsigned: UnsignedTransaction
    y_parity: int
    r: int
    s: int
    raw: bytes = field(init=False, repr=False)
    hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.unsigned, UnsignedTransaction):
            raise TypeError("unsigned must be an UnsignedTransaction")
        if type(self.y_parity) is not int or self.y_parity not in (0, 1):
            raise InvalidParams("invalid signature: y parity must be 0 or 1")
        if type(self.r) is not int or not 0 < self.r < SECP256K1_N:
            raise InvalidParams("invalid signature: r out of range")
        # High-s signatures are malleable and invalid on chain since Homestead.
        if type(self.s) is not int or not 0 < self.s <= SECP256K1_HALF_N:
            raise InvalidParams("invalid signature: s out of range")
        raw = self.unsigned.encode(self.v, self.r, self.s)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "hash", keccak256(raw))

    @property
    def v(self) -> int:
        """The v on the wire: EIP-155 form or 27/28 for legacy, the parity for typed txs."""
        return self.unsigned.v_value(self.y_parity)

    def sender(self) -> bytes:
        """The 20-byte address that produced the signature."""
        return recover_address(self.unsigned.signing_hash(), self.y_parity, self.r, self.s)

    def to_json(self) -> dict[str, object]:
        """The reference's tx JSON (types.Transaction.MarshalJSON): field set and order per type."""
        tx = self.unsigned
        out: dict[str, object] = {"type": encode_quantity(tx.tx_type)}
        if tx.protected:
            out["chainId"] = encode_quantity(tx.chain_id)
        out["nonce"] = encode_quantity(tx.nonce)
        out["to"] = None if tx.to is None else encode_bytes(tx.to)
        out["gas"] = encode_quantity(tx.gas)
        out.update(tx.fee_json())
        out["value"] = encode_quantity(tx.value)
        out["input"] = encode_bytes(tx.data)
        out.update(tx.lists_json())
        out["v"] = encode_quantity(self.v)
        out["r"] = encode_quantity(self.r)
        out["s"] = encode_quantity(self.s)
        if tx.tx_type != TX_TYPE_LEGACY:
            out["yParity"] = encode_quantity(self.y_parity)
        out["hash"] = encode_bytes(self.hash)
        return out
