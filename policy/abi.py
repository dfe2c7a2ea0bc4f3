"""ABI signatures and calldata: parse `name(type,...)`, decode, re-encode, format as geth does.

This is the reference's `signer/fourbyte/abi.go` (verifySelector / parseCallData) on top of a
small, strict ABI codec of our own rather than eth-abi, for three reasons:

- eth-abi accepts trailing data and has no signature parser; the reference's checks (and
  exact error texts) need both.
- The calldata is chosen by the caller. A decoder that follows offsets can be made to build
  exponentially large values from a few kilobytes (nested arrays whose offsets all point at
  the same data). Ours counts the values and bytes it produces and stops at what a canonical
  encoding of that many bytes could hold; signatures are bounded in length and nesting depth.
- Values are formatted as Go's `%v` prints them (`[1 2 3]` for byte slices, EIP-55 addresses,
  `{a b}` for tuples) and quoted with Go's `%q`, so attacker-chosen strings can never put
  control characters in front of the user.

The codec is stricter than geth in one place: an integer narrower than 256 bits whose word
holds a value out of its range is an error for every width (geth checks only 8/16/32/64 bits
and would show, say, a "uint24" of 2**200).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

from clef.eth.address import to_checksum
from clef.eth.hashing import keccak256

MAX_SIGNATURE_LENGTH: Final = 4096
"""Longest method signature accepted (the shipped database's longest is 723 characters)."""

MAX_TYPE_DEPTH: Final = 32
"""Deepest nesting of tuples and array dimensions accepted in a signature."""

_MAX_ARRAY_DIGITS: Final = 10

Kind = Literal[
    "uint", "int", "address", "bool", "string", "bytes", "fixedbytes", "function",
    "tuple", "array", "slice",
]
_ELEMENTARY_KINDS: Final = frozenset(
    {"uint", "int", "address", "bool", "string", "bytes", "fixedbytes", "function"}
)


class AbiError(ValueError):
    """A bad signature, or calldata that does not match it; the message is the reference's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class AbiType:
    """One canonical ABI type: `size` is bits (u)int, bytes (bytesN) or element count (T[k])."""

    kind: Kind
    size: int = 0
    elem: AbiType | None = None
    components: tuple[AbiType, ...] = field(default=())

    def __post_init__(self) -> None:
        kind, size = self.kind, self.size
        if kind in ("uint", "int"):
            ok = 8 <= size <= 256 and size % 8 == 0
        elif kind == "fixedbytes":
            ok = 1 <= size <= 32
        elif kind == "array":
            ok = size >= 1
        else:
            ok = size == 0
        if not ok:
            raise ValueError(f"invalid size {size} for ABI type {kind}")
        if (self.elem is not None) != (kind in ("array", "slice")):
            raise ValueError(f"ABI type {kind}: element type given or missing")
        if kind == "tuple":
            if not self.components:
                raise ValueError("ABI tuple type without components")
        elif self.components:
            raise ValueError(f"ABI type {kind} cannot have components")
        if self.depth > MAX_TYPE_DEPTH:
            raise ValueError(f"ABI type nested deeper than {MAX_TYPE_DEPTH}")

    @cached_property
    def depth(self) -> int:
        """Nesting depth: 1 for an elementary type."""
        if self.elem is not None:
            return self.elem.depth + 1
        if self.components:
            return 1 + max(c.depth for c in self.components)
        return 1

    @cached_property
    def canonical(self) -> str:
        """The canonical type string, as hashed into selectors (`uint256`, `(address,bytes)[2]`)."""
        kind = self.kind
        if kind in ("uint", "int"):
            return f"{kind}{self.size}"
        if kind == "fixedbytes":
            return f"bytes{self.size}"
        if kind == "tuple":
            return "(" + ",".join(c.canonical for c in self.components) + ")"
        if self.elem is not None:
            suffix = f"[{self.size}]" if kind == "array" else "[]"
            return self.elem.canonical + suffix
        return kind

    @cached_property
    def is_dynamic(self) -> bool:
        """True for types encoded out of line, behind an offset."""
        if self.kind in ("string", "bytes", "slice"):
            return True
        if self.kind == "array":
            return self.element.is_dynamic
        if self.kind == "tuple":
            return any(c.is_dynamic for c in self.components)
        return False

    @cached_property
    def head_size(self) -> int:
        """Bytes the type occupies in the head of its enclosing tuple or array."""
        if self.is_dynamic:
            return 32
        if self.kind == "array":
            return self.size * self.element.head_size
        if self.kind == "tuple":
            return sum(c.head_size for c in self.components)
        return 32

    @property
    def element(self) -> AbiType:
        """The element type of an array or slice."""
        if self.elem is None:
            raise TypeError(f"ABI type {self.canonical} has no element type")
        return self.elem

    def __str__(self) -> str:
        return self.canonical


@dataclass(frozen=True)
class Signature:
    """A parsed method signature: name and canonical input types."""

    name: str
    inputs: tuple[AbiType, ...]

    def __post_init__(self) -> None:
        if not _is_identifier(self.name):
            raise ValueError(f"invalid method name {self.name!r}")

    @cached_property
    def canonical(self) -> str:
        """`name(type,...)`, the text whose Keccak-256 starts with the selector."""
        return f"{self.name}({','.join(t.canonical for t in self.inputs)})"

    @cached_property
    def selector(self) -> bytes:
        """The 4-byte method id."""
        return keccak256(self.canonical.encode())[:4]

    @cached_property
    def depth(self) -> int:
        """Deepest nesting of any input type (0 without inputs)."""
        return max((t.depth for t in self.inputs), default=0)

    def go_method_string(self) -> str:
        """geth's `Method.String()` for a method built from a selector (used in error texts)."""
        args = ", ".join(f"{t.canonical} name{i}" for i, t in enumerate(self.inputs))
        return f"function {self.name}({args}) returns()"

    def __str__(self) -> str:
        return self.canonical


@dataclass(frozen=True)
class DecodedCall:
    """Calldata that matched a signature exactly (decoded and re-encoded to the same bytes)."""

    signature: Signature
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.signature.inputs):
            raise ValueError("decoded call: one value per input required")
        _ = self.encoded_arguments  # raises AbiError unless every value fits its type

    @cached_property
    def encoded_arguments(self) -> bytes:
        """The canonical encoding of the values (without the selector)."""
        return encode_arguments(self.signature.inputs, self.values)

    @property
    def selector(self) -> bytes:
        """The 4-byte method id of the call."""
        return self.signature.selector

    def go_string(self) -> str:
        """The reference's decodedCallData.String(): `name(type: value,type: value)`, unquoted.

        May hold any character a calldata string carried: display it only through `go_quote`.
        """
        args = ",".join(
            f"{t.canonical}: {format_value(t, v)}"
            for t, v in zip(self.signature.inputs, self.values, strict=True)
        )
        return f"{self.signature.name}({args})"

    def quoted(self) -> str:
        """The call as the reference shows it in call_info: Go-quoted, safe for any terminal."""
        return go_quote(self.go_string())


# --- signature parsing --------------------------------------------------------------------

# A parsed-but-unchecked type: an elementary type string, or tuple components plus the
# array suffix that followed the closing parenthesis (e.g. "[]" or "[2][]").
_RawType = str | tuple[list["_RawType"], str]


def _is_alpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_identifier(text: str) -> bool:
    if not text or not (_is_alpha(text[0]) or text[0] in "$_"):
        return False
    return all(_is_alpha(c) or _is_digit(c) or c in "$_" for c in text)


def _echo(text: str) -> str:
    """The caller's text for an error message, with non-printable characters escaped.

    The reference echoes the selector raw; a hostile one could carry terminal escapes.
    """
    return "".join(c if _is_print(c) else go_quote(c)[1:-1] for c in text)


class _Parser:
    """Recursive descent over a selector, mirroring go-ethereum's abi.ParseSelector."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, ident: bool) -> str:
        start = self.pos
        first = self.peek()
        if not first:
            raise AbiError("empty token")
        if not (_is_alpha(first) or (ident and first in "$_")):
            raise AbiError(f"invalid token start: {_echo(first)}")
        self.pos += 1
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if not (_is_alpha(c) or _is_digit(c) or (ident and c in "$_")):
                break
            self.pos += 1
        return self.text[start : self.pos]

    def array_suffix(self, depth: int) -> str:
        suffix = ""
        while self.peek() == "[":
            depth += 1
            if depth > MAX_TYPE_DEPTH:
                raise AbiError(f"type nested deeper than {MAX_TYPE_DEPTH}")
            self.pos += 1
            start = self.pos
            while _is_digit(self.peek()):
                self.pos += 1
            digits = self.text[start : self.pos]
            if self.peek() != "]":
                got = self.peek() or "end of input"
                raise AbiError(f"failed to parse array: expected ']', got {_echo(got)}")
            self.pos += 1
            suffix += f"[{digits}]"
        return suffix

    def type(self, depth: int) -> _RawType:
        if depth > MAX_TYPE_DEPTH:
            raise AbiError(f"type nested deeper than {MAX_TYPE_DEPTH}")
        if not self.peek():
            raise AbiError("empty type")
        if self.peek() == "(":
            components = self.composite(depth)
            return (components, self.array_suffix(depth))
        try:
            name = self.token(ident=False)
        except AbiError as exc:
            raise AbiError(f"failed to parse elementary type: {exc}") from None
        return name + self.array_suffix(depth)

    def selector(self) -> tuple[str, list[_RawType]]:
        name = self.token(ident=True)
        if self.text[self.pos : self.pos + 2] == "()":
            self.pos += 2
            raw: list[_RawType] = []
        else:
            raw = self.composite(0)
        if self.pos < len(self.text):
            raise AbiError(f"unexpected string '{_echo(self.text[self.pos :])}'")
        return name, raw

    def composite(self, depth: int) -> list[_RawType]:
        if self.peek() != "(":
            raise AbiError(f"expected '(', got {_echo(self.peek() or 'end of input')}")
        self.pos += 1
        result: list[_RawType] = []
        while True:
            try:
                result.append(self.type(depth + 1))
            except AbiError as exc:
                raise AbiError(f"failed to parse type: {exc}") from None
            if self.peek() != ",":
                break
            self.pos += 1
        if self.peek() != ")":
            raise AbiError(f"expected ')', got '{_echo(self.text[self.pos :])}'")
        self.pos += 1
        return result


def _parse_structure(text: str) -> tuple[str, list[_RawType]]:
    """Split a selector into name and raw types (errors worded as geth's ParseSelector)."""
    if len(text) > MAX_SIGNATURE_LENGTH:
        raise AbiError(
            f"failed to parse selector: selector longer than {MAX_SIGNATURE_LENGTH} characters"
        )
    parser = _Parser(text)
    try:
        return parser.selector()
    except AbiError as exc:
        raise AbiError(
            f"failed to parse selector: failed to parse selector '{_echo(text)}': {exc}"
        ) from None


def _split_suffix(text: str) -> tuple[str, list[str]]:
    """`uint256[2][]` -> ("uint256", ["2", ""])."""
    base, _, rest = text.partition("[")
    dims = [d.rstrip("]") for d in rest.split("[")] if rest else []
    return base, dims


def _elementary(name: str) -> AbiType:
    for kind in ("uint", "int"):
        if name.startswith(kind) and name[len(kind) :].isdigit():
            digits = name[len(kind) :]
            bits = int(digits) if len(digits) <= 3 and digits[0] != "0" else 0
            if 8 <= bits <= 256 and bits % 8 == 0:
                return AbiType(kind, bits)
            raise AbiError(f"unsupported arg type: {name}")
    if name.startswith("bytes") and name[5:].isdigit():
        digits = name[5:]
        size = int(digits) if len(digits) <= 2 and digits[0] != "0" else 0
        if 1 <= size <= 32:
            return AbiType("fixedbytes", size)
        raise AbiError(f"unsupported arg type: {name}")
    if name in ("address", "bool", "string", "bytes", "function"):
        return AbiType(name)  # type: ignore[arg-type]
    raise AbiError(f"unsupported arg type: {name}")


def _with_dims(base: AbiType, dims: list[str], whole: str) -> AbiType:
    result = base
    for digits in dims:
        if digits == "":
            result = AbiType("slice", elem=result)
            continue
        if len(digits) > _MAX_ARRAY_DIGITS or digits[0] == "0":
            raise AbiError(f"invalid array size in arg type: {whole}")
        result = AbiType("array", int(digits), elem=result)
    return result


def _build_type(raw: _RawType) -> AbiType:
    if isinstance(raw, str):
        base_name, dims = _split_suffix(raw)
        return _with_dims(_elementary(base_name), dims, raw)
    components, suffix = raw
    built = AbiType("tuple", components=tuple(_build_type(c) for c in components))
    _, dims = _split_suffix(suffix)
    return _with_dims(built, dims, "tuple" + suffix)


def _go_abi_json(name: str, raw: list[_RawType]) -> str:
    """The ABI JSON geth builds from a selector (it appears, quoted, in its error texts)."""

    def args(items: list[_RawType]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                out.append({"Name": f"name{i}", "Type": item, "InternalType": item,
                            "Components": None, "Indexed": False})
            else:
                typ = "tuple" + item[1]
                out.append({"Name": f"name{i}", "Type": typ, "InternalType": typ,
                            "Components": args(item[0]), "Indexed": False})
        return out

    spec = [{"name": name, "type": "function", "inputs": args(raw)}]
    return json.dumps(spec, separators=(",", ":"))


def _build_signature(name: str, raw: list[_RawType]) -> Signature:
    try:
        return Signature(name, tuple(_build_type(r) for r in raw))
    except ValueError as exc:  # AbiError, or AbiType refusing a too-deep type
        raise AbiError(
            f"invalid method signature ({go_quote(_go_abi_json(name, raw))}): {exc}"
        ) from None


def parse_signature(text: str) -> Signature:
    """Parse a canonical method signature `name(type,...)`; raises AbiError with geth's wording."""
    if not isinstance(text, str):
        raise AbiError("failed to parse selector: selector must be a string")
    name, raw = _parse_structure(text)
    return _build_signature(name, raw)


def parse_type(text: str) -> AbiType:
    """Parse one canonical ABI type string such as `(address,uint256)[]`."""
    sig = parse_signature(f"f({text})")
    if len(sig.inputs) != 1:
        raise AbiError(f"not a single ABI type: {_echo(text)}")
    return sig.inputs[0]


# --- decoding -----------------------------------------------------------------------------


def _go_bytes(raw: bytes) -> str:
    """Go's %v of a byte slice or array: `[1 2 3]`."""
    return "[" + " ".join(str(b) for b in raw) + "]"


class _Decoder:
    """Go's toGoType over one argument blob, with a budget against offset-reuse blow-ups."""

    def __init__(self, data: bytes, depth: int) -> None:
        self.data = data
        # A canonical encoding yields at most depth+1 values per 32-byte word and at most
        # len(data) bytes of byte/string contents; more means offsets were reused to inflate.
        self.nodes_left = (depth + 1) * (len(data) // 32) + 16
        self.bytes_left = len(data)

    def _spend(self, nodes: int, nbytes: int = 0) -> None:
        self.nodes_left -= nodes
        self.bytes_left -= nbytes
        if self.nodes_left < 0 or self.bytes_left < 0:
            raise AbiError(
                "abi: decoded values exceed what the call data can encode (reused offsets)"
            )

    def word(self, base: int, pos: int) -> bytes:
        size = len(self.data) - base
        if pos + 32 > size:
            raise AbiError(
                f"abi: cannot marshal in to go type: length insufficient {size} require {pos + 32}"
            )
        return self.data[base + pos : base + pos + 32]

    def length_prefix(self, base: int, pos: int) -> tuple[int, int]:
        """(start, length) of a length-prefixed value whose offset word is at pos."""
        size = len(self.data) - base
        offset_end = int.from_bytes(self.word(base, pos), "big") + 32
        if offset_end > size:
            raise AbiError(
                f"abi: cannot marshal in to go slice: offset {offset_end} "
                f"would go over slice boundary (len={size})"
            )
        length = int.from_bytes(self.data[base + offset_end - 32 : base + offset_end], "big")
        total = offset_end + length
        if total.bit_length() > 63:
            raise AbiError(f"abi: length larger than int64: {total}")
        if total > size:
            raise AbiError(
                f"abi: cannot marshal in to go type: length insufficient {size} require {total}"
            )
        return offset_end, length

    def each(self, t: AbiType, base: int, count: int) -> tuple[Any, ...]:
        size = len(self.data) - base
        if 32 * count > size:
            raise AbiError(
                f"abi: cannot marshal into go array: offset {size} "
                f"would go over slice boundary (len={32 * count})"
            )
        elem = t.element
        return tuple(self.value(elem, base, j * elem.head_size) for j in range(count))

    def fields(self, types: Sequence[AbiType], base: int) -> tuple[Any, ...]:
        values = []
        pos = 0
        for t in types:
            values.append(self.value(t, base, pos))
            pos += t.head_size
        return tuple(values)

    def value(self, t: AbiType, base: int, pos: int) -> Any:
        self._spend(1)
        word = self.word(base, pos)
        kind = t.kind
        if kind in ("bytes", "string"):
            start, length = self.length_prefix(base, pos)
            self._spend(0, length)
            raw = self.data[base + start : base + start + length]
            return raw.decode("utf-8", "surrogateescape") if kind == "string" else raw
        if kind == "slice":
            start, length = self.length_prefix(base, pos)
            return self.each(t, base + start, length)
        if kind == "array":
            if t.element.is_dynamic:
                offset = int.from_bytes(word[24:], "big")
                size = len(self.data) - base
                if offset > size:
                    raise AbiError(
                        "abi: toGoType offset greater than output length: "
                        f"offset: {offset}, len(output): {size}"
                    )
                return self.each(t, base + offset, t.size)
            return self.each(t, base + pos, t.size)
        if kind == "tuple":
            if t.is_dynamic:
                offset = int.from_bytes(word, "big")
                size = len(self.data) - base
                if offset > size:
                    raise AbiError(
                        f"abi: cannot marshal in to go slice: offset {offset} "
                        f"would go over slice boundary (len={size})"
                    )
                return self.fields(t.components, base + offset)
            return self.fields(t.components, base + pos)
        if kind == "uint":
            number = int.from_bytes(word, "big")
            if number >> t.size:
                raise AbiError(f"abi: improperly encoded uint{t.size} value")
            return number
        if kind == "int":
            number = int.from_bytes(word, "big", signed=True)
            if not -(1 << (t.size - 1)) <= number < (1 << (t.size - 1)):
                raise AbiError(f"abi: improperly encoded int{t.size} value")
            return number
        if kind == "bool":
            if any(word[:31]) or word[31] > 1:
                raise AbiError("abi: improperly encoded boolean value")
            return word[31] == 1
        if kind == "address":
            return word[12:]
        if kind == "fixedbytes":
            return word[: t.size]
        if kind == "function":
            if any(word[24:]):
                raise AbiError(f"abi: got improperly encoded function type, got {_go_bytes(word)}")
            return word[:24]
        raise AbiError(f"abi: unknown type {kind}")  # pragma: no cover - Kind is exhaustive


def decode_arguments(types: Sequence[AbiType], data: bytes) -> tuple[Any, ...]:
    """Decode an argument blob the way geth's UnpackValues does (lenient about padding and
    trailing data, which the re-encoding check of `decode_call` catches).

    Values: int, bool, bytes (address: 20 bytes, bytesN, bytes, function: 24 bytes),
    str (string; invalid UTF-8 kept as surrogate escapes), tuple (tuples and arrays).
    """
    depth = max((t.depth for t in types), default=0)
    return _Decoder(bytes(data), depth).fields(types, 0)


# --- encoding -----------------------------------------------------------------------------


def _pad_right(raw: bytes) -> bytes:
    return raw + b"\x00" * (-len(raw) % 32)


def _encode_sequence(types: Sequence[AbiType], values: Sequence[Any]) -> bytes:
    if len(types) != len(values):
        raise AbiError(f"argument count mismatch: {len(values)} for {len(types)}")
    head_size = sum(t.head_size for t in types)
    heads: list[bytes] = []
    tails: list[bytes] = []
    tail_len = 0
    for t, v in zip(types, values, strict=True):
        encoded = encode_value(t, v)
        if t.is_dynamic:
            heads.append((head_size + tail_len).to_bytes(32, "big"))
            tails.append(encoded)
            tail_len += len(encoded)
        else:
            heads.append(encoded)
    return b"".join(heads) + b"".join(tails)


def encode_value(t: AbiType, value: Any) -> bytes:
    """Canonical ABI encoding of one value of type t (values as `decode_arguments` returns)."""
    kind = t.kind
    if kind in ("uint", "int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AbiError(f"abi: cannot use {type(value).__name__} as type {t.canonical}")
        half = 1 << (t.size - 1)
        low, high = (0, 2 * half) if kind == "uint" else (-half, half)
        if not low <= value < high:
            raise AbiError(f"abi: value out of range for {t.canonical}")
        return (value % (1 << 256)).to_bytes(32, "big")
    if kind == "bool":
        if not isinstance(value, bool):
            raise AbiError(f"abi: cannot use {type(value).__name__} as type bool")
        return (1 if value else 0).to_bytes(32, "big")
    if kind in ("string", "bytes"):
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        if not isinstance(raw, bytes | bytearray) or isinstance(value, str) != (kind == "string"):
            raise AbiError(f"abi: cannot use {type(value).__name__} as type {kind}")
        return len(raw).to_bytes(32, "big") + _pad_right(bytes(raw))
    if kind in ("address", "fixedbytes", "function"):
        width = {"address": 20, "function": 24}.get(kind, t.size)
        if not isinstance(value, bytes | bytearray) or len(value) != width:
            raise AbiError(f"abi: {t.canonical} needs exactly {width} bytes")
        return (b"\x00" * 12 + bytes(value)) if kind == "address" else _pad_right(bytes(value))
    if kind == "tuple":
        if not isinstance(value, tuple | list):
            raise AbiError(f"abi: cannot use {type(value).__name__} as type {t.canonical}")
        return _encode_sequence(t.components, value)
    if not isinstance(value, tuple | list):
        raise AbiError(f"abi: cannot use {type(value).__name__} as type {t.canonical}")
    if kind == "array" and len(value) != t.size:
        raise AbiError(f"abi: {t.canonical} needs {t.size} elements, got {len(value)}")
    body = _encode_sequence([t.element] * len(value), value)
    return (len(value).to_bytes(32, "big") + body) if kind == "slice" else body


def encode_arguments(types: Sequence[AbiType], values: Sequence[Any]) -> bytes:
    """Canonical ABI encoding of an argument list (no selector)."""
    return _encode_sequence(types, values)


# --- verification (the reference's verifySelector / parseCallData) ------------------------


def _check_lengths(calldata: bytes) -> None:
    if len(calldata) < 4:
        raise AbiError(
            f"invalid call data, incomplete method signature ({len(calldata)} bytes < 4)"
        )
    if (len(calldata) - 4) % 32:
        raise AbiError(
            "invalid call data; length should be a multiple of 32 bytes "
            f"(was {len(calldata) - 4})"
        )


def _match(signature: Signature, calldata: bytes) -> DecodedCall:
    if calldata[:4] != signature.selector:
        raise AbiError(f"no method with id: 0x{calldata[:4].hex()}")
    argdata = calldata[4:]
    try:
        values = decode_arguments(signature.inputs, argdata)
    except AbiError as exc:
        raise AbiError(
            f"signature {go_quote(signature.go_method_string())} matches, "
            f"but arguments mismatch: {exc}"
        ) from None
    # eth-abi and geth both decode without noticing extra bytes; re-encoding exposes data
    # smuggled into padding, gaps between offsets or the tail (the reference's check).
    call = DecodedCall(signature, values)
    encoded = call.encoded_arguments
    if encoded != argdata:
        raise AbiError(
            "WARNING: Supplied data is stuffed with extra data. "
            f"\nWant {argdata.hex()}\nHave {encoded.hex()}\nfor method {signature.canonical}"
        )
    return call


def verify_selector(selector: str, calldata: bytes) -> DecodedCall:
    """Check calldata (selector + arguments) against a signature text, in the reference's order.

    Raises AbiError with the reference's texts: selector parse errors, length errors,
    type errors, `no method with id: 0x…`, argument mismatches and the re-encoding
    ("stuffed with extra data") check.
    """
    if not isinstance(selector, str):
        raise AbiError("failed to parse selector: selector must be a string")
    name, raw = _parse_structure(selector)
    _check_lengths(calldata)
    return _match(_build_signature(name, raw), bytes(calldata))


def decode_call(signature: Signature | str, calldata: bytes) -> DecodedCall:
    """Decode calldata against a signature (parsed or text); see `verify_selector` for errors."""
    if isinstance(signature, str):
        return verify_selector(signature, calldata)
    _check_lengths(calldata)
    return _match(signature, bytes(calldata))


# --- formatting ---------------------------------------------------------------------------


def format_value(t: AbiType, value: Any) -> str:
    """One decoded value as Go's `%v` prints it (unquoted; strings are raw)."""
    kind = t.kind
    if kind in ("uint", "int"):
        return str(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "address":
        return to_checksum(bytes(value))
    if kind == "string":
        return str(value)
    if kind in ("bytes", "fixedbytes", "function"):
        return _go_bytes(bytes(value))
    if kind == "tuple":
        parts = (format_value(c, v) for c, v in zip(t.components, value, strict=True))
        return "{" + " ".join(parts) + "}"
    elem = t.element
    return "[" + " ".join(format_value(elem, v) for v in value) + "]"


_SIMPLE_ESCAPES: Final = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
}


def _is_print(c: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    if c == " ":
        return True
    if "\ud800" <= c <= "\udfff":
        return False
    return unicodedata.category(c)[0] in "LMNPS"


def go_quote(text: str) -> str:
    """Go's strconv.Quote (%q): a double-quoted literal with every non-printable escaped.

    Lone surrogates U+DC80..U+DCFF stand for undecodable bytes (surrogateescape) and come
    out as `\\xNN`, as Go prints invalid UTF-8.
    """
    out = ['"']
    for c in text:
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif _is_print(c):
            out.append(c)
        elif c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
        else:
            code = ord(c)
            if "\udc80" <= c <= "\udcff":
                out.append(f"\\x{code - 0xDC00:02x}")
            elif code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif 0xD800 <= code <= 0xDFFF:
                out.append("\ufffd")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
