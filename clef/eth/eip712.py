"""EIP-712 typed structured data: the reference's checks and error texts, exact hashing, UI rows.

A `TypedData` is parsed once from untrusted JSON into a normalised value tree (ints as int,
addresses and byte strings as bytes, structs and arrays as tuples in declared order). The hash,
the UI rows (`format_messages`) and the canonical JSON all derive from that one tree, so what
the user is shown is exactly what is hashed, and keyd can re-derive the hash from the canonical
form another process produced.

Deliberate differences from the reference (geth `signer/core/apitypes`):
- integer ranges are exact (int8 is -128..127; geth accepted +-(2^N-1));
- array nesting and fixed array lengths must match the declared type (geth ignored both);
- JSON integers must be exact as float64 (geth silently rounded them), `""` is not 0;
- type names must be identifiers that are not primitive names, field names must be
  identifiers and unique within a struct (otherwise encodeType strings become ambiguous);
- primaryType must be a declared struct other than EIP712Domain;
- an empty struct encodes as `Name()` as EIP-712 says (geth wrote `Name)`);
- arrays of every type format and sign (geth's formatter failed on address[]/bool[]/...).
Everything attacker-controlled is bounded: type and field counts, name lengths, nesting
depth, number of values and bytes, and the size of the encodeType strings.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from clef.errors import InvalidParams, SignerError
from clef.eth.address import is_hex_address, to_checksum
from clef.eth.hashing import keccak256
from clef.jsonrpc import loads_bounded

DOMAIN_TYPE = "EIP712Domain"
DOMAIN_KEYS = ("name", "version", "chainId", "verifyingContract", "salt")

MAX_DEPTH = 32
MAX_TYPES = 128
MAX_FIELDS = 1024
MAX_NAME_LENGTH = 128
MAX_TYPE_ENCODING = 1 << 20
MAX_VALUES = 100_000
MAX_VALUE_BYTES = 4 << 20
MAX_JSON_BYTES = 4 << 20
MAX_JSON_NESTING = 64

_TOP_LEVEL_KEYS = ("types", "primaryType", "domain", "message")
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FIELD_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_TYPE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)((?:\[[0-9]{0,7}\])*)")
_DECIMAL = re.compile(r"([+-]?)([0-9]+)")
_HEX_NUMBER = re.compile(r"0[xX]([0-9a-fA-F]+)")
_HEX_BYTES = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")
_MAX_ERROR_TEXT = 200
_MAX_ERROR_ITEMS = 64
_INT64_MIN = -(1 << 63)
_INT64_LIMIT = 1 << 63


def _primitive_types() -> frozenset[str]:
    names = {"address", "bool", "string", "bytes", "int", "uint"}
    names.update(f"bytes{n}" for n in range(1, 33))
    names.update(f"int{n}" for n in range(8, 257, 8))
    names.update(f"uint{n}" for n in range(8, 257, 8))
    return frozenset(names)


PRIMITIVE_TYPES = _primitive_types()


def go_type_name(value: object) -> str:
    """The Go type name a JSON value decodes to (for the reference's `%T` error texts)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return type(value).__name__


def go_value_text(value: object) -> str:
    """Go's `%v` rendering of a JSON value, cut short so hostile input cannot bloat an error."""
    parts: list[str] = []
    _go_fmt(value, parts, [_MAX_ERROR_TEXT], 0)
    text = "".join(parts)
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."


def _go_fmt(value: object, out: list[str], budget: list[int], depth: int) -> None:
    if budget[0] <= 0:
        return
    if depth > 8:
        text = "..."
    elif value is None:
        text = "<nil>"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value[: budget[0] + 1]
    elif isinstance(value, int):
        text = str(value) if value.bit_length() < 1024 else "<huge integer>"
    elif isinstance(value, float):
        # Go prints integral float64 below 1e21 without an exponent.
        integral = math.isfinite(value) and value.is_integer() and abs(value) < 1e21
        text = str(int(value)) if integral else repr(value)
    elif isinstance(value, dict | list):
        is_map = isinstance(value, dict)
        out.append("map[" if is_map else "[")
        budget[0] -= 4
        # Only a prefix is rendered, so a huge map or list costs no more than a small one.
        items: list[tuple[str | None, object]]
        if isinstance(value, dict):
            head = itertools.islice(value.items(), _MAX_ERROR_ITEMS)
            items = sorted(((str(k), v) for k, v in head), key=lambda kv: str(kv[0]))
        else:
            items = [(None, v) for v in itertools.islice(value, _MAX_ERROR_ITEMS)]
        for index, (key, element) in enumerate(items):
            if budget[0] <= 0:
                break
            if index:
                out.append(" ")
                budget[0] -= 1
            if key is not None:
                out.append(f"{key}:")
                budget[0] -= len(key) + 1
            _go_fmt(element, out, budget, depth + 1)
        out.append("]")
        return
    else:
        text = type(value).__name__
    out.append(text)
    budget[0] -= len(text)


def _quote(text: str) -> str:
    """Go's %q for the strings that appear in the reference's messages."""
    return json.dumps(text[:_MAX_ERROR_TEXT], ensure_ascii=False)


def _mismatch(type_text: str, value: object) -> SignerError:
    return SignerError(f"provided data '{go_value_text(value)}' doesn't match type '{type_text}'")


def parse_big256(text: str) -> int | None:
    """geth's math.ParseBig256 for a decimal or 0x-hex string; None when it is not one.

    Unlike geth, "" is refused (geth read it as 0) and no sign is allowed after 0x.
    """
    match = _HEX_NUMBER.fullmatch(text)
    if match:
        digits = match.group(1).lstrip("0")
        if len(digits) > 64:
            return None
        return int(digits or "0", 16)
    match = _DECIMAL.fullmatch(text)
    if not match:
        return None
    digits = match.group(2).lstrip("0")
    if len(digits) > 78:
        return None
    value = int(digits or "0", 10)
    if value.bit_length() > 256:
        return None
    return -value if match.group(1) == "-" else value


def _decode_hex_bytes(value: object) -> bytes | None:
    """hexutil.Decode on a JSON value: 0x-prefixed even-length hex, else None."""
    if not isinstance(value, str) or not _HEX_BYTES.fullmatch(value):
        return None
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class Field:
    """One member of a struct type: its name and its declared type string."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.type, str):
            raise TypeError("field name and type must be strings")


@dataclass(frozen=True)
class _TypeRef:
    """A parsed type string: arrays know their inner type and fixed length (None = dynamic)."""

    text: str
    base: str
    is_array: bool
    length: int | None
    inner: str


def _parse_type(text: str) -> _TypeRef:
    match = _TYPE.fullmatch(text)
    if match is None:  # callers only pass validated type strings
        raise ValueError(f"malformed type {text!r}")
    if not match.group(2):
        return _TypeRef(text, text, False, None, "")
    cut = text.rindex("[")
    size = text[cut + 1 : -1]
    return _TypeRef(text, match.group(1), True, int(size) if size else None, text[:cut])


class _Budget:
    """Counts values and bytes while a document is normalised (bounds CPU and memory)."""

    __slots__ = ("byte_count", "value_count")

    def __init__(self) -> None:
        self.value_count = 0
        self.byte_count = 0

    def take(self, path: str) -> None:
        self.value_count += 1
        if self.value_count > MAX_VALUES:
            raise SignerError(f"{path}: typed data holds more than {MAX_VALUES} values")

    def add_bytes(self, count: int, path: str) -> None:
        self.byte_count += count
        if self.byte_count > MAX_VALUE_BYTES:
            raise SignerError(f"{path}: typed data holds more than {MAX_VALUE_BYTES} bytes")


@dataclass(frozen=True)
class Schema:
    """The struct types of a typed-data document, validated as the reference does, plus bounds."""

    structs: tuple[tuple[str, tuple[Field, ...]], ...]
    _fields: dict[str, tuple[Field, ...]] = field(init=False, repr=False, compare=False)
    _refs: dict[str, _TypeRef] = field(init=False, repr=False, compare=False)
    _encoded: dict[str, str] = field(init=False, repr=False, compare=False)
    _hashes: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.structs, tuple):
            raise TypeError("structs must be a tuple")
        if len(self.structs) > MAX_TYPES:
            raise SignerError(f"too many types ({len(self.structs)} > {MAX_TYPES})")
        fields_by_name: dict[str, tuple[Field, ...]] = {}
        for key, fields in self.structs:
            if not isinstance(key, str) or not isinstance(fields, tuple):
                raise TypeError("structs must hold (name, tuple of Field) pairs")
            if key in fields_by_name:
                raise SignerError(f"type {_quote(key)} is defined twice")
            fields_by_name[key] = fields
        total = sum(len(fields) for fields in fields_by_name.values())
        if total > MAX_FIELDS:
            raise SignerError(f"too many fields ({total} > {MAX_FIELDS})")
        for key, fields in self.structs:
            self._check_struct(key, fields, fields_by_name)
        refs: dict[str, _TypeRef] = {}
        for fields in fields_by_name.values():
            for member in fields:
                text = member.type
                while text not in refs:
                    ref = _parse_type(text)
                    refs[text] = ref
                    if not ref.is_array:
                        break
                    text = ref.inner
        object.__setattr__(self, "_fields", fields_by_name)
        object.__setattr__(self, "_refs", refs)
        encoded: dict[str, str] = {}
        size = 0
        for key in fields_by_name:
            encoded[key] = self._encode_type(key)
            size += len(encoded[key])
            # A schema where every type references every other one makes encodeType
            # quadratic; the cap keeps the hashing work bounded (CPU exhaustion).
            if size > MAX_TYPE_ENCODING:
                raise SignerError(f"type encodings exceed {MAX_TYPE_ENCODING} characters")
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(
            self, "_hashes", {key: keccak256(text.encode()) for key, text in encoded.items()}
        )

    @staticmethod
    def _check_struct(
        key: str, fields: tuple[Field, ...], known: dict[str, tuple[Field, ...]]
    ) -> None:
        # The reference's checks first, in its order, so its error texts come out.
        if not key:
            raise SignerError("empty type key")
        names: set[str] = set()
        for index, member in enumerate(fields):
            if not isinstance(member, Field):
                raise TypeError("struct members must be Field")
            if not member.type:
                raise SignerError(f"type {_quote(key)}:{index}: empty Type")
            if not member.name:
                raise SignerError(f"type {_quote(key)}:{index}: empty Name")
            if key == member.type:
                raise SignerError(f"type {_quote(member.type)} cannot reference itself")
            base = member.type.split("[", 1)[0]
            if base not in PRIMITIVE_TYPES and base not in known:
                raise SignerError(f"reference type {_quote(member.type)} is undefined")
            if len(member.type) > MAX_NAME_LENGTH or not _TYPE.fullmatch(member.type):
                raise SignerError(f"unknown reference type {_quote(member.type)}")
            # Names are spliced into encodeType verbatim: "a,uint256 b" would forge a
            # second member, so only identifiers are allowed (type-hash ambiguity).
            if len(member.name) > MAX_NAME_LENGTH or not _FIELD_NAME.fullmatch(member.name):
                raise SignerError(f"type {_quote(key)}:{index}: invalid Name {_quote(member.name)}")
            if member.name in names:
                raise SignerError(f"type {_quote(key)}: duplicate field name {_quote(member.name)}")
            names.add(member.name)
        # A struct named like a primitive ("address") or with brackets would be read as a
        # different type by other implementations than by this one.
        if len(key) > MAX_NAME_LENGTH or not _TYPE_NAME.fullmatch(key) or key in PRIMITIVE_TYPES:
            raise SignerError(f"invalid type name {_quote(key)}")

    @classmethod
    def from_json(cls, raw: object) -> Schema:
        """Build a schema from the JSON `types` object (shape errors name the field)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidParams("invalid typed data: types must be a JSON object")
        if len(raw) > MAX_TYPES:
            raise SignerError(f"too many types ({len(raw)} > {MAX_TYPES})")
        structs: list[tuple[str, tuple[Field, ...]]] = []
        total = 0
        for key, members in raw.items():
            if members is None:
                members = []
            if not isinstance(members, list):
                raise InvalidParams(f"invalid typed data: types.{key} must be a list")
            total += len(members)
            if total > MAX_FIELDS:
                raise SignerError(f"too many fields ({total} > {MAX_FIELDS})")
            fields: list[Field] = []
            for index, member in enumerate(members):
                if member is None:
                    member = {}
                if not isinstance(member, dict):
                    raise InvalidParams(
                        f"invalid typed data: types.{key}[{index}] must be an object"
                    )
                name = member.get("name")
                type_text = member.get("type")
                if name is None:
                    name = ""
                if type_text is None:
                    type_text = ""
                if not isinstance(name, str) or not isinstance(type_text, str):
                    raise InvalidParams(
                        f"invalid typed data: types.{key}[{index}] name and type must be strings"
                    )
                fields.append(Field(name, type_text))
            structs.append((str(key), tuple(fields)))
        return cls(tuple(structs))

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def fields(self, name: str) -> tuple[Field, ...]:
        """The members of a struct type."""
        return self._fields[name]

    def _dependencies(self, name: str) -> list[str]:
        seen = {name}
        stack = [name]
        while stack:
            for member in self._fields[stack.pop()]:
                base = member.type.split("[", 1)[0]
                if base in self._fields and base not in seen:
                    seen.add(base)
                    stack.append(base)
        seen.discard(name)
        return sorted(seen)

    def _encode_type(self, name: str) -> str:
        parts = []
        for dep in [name, *self._dependencies(name)]:
            members = ",".join(f"{m.type} {m.name}" for m in self._fields[dep])
            parts.append(f"{dep}({members})")
        return "".join(parts)

    def encode_type(self, name: str) -> str:
        """encodeType: the struct, then its dependencies sorted by name."""
        return self._encoded[name]

    def type_hash(self, name: str) -> bytes:
        """keccak256(encodeType(name))."""
        return self._hashes[name]

    # -- untrusted JSON -> normalised values ---------------------------------------------

    def normalize(self, type_text: str, raw: object, path: str, depth: int, budget: _Budget) -> Any:
        """Check a JSON value against a type and return its normalised form."""
        if depth > MAX_DEPTH:
            raise SignerError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        budget.take(path)
        ref = self._refs[type_text]
        if ref.is_array:
            if not isinstance(raw, list):
                raise _mismatch(type_text, raw)
            if ref.length is not None and len(raw) != ref.length:
                raise SignerError(
                    f"{path}: {len(raw)} elements provided for fixed-size type '{type_text}'"
                )
            return tuple(
                self.normalize(ref.inner, item, f"{path}[{index}]", depth + 1, budget)
                for index, item in enumerate(raw)
            )
        if ref.base in self._fields:
            return self.normalize_struct(ref.base, raw, path, depth, budget)
        return _normalize_primitive(ref.base, type_text, raw, path, budget)

    def normalize_struct(
        self, name: str, raw: object, path: str, depth: int, budget: _Budget
    ) -> tuple[Any, ...]:
        """Check a JSON object against a struct type; values come back in declared order."""
        if not isinstance(raw, dict):
            raise _mismatch(name, raw)
        members = self._fields.get(name, ())
        if len(members) < len(raw):
            raise SignerError(
                f"there is extra data provided in the message ({len(members)} < {len(raw)})"
            )
        return tuple(
            self.normalize(m.type, raw.get(m.name), f"{path}.{m.name}", depth + 1, budget)
            for m in members
        )

    # -- normalised values -> encodings, rows, canonical JSON ------------------------------

    def hash_struct(self, name: str, values: tuple[Any, ...], depth: int = 0) -> bytes:
        """hashStruct: keccak256(typeHash ‖ encoded members)."""
        return keccak256(self.encode_data(name, values, depth))

    def encode_data(self, name: str, values: tuple[Any, ...], depth: int = 0) -> bytes:
        """encodeData: typeHash ‖ enc(member1) ‖ … (normalised values only)."""
        members = self._fields[name]
        if depth > MAX_DEPTH:
            raise ValueError("normalised value nested too deeply")
        if not isinstance(values, tuple) or len(values) != len(members):
            raise ValueError(f"normalised {name} must be a tuple of {len(members)} values")
        parts = [self._hashes[name]]
        parts.extend(
            self._encode_value(m.type, value, depth + 1)
            for m, value in zip(members, values, strict=True)
        )
        return b"".join(parts)

    def _encode_value(self, type_text: str, value: Any, depth: int) -> bytes:
        ref = self._refs[type_text]
        if ref.is_array:
            if not isinstance(value, tuple) or (
                ref.length is not None and len(value) != ref.length
            ):
                raise ValueError(f"normalised {type_text} has the wrong shape")
            return keccak256(b"".join(self._encode_value(ref.inner, v, depth + 1) for v in value))
        if ref.base in self._fields:
            return self.hash_struct(ref.base, value, depth)
        return _encode_primitive(ref.base, value)

    def format_struct(self, name: str, values: tuple[Any, ...]) -> list[dict[str, Any]]:
        """The UI rows of a struct: one {name, value, type} per member."""
        return [
            self._format(m.name, m.type, value)
            for m, value in zip(self._fields[name], values, strict=True)
        ]

    def _format(self, label: str, type_text: str, value: Any) -> dict[str, Any]:
        ref = self._refs[type_text]
        shown: Any
        if ref.is_array:
            shown = [
                self._format(f"{label}[{index}]", ref.inner, item)
                for index, item in enumerate(value)
            ]
        elif ref.base in self._fields:
            shown = self.format_struct(ref.base, value)
        else:
            shown = _format_primitive(ref.base, value)
        return {"name": label, "value": shown, "type": type_text}

    def canonical_struct(self, name: str, values: tuple[Any, ...]) -> dict[str, Any]:
        """A struct as JSON that parses back to the same values (ints as decimal strings)."""
        return {
            m.name: self._canonical(m.type, value)
            for m, value in zip(self._fields[name], values, strict=True)
        }

    def _canonical(self, type_text: str, value: Any) -> Any:
        ref = self._refs[type_text]
        if ref.is_array:
            return [self._canonical(ref.inner, item) for item in value]
        if ref.base in self._fields:
            return self.canonical_struct(ref.base, value)
        if isinstance(value, bytes):
            return "0x" + value.hex()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        """The `types` object."""
        return {
            key: [{"name": m.name, "type": m.type} for m in members]
            for key, members in self.structs
        }


class _ExactInt(int):
    """The domain's chainId: a big integer read exactly, never through float64 (as in geth)."""


def _int_bits(base: str) -> tuple[int, bool]:
    signed = base.startswith("int")
    size = base[3:] if signed else base[4:]
    return (int(size) if size else 256), signed


def _normalize_primitive(base: str, type_text: str, raw: object, path: str, budget: _Budget) -> Any:
    if base == "address":
        if isinstance(raw, str) and is_hex_address(raw):
            return bytes.fromhex(raw[-40:])
        raise _mismatch(type_text, raw)
    if base == "bool":
        if isinstance(raw, bool):
            return raw
        raise _mismatch(type_text, raw)
    if base == "string":
        if not isinstance(raw, str):
            raise _mismatch(type_text, raw)
        try:
            size = len(raw.encode("utf-8"))
        except UnicodeEncodeError:
            raise SignerError(f"{path}: string is not valid Unicode (lone surrogate)") from None
        budget.add_bytes(size, path)
        return raw
    if base.startswith("bytes"):
        if isinstance(raw, str):
            budget.add_bytes(len(raw) // 2, path)
        data = _decode_hex_bytes(raw)
        if data is None or (base != "bytes" and len(data) != int(base[5:])):
            raise _mismatch(type_text, raw)
        return data
    return _parse_integer(base, raw)


def _parse_integer(base: str, raw: object) -> int:
    bits, signed = _int_bits(base)
    value: int
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise SignerError(
            f"invalid integer value {go_value_text(raw)}/{go_type_name(raw)} for type {base}"
        )
    if isinstance(raw, str):
        parsed = parse_big256(raw)
        if parsed is None:
            raise SignerError(f"invalid hex or decimal integer {_quote(raw)}")
        value = parsed
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer() or not _INT64_MIN <= raw < _INT64_LIMIT:
            raise SignerError(f"invalid float value {go_value_text(raw)} for type {base}")
        value = int(raw)
    elif isinstance(raw, _ExactInt):
        value = int(raw)
    else:
        # Go reads JSON numbers as float64 and would round this one: refuse rather than sign
        # a different number than the caller wrote (send big values as strings).
        if not _INT64_MIN <= raw < _INT64_LIMIT or int(float(raw)) != raw:
            raise SignerError(
                f"invalid float value {go_value_text(raw)} for type {base}: "
                "not exact as a JSON number, send it as a string"
            )
        value = raw
    if signed:
        # Exact EIP-712 range; geth accepted +-(2^N - 1) for intN.
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise SignerError(f"integer larger than '{base}'")
    else:
        if abs(value).bit_length() > bits:
            raise SignerError(f"integer larger than '{base}'")
        if value < 0:
            raise SignerError(f"invalid negative value for unsigned type {base}")
    return value


def _encode_primitive(base: str, value: Any) -> bytes:
    if base == "address":
        if not isinstance(value, bytes) or len(value) != 20:
            raise ValueError("normalised address must be 20 bytes")
        return bytes(12) + value
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError("normalised bool must be a bool")
        return (1 if value else 0).to_bytes(32, "big")
    if base == "string":
        if not isinstance(value, str):
            raise ValueError("normalised string must be a str")
        return keccak256(value.encode("utf-8"))
    if base == "bytes":
        if not isinstance(value, bytes):
            raise ValueError("normalised bytes must be bytes")
        return keccak256(value)
    if base.startswith("bytes"):
        if not isinstance(value, bytes) or len(value) != int(base[5:]):
            raise ValueError(f"normalised {base} has the wrong length")
        return value.ljust(32, b"\x00")
    bits, signed = _int_bits(base)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"normalised {base} must be an int")
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) if signed else (1 << bits)
    if not low <= value < high:
        raise ValueError(f"normalised {base} out of range")
    return (value % (1 << 256)).to_bytes(32, "big")


def _format_primitive(base: str, value: Any) -> str:
    if base == "address":
        return to_checksum(value)
    if base == "bool":
        return "true" if value else "false"
    if base == "string":
        return str(value)
    if base.startswith("bytes"):
        return "0x" + bytes(value).hex()
    sign = "-" if value < 0 else ""
    return f"{value} ({sign}0x{abs(value):x})"


def _parse_chain_id(raw: object) -> int:
    # HexOrDecimal256: a JSON number (read exactly, not as float64) or a decimal/hex string.
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw.bit_length() <= 256:
            return raw
    elif isinstance(raw, str):
        parsed = parse_big256(raw)
        if parsed is not None:
            return parsed
    raise InvalidParams(
        f"invalid typed data: domain.chainId: invalid hex or decimal integer "
        f"{_quote(go_value_text(raw))}"
    )


def _refuse_case_variants(obj: dict[Any, Any], known: tuple[str, ...], what: str) -> None:
    """Refuse a key that differs from one of `known` only in case."""
    # geth matched these keys case-insensitively; a "ChainID" next to "chainId" would
    # leave it to key order which one is signed, so variants are refused.
    spelled = {key.lower(): key for key in known}
    for key in obj:
        if isinstance(key, str) and key not in known and key.lower() in spelled:
            raise InvalidParams(
                f'invalid typed data: {what} "{key}" must be spelled "{spelled[key.lower()]}"'
            )


def _domain_map(raw: object) -> dict[str, object]:
    """The domain as geth's TypedDataDomain.Map(): the five standard keys, empty ones dropped."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("invalid typed data: domain must be a JSON object")
    _refuse_case_variants(raw, DOMAIN_KEYS, "domain key")
    out: dict[str, object] = {}
    for key in DOMAIN_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if key == "chainId":
            out[key] = _ExactInt(_parse_chain_id(value))
        elif not isinstance(value, str):
            raise InvalidParams(f"invalid typed data: domain.{key} must be a string")
        elif value:
            out[key] = value
    return out


def _typed_data_error(detail: str) -> InvalidParams:
    return InvalidParams(f"invalid typed data: {detail}")


def load_json(text: bytes) -> object:
    """Decode untrusted JSON bytes (size-capped, strict UTF-8, no NaN, no duplicate keys)."""
    if len(text) > MAX_JSON_BYTES:
        raise SignerError(f"typed data JSON is larger than {MAX_JSON_BYTES} bytes")
    return loads_bounded(
        text,
        max_depth=MAX_JSON_NESTING,
        error=_typed_data_error,
        duplicate=lambda key: _typed_data_error(f"duplicate key {_quote(key)}"),
    )


@dataclass(frozen=True)
class TypedData:
    """A validated EIP-712 document: schema, primary type and normalised domain and message."""

    schema: Schema
    primary_type: str
    domain: tuple[Any, ...]
    message: tuple[Any, ...]
    _domain_separator: bytes = field(init=False, repr=False, compare=False)
    _message_hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.schema, Schema):
            raise TypeError("schema must be a Schema")
        if self.primary_type not in self.schema or self.primary_type == DOMAIN_TYPE:
            raise ValueError("primary type must be a declared struct other than EIP712Domain")
        if DOMAIN_TYPE not in self.schema:
            raise ValueError("EIP712Domain must be declared")
        # Hashing walks every value with strict type checks, so a TypedData that exists
        # is well-formed and its digest is fixed at construction.
        object.__setattr__(
            self, "_domain_separator", self.schema.hash_struct(DOMAIN_TYPE, self.domain)
        )
        object.__setattr__(
            self, "_message_hash", self.schema.hash_struct(self.primary_type, self.message)
        )

    @classmethod
    def parse(cls, obj: object) -> TypedData:
        """Parse a `{types, primaryType, domain, message}` JSON object from an untrusted caller."""
        if not isinstance(obj, dict):
            raise InvalidParams("invalid typed data: not a JSON object")
        _refuse_case_variants(obj, _TOP_LEVEL_KEYS, "key")
        primary = obj.get("primaryType")
        if primary is None:
            primary = ""
        if not isinstance(primary, str):
            raise InvalidParams("invalid typed data: primaryType must be a string")
        message = obj.get("message")
        if message is None:
            message = {}
        if not isinstance(message, dict):
            raise InvalidParams("invalid typed data: message must be a JSON object")
        domain_map = _domain_map(obj.get("domain"))
        schema = Schema.from_json(obj.get("types"))
        if not domain_map:
            raise SignerError("domain is undefined")
        if primary == DOMAIN_TYPE:
            raise SignerError("primary type must not be EIP712Domain")
        if primary not in schema:
            raise SignerError(f"primary type {_quote(primary)} is undefined")
        if DOMAIN_TYPE not in schema:
            raise SignerError(
                f"there is extra data provided in the message (0 < {len(domain_map)})"
            )
        budget = _Budget()
        domain = schema.normalize_struct(DOMAIN_TYPE, domain_map, "domain", 0, budget)
        values = schema.normalize_struct(primary, message, "message", 0, budget)
        return cls(schema, primary, domain, values)

    @classmethod
    def from_json(cls, text: bytes) -> TypedData:
        """Parse typed data given as JSON bytes (the data/typed content type)."""
        return cls.parse(load_json(text))

    def encode_type(self, name: str) -> str:
        """encodeType of a declared struct."""
        return self.schema.encode_type(name)

    def type_hash(self, name: str) -> bytes:
        """typeHash of a declared struct."""
        return self.schema.type_hash(name)

    def encode_data(self) -> bytes:
        """encodeData of the message: typeHash ‖ encoded members."""
        return self.schema.encode_data(self.primary_type, self.message)

    def domain_separator(self) -> bytes:
        """hashStruct(EIP712Domain, domain)."""
        return self._domain_separator

    def hash_struct(self) -> bytes:
        """hashStruct(primaryType, message)."""
        return self._message_hash

    def raw_data(self) -> bytes:
        """The 66 signed bytes: 0x19 0x01 ‖ domainSeparator ‖ hashStruct(message)."""
        return b"\x19\x01" + self._domain_separator + self._message_hash

    def digest(self) -> bytes:
        """keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message)): the hash that is signed."""
        return keccak256(self.raw_data())

    def format_messages(self) -> list[dict[str, Any]]:
        """The UI rows (reference layout), every array element shown."""
        return [
            {
                "name": DOMAIN_TYPE,
                "value": self.schema.format_struct(DOMAIN_TYPE, self.domain),
                "type": "domain",
            },
            {
                "name": self.primary_type,
                "value": self.schema.format_struct(self.primary_type, self.message),
                "type": "primary type",
            },
        ]

    def to_canonical_json(self) -> dict[str, Any]:
        """A JSON object that `parse` turns back into an equal TypedData (same digest, rows)."""
        return {
            "types": self.schema.to_json(),
            "primaryType": self.primary_type,
            "domain": self.schema.canonical_struct(DOMAIN_TYPE, self.domain),
            "message": self.schema.canonical_struct(self.primary_type, self.message),
        }
