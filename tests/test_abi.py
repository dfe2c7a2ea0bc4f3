"""policy.abi: signature parsing, calldata decoding and the reference's checks and texts.

Fixtures: rules-cases.json -> calldata_decoding_cases (signer/fourbyte/abi_test.go).
eth-abi is the independent oracle for encoding and type-string normalisation.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import eth_abi.grammar
import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.abi import (
    MAX_SIGNATURE_LENGTH,
    MAX_TYPE_DEPTH,
    AbiError,
    AbiType,
    DecodedCall,
    Signature,
    decode_arguments,
    decode_call,
    encode_arguments,
    format_value,
    go_quote,
    parse_signature,
    parse_type,
    verify_selector,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES: dict[str, Any] = json.loads(
    (SHARED / "conformance/geth/rules-cases.json").read_text()
)["calldata_decoding_cases"]
SIGNATURES = {selector: sig for sig, selector in CASES["selectors"].items()}


def _signature_for(calldata_hex: str) -> str:
    # The Go test decodes against one ABI holding all four methods: pick the method by id;
    # an unknown id is decoded against any of them (and must fail with "no method with id").
    return str(SIGNATURES.get(calldata_hex[:8].lower(), "send(uint256)"))


# --- fixtures ---------------------------------------------------------------------------


def test_fixture_selectors_match_keccak() -> None:
    for sig, selector in CASES["selectors"].items():
        assert parse_signature(sig).selector.hex() == selector


@pytest.mark.parametrize("calldata", CASES["must_fail"])
def test_calldata_must_fail(calldata: str) -> None:
    with pytest.raises(AbiError):
        decode_call(_signature_for(calldata), bytes.fromhex(calldata))


@pytest.mark.parametrize("calldata", CASES["must_succeed"])
def test_calldata_must_succeed(calldata: str) -> None:
    call = decode_call(_signature_for(calldata), bytes.fromhex(calldata))
    assert encode_arguments(call.signature.inputs, call.values) == bytes.fromhex(calldata)[4:]


@pytest.mark.parametrize("selector", CASES["malicious_selectors"]["must_be_rejected"])
def test_malicious_selectors_rejected(selector: str) -> None:
    calldata = bytes.fromhex(CASES["malicious_selectors"]["calldata"])
    with pytest.raises(AbiError, match=r"^failed to parse selector: "):
        verify_selector(selector, calldata)


def _expected_value(spec: Any) -> Any:
    """The fixture's descriptive values ("0x123", "bytes10 '…'", "address 0x…") as ours."""
    if isinstance(spec, list):
        return tuple(_expected_value(v) for v in spec)
    if isinstance(spec, str):
        if spec.startswith("0x"):
            return int(spec, 16)
        kind, _, rest = spec.partition(" ")
        if kind == "address":
            return bytes.fromhex(rest[2:])
        if kind.startswith("bytes"):
            return rest.strip("'").encode()
    return spec


@pytest.mark.parametrize("case", CASES["unpack_examples"]["cases"], ids=lambda c: c["abi"][:60])
def test_unpack_examples(case: dict[str, Any]) -> None:
    (method,) = json.loads(case["abi"])
    text = f"{method['name']}({','.join(i['type'] for i in method['inputs'])})"
    call = decode_call(text, bytes.fromhex(case["calldata"]))
    assert call.values == tuple(_expected_value(v) for v in case["values"])


# --- exact texts ------------------------------------------------------------------------


WORD = (0x12).to_bytes(32, "big")
SEND = bytes.fromhex("a52c101e")


def test_reference_formatting() -> None:
    call = decode_call("safeSend(address)", bytes.fromhex("4401a6e4") + WORD)
    assert call.go_string() == "safeSend(address: 0x0000000000000000000000000000000000000012)"
    assert call.quoted() == '"safeSend(address: 0x0000000000000000000000000000000000000012)"'
    transfer = "transfer(address,uint256)"
    to = bytes.fromhex("d8da6bf26964af9d7eed9e03e53415d37aa96045")
    data = parse_signature(transfer).selector + abi_encode(["address", "uint256"], [to, 5])
    assert decode_call(transfer, data).go_string() == (
        "transfer(address: 0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045,uint256: 5)"
    )


def test_go_value_formats() -> None:
    sig = parse_signature("f(bytes,bytes3,int8,bool,string,(uint8,address[])[],function)")
    values: tuple[Any, ...] = (
        b"\x01\x02\x03", b"abc", -5, False, "hi there",
        ((7, (b"\x11" * 20,)),), b"\x01" * 24,
    )
    call = DecodedCall(sig, values)
    assert call.go_string() == (
        "f(bytes: [1 2 3],bytes3: [97 98 99],int8: -5,bool: false,string: hi there,"
        "(uint8,address[])[]: [{7 [0x1111111111111111111111111111111111111111]}],"
        "function: [" + " ".join(["1"] * 24) + "])"
    )
    data = sig.selector + encode_arguments(sig.inputs, values)
    assert decode_call(sig, data) == call


def test_error_texts() -> None:
    assert _err("send(uint256)", SEND + WORD + WORD) == (
        "WARNING: Supplied data is stuffed with extra data. "
        f"\nWant {(WORD + WORD).hex()}\nHave {WORD.hex()}\nfor method send(uint256)"
    )
    assert _err("send(uint256)", SEND) == (
        'signature "function send(uint256 name0) returns()" matches, but arguments mismatch: '
        "abi: cannot marshal in to go type: length insufficient 0 require 32"
    )
    assert _err("send(uint256)", b"\xde\xad\xbe\xef" + WORD) == "no method with id: 0xdeadbeef"
    assert _err("send(uint256)", SEND[:3]) == (
        "invalid call data, incomplete method signature (3 bytes < 4)"
    )
    assert _err("send(uint256)", SEND + WORD + b"\x00") == (
        "invalid call data; length should be a multiple of 32 bytes (was 33)"
    )
    assert _err("f(uint7)", SEND) == (
        'invalid method signature ("[{\\"name\\":\\"f\\",\\"type\\":\\"function\\",'
        '\\"inputs\\":[{\\"Name\\":\\"name0\\",\\"Type\\":\\"uint7\\",\\"InternalType\\":'
        '\\"uint7\\",\\"Components\\":null,\\"Indexed\\":false}]}]"): unsupported arg type: uint7'
    )
    assert _err("f(uint256", SEND) == (
        "failed to parse selector: failed to parse selector 'f(uint256': expected ')', got ''"
    )
    bad_bool = parse_signature("f(bool)").selector + (2).to_bytes(32, "big")
    assert _err("f(bool)", bad_bool) == (
        'signature "function f(bool name0) returns()" matches, but arguments mismatch: '
        "abi: improperly encoded boolean value"
    )


def _err(signature: str, calldata: bytes) -> str:
    with pytest.raises(AbiError) as info:
        verify_selector(signature, calldata)
    return info.value.message


def test_parse_errors_before_length_errors_before_type_errors() -> None:
    # The reference parses the selector, then checks lengths, then builds the ABI types.
    assert _err("f(,)", b"").startswith("failed to parse selector")
    assert _err("f(uint7)", b"").startswith("invalid call data, incomplete")


@pytest.mark.parametrize(
    "typ",
    ["uint", "int", "uint0", "uint7", "uint264", "uint08", "bytes0", "bytes33", "bytes01",
     "fixed128x18", "ufixed", "UINT256", "address[0]", "uint256[01]", "tuple", "byte"],
)
def test_unsupported_types(typ: str) -> None:
    with pytest.raises(AbiError, match="invalid method signature"):
        parse_signature(f"f({typ})")


@pytest.mark.parametrize(
    "text",
    ["", "f", "(uint256)", "1f()", "f(uint256 a)", "f( uint256)", "f(uint256,)", "f(()",
     "f(())", "f(uint256[)", "f(uint256[2)", "f(uint256)x", "f(uint256))", "f(\x1b[31m)",
     "f(uint256)\n", "f\u00e9()", "f(uint256[-1])"],
)
def test_malformed_signatures(text: str) -> None:
    with pytest.raises(AbiError, match=r"^failed to parse selector"):
        parse_signature(text)


def test_echoed_selector_is_escaped() -> None:
    message = _err("f(\x1b[2Jx\u202e)", SEND)
    assert "\x1b" not in message and "\u202e" not in message
    assert "\\x1b" in message and "\\u202e" in message


def test_empty_argument_list() -> None:
    sig = parse_signature("f()")
    assert sig.inputs == () and sig.canonical == "f()"
    assert decode_call(sig, sig.selector).go_string() == "f()"
    with pytest.raises(AbiError, match="stuffed"):
        decode_call(sig, sig.selector + WORD)


def test_identifier_characters() -> None:
    assert parse_signature("$_a9(uint256)").name == "$_a9"


def test_go_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\n\t\a\x00\x7f") == '"\\n\\t\\a\\x00\\x7f"'
    assert go_quote("é€😀") == '"é€😀"'
    assert go_quote("\u200b\u202e\u00a0") == '"\\u200b\\u202e\\u00a0"'
    assert go_quote("\U000e0001") == '"\\U000e0001"'
    raw = b"ok\xff\xfe"
    assert go_quote(raw.decode("utf-8", "surrogateescape")) == '"ok\\xff\\xfe"'


def test_invalid_utf8_string_round_trips_and_is_escaped() -> None:
    sig = parse_signature("f(string)")
    raw = b"\xe2\x80\xae\x1b[31mred\xff"
    data = sig.selector + abi_encode(["bytes"], [raw])
    call = decode_call(sig, data)
    assert call.quoted() == '"f(string: \\u202e\\x1b[31mred\\xff)"'


def test_address_with_dirty_padding_is_stuffed() -> None:
    sig = parse_signature("f(address)")
    with pytest.raises(AbiError, match="stuffed"):
        decode_call(sig, sig.selector + b"\x01" + b"\x00" * 11 + b"\x22" * 20)


@pytest.mark.parametrize(
    ("typ", "word", "message"),
    [
        ("uint8", (256).to_bytes(32, "big"), "abi: improperly encoded uint8 value"),
        ("uint24", (1 << 24).to_bytes(32, "big"), "abi: improperly encoded uint24 value"),
        ("int8", (128).to_bytes(32, "big"), "abi: improperly encoded int8 value"),
        ("int16", (-(1 << 15) - 1).to_bytes(32, "big", signed=True),
         "abi: improperly encoded int16 value"),
        ("function", b"\x01" * 32, "abi: got improperly encoded function type, got [1 1 1"),
    ],
)
def test_out_of_range_words(typ: str, word: bytes, message: str) -> None:
    sig = parse_signature(f"f({typ})")
    assert message in _err(sig.canonical, sig.selector + word)


def test_negative_ints_in_range() -> None:
    sig = parse_signature("f(int8,int256)")
    data = sig.selector + abi_encode(["int8", "int256"], [-128, -(1 << 255)])
    assert decode_call(sig, data).values == (-128, -(1 << 255))


# --- hostile input ----------------------------------------------------------------------


def test_signature_length_cap() -> None:
    text = "f(" + ",".join(["uint256"] * 1000) + ")"
    assert len(text) > MAX_SIGNATURE_LENGTH
    with pytest.raises(AbiError, match="longer than"):
        parse_signature(text)


def test_nesting_depth_cap() -> None:
    deep_tuple = "f(" + "(" * (MAX_TYPE_DEPTH + 1) + "uint256" + ")" * (MAX_TYPE_DEPTH + 1) + ")"
    with pytest.raises(AbiError):
        parse_signature(deep_tuple)
    deep_array = "f(uint256" + "[]" * MAX_TYPE_DEPTH + ")"
    with pytest.raises(AbiError):
        parse_signature(deep_array)
    # depth counts tuple levels and array dimensions together
    mixed = "f(" + "(" * 10 + "uint256" + ")" * 10 + "[]" * 25 + ")"
    with pytest.raises(AbiError):
        parse_signature(mixed)
    ok = "f(uint256" + "[]" * (MAX_TYPE_DEPTH - 1) + ")"
    assert parse_signature(ok).depth == MAX_TYPE_DEPTH


def test_huge_lengths_and_offsets_fail_fast() -> None:
    for typ in ("bytes", "string", "uint256[]", "uint256[][]", "(uint256,bytes)", "bytes[3]"):
        sig = parse_signature(f"f({typ})")
        for head in ((1 << 256) - 1, 1 << 62, 32, 0):
            tail = ((1 << 256) - 1).to_bytes(32, "big") * 3
            started = time.perf_counter()
            with pytest.raises(AbiError):
                decode_call(sig, sig.selector + head.to_bytes(32, "big") + tail)
            assert time.perf_counter() - started < 1.0


def test_huge_static_array_fails_fast() -> None:
    sig = parse_signature("f(uint256[4294967295][4294967295])")
    with pytest.raises(AbiError, match="go over slice boundary"):
        decode_call(sig, sig.selector + WORD * 4)


def _offset_bomb(levels: int, width: int) -> tuple[Signature, bytes]:
    """uint256[]…[] where every element of every level points at the same inner array."""
    sig = parse_signature("f(uint256" + "[]" * levels + ")")
    # Layout: [0] offset to A; A: length=width, then width offsets all pointing to A itself
    # relative to A's element area (offset = -32 is impossible, so point at a shared B).
    words = [32]  # argument offset -> level-1 array at 32
    # each level's array: length, then `width` offsets pointing at the next level's array
    for level in range(levels - 1):
        words.append(width)
        words.extend([32 * width] * width)  # all point right after this element area
        del level
    words.append(width)
    words.extend([7] * width)
    blob = b"".join(w.to_bytes(32, "big") for w in words)
    return sig, sig.selector + blob


def test_offset_reuse_bomb_is_bounded() -> None:
    sig, data = _offset_bomb(levels=6, width=40)  # would decode to 40**6 = 4e9 integers
    started = time.perf_counter()
    with pytest.raises(AbiError, match="reused offsets"):
        decode_call(sig, data)
    assert time.perf_counter() - started < 2.0


def test_bytes_reuse_bomb_is_bounded() -> None:
    sig = parse_signature("f(bytes[])")
    count, size = 200, 2000
    content = (size.to_bytes(32, "big") + b"\x41" * size)
    offsets = [32 * count] * count  # every element points at the same bytes
    blob = (32).to_bytes(32, "big") + count.to_bytes(32, "big")
    blob += b"".join(o.to_bytes(32, "big") for o in offsets) + content
    with pytest.raises(AbiError):
        decode_call(sig, sig.selector + blob)


# --- property tests ---------------------------------------------------------------------


def _types(depth: int = 3) -> st.SearchStrategy[AbiType]:
    elementary = st.one_of(
        st.sampled_from([8, 16, 24, 32, 64, 128, 160, 256]).map(lambda n: AbiType("uint", n)),
        st.sampled_from([8, 32, 256]).map(lambda n: AbiType("int", n)),
        st.integers(1, 32).map(lambda n: AbiType("fixedbytes", n)),
        st.sampled_from(["address", "bool", "string", "bytes", "function"]).map(
            lambda k: AbiType(k)  # type: ignore[arg-type]
        ),
    )

    def extend(inner: st.SearchStrategy[AbiType]) -> st.SearchStrategy[AbiType]:
        return st.one_of(
            inner.map(lambda t: AbiType("slice", elem=t)),
            st.tuples(st.integers(1, 3), inner).map(lambda p: AbiType("array", p[0], elem=p[1])),
            st.lists(inner, min_size=1, max_size=3).map(
                lambda cs: AbiType("tuple", components=tuple(cs))
            ),
        )

    return st.recursive(elementary, extend, max_leaves=6)


def _values(t: AbiType) -> st.SearchStrategy[Any]:
    kind = t.kind
    if kind == "uint":
        return st.integers(0, (1 << t.size) - 1)
    if kind == "int":
        return st.integers(-(1 << (t.size - 1)), (1 << (t.size - 1)) - 1)
    if kind == "bool":
        return st.booleans()
    if kind == "address":
        return st.binary(min_size=20, max_size=20)
    if kind == "fixedbytes":
        return st.binary(min_size=t.size, max_size=t.size)
    if kind == "function":
        return st.binary(min_size=24, max_size=24)
    if kind == "bytes":
        return st.binary(max_size=70)
    if kind == "string":
        return st.text(max_size=20)
    if kind == "tuple":
        return st.tuples(*(_values(c) for c in t.components))
    elem = t.element
    if kind == "array":
        return st.lists(_values(elem), min_size=t.size, max_size=t.size).map(tuple)
    return st.lists(_values(elem), max_size=3).map(tuple)


def _to_eth_abi(t: AbiType, v: Any) -> Any:
    if t.kind == "address":
        return "0x" + bytes(v).hex()  # eth-abi decodes addresses to lower case
    if t.kind == "tuple":
        return tuple(_to_eth_abi(c, x) for c, x in zip(t.components, v, strict=True))
    if t.kind in ("array", "slice"):
        return tuple(_to_eth_abi(t.element, x) for x in v)
    return v


@st.composite
def _typed_values(draw: st.DrawFn) -> tuple[list[AbiType], list[Any]]:
    types = draw(st.lists(_types(), min_size=0, max_size=4))
    values = [draw(_values(t)) for t in types]
    return types, values


@given(
    st.lists(_types(), max_size=5),
    st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,12}", fullmatch=True),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_signature_round_trip(types: list[AbiType], name: str) -> None:
    text = f"{name}({','.join(t.canonical for t in types)})"
    sig = parse_signature(text)
    assert sig.canonical == text
    assert sig.inputs == tuple(types)
    for t in types:
        # eth-abi's own grammar reads it back as the same canonical string
        assert eth_abi.grammar.parse(t.canonical).to_type_str() == t.canonical
        assert parse_type(t.canonical) == t


@given(_typed_values())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_codec_agrees_with_eth_abi(typed: tuple[list[AbiType], list[Any]]) -> None:
    types, values = typed
    names = [t.canonical for t in types]
    oracle_values = [_to_eth_abi(t, v) for t, v in zip(types, values, strict=True)]
    encoded = abi_encode(names, oracle_values)
    assert encode_arguments(types, values) == encoded
    decoded = decode_arguments(types, encoded)
    assert decoded == tuple(values)
    sig = Signature("f", tuple(types))
    call = decode_call(sig, sig.selector + encoded)
    assert call.values == tuple(values)
    assert call.go_string().startswith("f(")
    for t, v in zip(types, values, strict=True):
        format_value(t, v)


@given(_typed_values(), st.binary(min_size=1, max_size=64))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_trailing_junk_is_stuffed(typed: tuple[list[AbiType], list[Any]], junk: bytes) -> None:
    types, values = typed
    sig = Signature("f", tuple(types))
    padded = junk + b"\x00" * (-len(junk) % 32)
    data = sig.selector + encode_arguments(types, values) + padded
    with pytest.raises(AbiError, match="stuffed"):
        decode_call(sig, data)


@given(st.lists(_types(), min_size=1, max_size=3), st.binary(max_size=400))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_calldata_never_crashes(types: list[AbiType], blob: bytes) -> None:
    sig = Signature("f", tuple(types))
    started = time.perf_counter()
    with contextlib.suppress(AbiError):
        decode_call(sig, sig.selector + blob)
    assert time.perf_counter() - started < 2.0


@given(st.lists(_types(), min_size=1, max_size=3), st.lists(st.integers(0, 640), max_size=14))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_offsets_never_crash(types: list[AbiType], words: list[int]) -> None:
    # small word values are plausible offsets and lengths: the interesting hostile case
    sig = Signature("f", tuple(types))
    blob = b"".join(w.to_bytes(32, "big") for w in words)
    with contextlib.suppress(AbiError):
        decode_call(sig, sig.selector + blob)


@given(st.text(max_size=200))
@settings(max_examples=500)
def test_hostile_signature_text_never_crashes(text: str) -> None:
    try:
        parse_signature(text)
    except AbiError as exc:
        # the caller's text is echoed with its control characters escaped
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in exc.message)


@given(st.text(alphabet="(),[]0123456789uintbyesadrgfoclm", max_size=80))
@settings(max_examples=500)
def test_signature_alphabet_fuzz(text: str) -> None:
    try:
        sig = parse_signature("f(" + text + ")")
    except AbiError:
        return
    assert parse_signature(sig.canonical) == sig


@given(_typed_values(), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_calldata_decodes_identically_in_eth_abi(
    typed: tuple[list[AbiType], list[Any]], data: st.DataObject
) -> None:
    # Differential: mutate one word of a valid encoding; whatever we still accept as an exact
    # encoding, eth-abi (strict mode) decodes to the same values.
    types, values = typed
    sig = Signature("f", tuple(types))
    blob = bytearray(encode_arguments(types, values))
    if blob:
        index = data.draw(st.integers(0, len(blob) // 32 - 1))
        word = data.draw(st.one_of(st.integers(0, 320), st.integers(0, (1 << 256) - 1)))
        blob[32 * index : 32 * index + 32] = word.to_bytes(32, "big")
    try:
        call = decode_call(sig, sig.selector + bytes(blob))
    except AbiError:
        return
    try:
        oracle = abi_decode([t.canonical for t in types], bytes(blob), strict=True)
    except UnicodeDecodeError:
        return  # eth-abi refuses invalid UTF-8 strings; we keep and escape them
    assert oracle == tuple(_to_eth_abi(t, v) for t, v in zip(types, call.values, strict=True))


def test_decoded_call_validates_its_values() -> None:
    sig = parse_signature("f(uint8,address)")
    with pytest.raises(AbiError):
        DecodedCall(sig, (256, b"\x00" * 20))
    with pytest.raises(AbiError):
        DecodedCall(sig, (1, b"\x00" * 19))
    with pytest.raises(ValueError, match="one value per input"):
        DecodedCall(sig, (1,))
