"""account_signData content types, the UI request, ecRecover; eth-account as the EIP-191 oracle."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct, encode_intended_validator
from eth_typing import Address
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ClefError, InvalidParams, SignerError
from clef.eth.clique import CliqueHeader
from clef.eth.eip712 import TypedData
from clef.eth.hashing import keccak256
from clef.eth.secp import SECP256K1_N, address_of, sign_hash
from clef.eth.signdata import (
    ACCEPTED_CONTENT_TYPES,
    SignDataPlan,
    decode_hex,
    ec_recover,
    encode_signature,
    parse_media_type,
    prepare_sign_data,
    sign_data_request_json,
    typed_data_plan,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
GETH = SHARED / "conformance" / "geth"
EXPECTED = json.loads((GETH / "expected.json").read_text())
MAIL_FILE = GETH / "eip712" / "eip712.json"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_ADDRESS = bytes.fromhex("2c7536E3605D9C16a7a3D7b1898e529396a65c23")
META = {"remote": "NA", "local": "NA", "scheme": "NA", "User-Agent": "", "Origin": ""}


def hexs(data: bytes) -> str:
    return "0x" + data.hex()


def signed(plan: SignDataPlan, key: bytes = KEY) -> bytes:
    recid, r, s = sign_hash(key, plan.hash)
    return encode_signature(recid, r, s, plan.v_offset)


def refused(content_type: str, data: object) -> ClefError:
    with pytest.raises(ClefError) as info:
        prepare_sign_data(content_type, data)
    return info.value


# -- text/plain ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", EXPECTED["sign_data"]["text_plain_hash"]["cases"])
def test_text_plain_pinned_hashes(case: dict[str, str]) -> None:
    message = case.get("message_hex") or hexs(case["message_utf8"].encode())
    plan = prepare_sign_data("text/plain", message)
    assert hexs(plan.hash) == case["hash"]
    if "raw_data_base64" in case:
        request = sign_data_request_json(plan, "0x" + "00" * 20, META)
        assert request["raw_data"] == case["raw_data_base64"]
    assert plan.v_offset == 27 and plan.typed is None


def test_text_plain_rows() -> None:
    plan = prepare_sign_data("text/plain", hexs(b"hello world"))
    assert plan.messages == (
        {
            "name": "message",
            "value": "\x19Ethereum Signed Message:\n11hello world",
            "type": "text/plain",
        },
    )
    # Bytes that are not UTF-8 cannot be shown faithfully as text: the hex is added.
    plan = prepare_sign_data("text/plain", "0xff00fe")
    assert plan.messages[0]["value"].endswith("3\ufffd\x00\ufffd")
    assert plan.messages[1] == {"name": "message (hex)", "value": "0xff00fe", "type": "hexdata"}


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300))
def test_text_plain_matches_eth_account(message: bytes) -> None:
    plan = prepare_sign_data("text/plain", hexs(message))
    signable = encode_defunct(primitive=message)
    assert plan.raw_data == b"\x19" + signable.version + signable.header + signable.body
    expected = Account.sign_message(signable, KEY).signature
    assert signed(plan) == bytes(expected)
    assert ec_recover(message, signed(plan)) == KEY_ADDRESS


# -- data/validator --------------------------------------------------------------------------


def test_validator_rows_and_hash() -> None:
    validator = "0x" + "ab" * 20
    data = {"address": validator, "message": "0x0102"}
    plan = prepare_sign_data("data/validator", data)
    raw = b"\x19\x00" + bytes.fromhex("ab" * 20) + b"\x01\x02"
    assert plan.raw_data == raw and plan.hash == keccak256(raw)
    assert plan.content_type == "data/validator" and plan.v_offset == 27
    assert plan.messages == (
        {
            "name": "This is a request to sign data intended for a particular validator "
            "(see EIP 191 version 0)",
            "value": "",
            "type": "description",
        },
        {
            "name": "Intended validator address",
            "value": to_checksum_address(validator),
            "type": "address",
        },
        {"name": "Application-specific data", "value": "0x0102", "type": "hexdata"},
        {"name": "Full message for signing", "value": hexs(raw), "type": "hexdata"},
    )
    alias = prepare_sign_data("text/validator", data)
    assert alias.content_type == "text/validator" and alias.hash == plan.hash


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.binary(min_size=1, max_size=100))
def test_validator_matches_eth_account(validator: bytes, message: bytes) -> None:
    plan = prepare_sign_data(
        "data/validator", {"address": hexs(validator), "message": hexs(message)}
    )
    signable = encode_intended_validator(Address(validator), primitive=message)
    assert plan.raw_data == b"\x19" + signable.version + signable.header + signable.body
    assert signed(plan) == bytes(Account.sign_message(signable, KEY).signature)


def test_validator_address_is_bytes_to_address() -> None:
    short = prepare_sign_data("data/validator", {"address": "0x0102", "message": "0x01"})
    assert short.raw_data[2:22] == bytes(18) + b"\x01\x02"
    long = "0x" + "ff" * 12 + "11" * 20
    truncated = prepare_sign_data("data/validator", {"address": long, "message": "0x01"})
    assert truncated.raw_data[2:22] == b"\x11" * 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("0x01", "validator input is not a map[string]interface{}"),
        ([], "validator input is not a map[string]interface{}"),
        ({"message": "0x01"}, "validator address error: wrong type <nil>"),
        ({"address": 5, "message": "0x01"}, "validator address error: wrong type float64"),
        (
            {"address": "ab", "message": "0x01"},
            "validator address error: hex string without 0x prefix",
        ),
        ({"address": "0x", "message": "0x01"}, "validator address is undefined"),
        ({"address": "0x01"}, "message error: wrong type <nil>"),
        ({"address": "0x01", "message": "0x1"}, "message error: hex string of odd length"),
        ({"address": "0x01", "message": "0x"}, "message is undefined"),
    ],
)
def test_validator_errors(data: object, message: str) -> None:
    error = refused("data/validator", data)
    assert isinstance(error, SignerError) and error.message == message


# -- application/x-clique-header ------------------------------------------------------------


def header_items(
    number: int = 1337, extra: bytes = b"\x00" * 32, base_fee: int | None = None
) -> list[Any]:
    items: list[Any] = [
        b"\x11" * 32,
        b"\x22" * 32,
        b"\x33" * 20,
        b"\x44" * 32,
        b"\x55" * 32,
        b"\x66" * 32,
        b"\x00" * 256,
        2,
        number,
        8_000_000,
        21_000,
        1_700_000_000,
        extra,
        b"\x00" * 32,
        b"\x00" * 8,
    ]
    if base_fee is not None:
        items.append(base_fee)
    return items


@pytest.mark.parametrize("base_fee", [None, 7])
def test_clique_header(base_fee: int | None) -> None:
    items = header_items(base_fee=base_fee)
    encoded = rlp.encode(items)
    plan = prepare_sign_data("application/x-clique-header", hexs(encoded))
    assert plan.raw_data == encoded
    assert plan.hash == keccak256(encoded)
    assert plan.v_offset == 0 and plan.content_type == "application/x-clique-header"
    sealed = list(items)
    sealed[12] = items[12] + bytes(65)
    block_hash = keccak256(rlp.encode(sealed))
    assert plan.messages == (
        {
            "name": "Clique header",
            "value": f"clique header 1337 [{hexs(block_hash)}]",
            "type": "clique",
        },
    )
    recid, _r, _s = sign_hash(KEY, plan.hash)
    assert signed(plan)[64] == recid  # V is 0/1 for clique


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (header_items()[:14], "rlp: too few elements for types.Header"),
        ([*header_items(base_fee=1), b"\x00" * 32], "post-London fields"),
        (header_items(base_fee=1) + [b"\x00" * 32] * 5, "post-London fields"),
        (
            [*header_items()[:2], b"\x33" * 19, *header_items()[3:]],
            "miner must be 20 bytes, got 19",
        ),
        ([*header_items()[:7], b"\x00\x02", *header_items()[8:]], "non-canonical integer"),
        (
            [*header_items()[:9], b"\x01" * 9, *header_items()[10:]],
            "gasLimit is larger than 64 bits",
        ),
        ([*header_items()[:12], [b"x"], *header_items()[13:]], "extraData must be a byte string"),
    ],
)
def test_clique_header_errors(items: list[Any], message: str) -> None:
    error = refused("application/x-clique-header", hexs(rlp.encode(items)))
    assert isinstance(error, SignerError) and message in error.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01", "rlp: expected input list for types.Header"),
        (rlp.encode(header_items()) + b"\x00", "invalid clique header: rlp:"),
        (b"\xc1\x81\x05", "invalid clique header: rlp:"),
        (b"\xf9\x00\x03" * 200_000, "invalid clique header"),
        (b"\xc0" * (1 << 20) + b"\xc0", "larger than 1048576 bytes"),
    ],
)
def test_clique_hostile_rlp(raw: bytes, message: str) -> None:
    error = refused("application/x-clique-header", hexs(raw))
    assert message in error.message


def test_clique_deep_nesting_is_a_clean_error() -> None:
    # 3000 nested lists, built by hand (pyrlp's encoder would recurse as well).
    payload = b"\x80"
    for _ in range(3000):
        if len(payload) > 55:
            prefix = b"\xf9" + len(payload).to_bytes(2, "big")
        else:
            prefix = bytes([0xC0 + len(payload)])
        payload = prefix + payload
    error = refused("application/x-clique-header", hexs(payload))
    assert "invalid clique header" in error.message


def test_clique_header_dataclass_checks() -> None:
    with pytest.raises(SignerError):
        CliqueHeader(tuple(header_items()[:3]))


# -- data/typed ------------------------------------------------------------------------------


def test_data_typed_hex_and_object_give_identical_signatures() -> None:
    text = MAIL_FILE.read_bytes()
    from_hex = prepare_sign_data("data/typed", hexs(text))
    from_object = prepare_sign_data("data/typed", json.loads(text))
    # account_signTypedData goes through typed_data_plan directly.
    direct = typed_data_plan(TypedData.parse(json.loads(text)))
    assert from_hex.hash == from_object.hash == direct.hash
    assert signed(from_hex) == signed(from_object) == signed(direct)
    assert from_hex.raw_data[:2] == b"\x19\x01" and len(from_hex.raw_data) == 66
    assert from_hex.typed is not None
    assert list(from_hex.messages) == from_hex.typed.format_messages()
    assert from_hex.content_type == "data/typed" and from_hex.v_offset == 27


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (5, "wrong type float64"),
        (None, "wrong type <nil>"),
        (["0x"], "wrong type []interface {}"),
        ("", "empty hex string"),
        ("7b7d", "hex string without 0x prefix"),
        ("0x7b7d", "domain is undefined"),
        ("0x7b", "invalid typed data: Expecting property name"),
    ],
)
def test_data_typed_errors(data: object, message: str) -> None:
    assert refused("data/typed", data).message.startswith(message)


# -- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("text/plain", "text/plain"),
        ("TEXT/Plain; charset=utf-8", "text/plain"),
        ("  data/typed ;x", "data/typed"),
        ("text", "text"),
        ("application/x-clique-header;", "application/x-clique-header"),
    ],
)
def test_parse_media_type(value: str, want: str) -> None:
    assert parse_media_type(value) == want


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "mime: no media type"),
        ("; charset=x", "mime: no media type"),
        ("/plain", "mime: no media type"),
        ("text plain", "mime: expected slash after first token"),
        ("text/", "mime: expected token after slash"),
        ("text/plain x", "mime: unexpected content after media subtype"),
    ],
)
def test_parse_media_type_errors(value: str, message: str) -> None:
    with pytest.raises(SignerError) as info:
        parse_media_type(value)
    assert info.value.message == message


@pytest.mark.parametrize(
    "content_type", ["application/clique", "data/plain", "text", "text/html", "application/json"]
)
def test_unknown_content_types_are_refused(content_type: str) -> None:
    # The reference signed these as personal messages; here they are refused.
    error = refused(content_type, hexs(b"hello"))
    assert isinstance(error, InvalidParams)
    assert error.message == (
        f"unsupported content type '{content_type}'; accepted types: text/plain, data/validator, "
        "text/validator, application/x-clique-header, data/typed"
    )
    assert all(accepted in error.message for accepted in ACCEPTED_CONTENT_TYPES)


def test_content_type_must_be_a_string() -> None:
    assert isinstance(refused(5, "0x"), InvalidParams)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (5, "input for text/plain must be an hex-encoded string"),
        ("", "empty hex string"),
        ("abcd", "hex string without 0x prefix"),
        ("0x123", "hex string of odd length"),
        ("0xzz", "invalid hex string"),
        ("0xzz1", "invalid hex string"),
        ("0x12z", "invalid hex string"),
        ("0x12 4", "invalid hex string"),
    ],
)
def test_text_plain_hex_errors(data: object, message: str) -> None:
    assert refused("text/plain", data).message == message


def test_decode_hex() -> None:
    assert decode_hex("0X0aFF") == b"\x0a\xff"
    assert decode_hex("0x") == b""
    with pytest.raises(SignerError, match=r"wrong type map\[string\]interface \{\}"):
        decode_hex({})


# -- ecRecover --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=100), st.integers(1, SECP256K1_N - 1))
def test_sign_recover_round_trip(message: bytes, secret: int) -> None:
    key = secret.to_bytes(32, "big")
    plan = prepare_sign_data("text/plain", hexs(message))
    assert ec_recover(message, signed(plan, key)) == address_of(key)


def test_ec_recover_eth_account_signature() -> None:
    signature = Account.sign_message(encode_defunct(text="hello"), KEY).signature
    assert ec_recover(b"hello", bytes(signature)) == KEY_ADDRESS
    assert ec_recover(b"hellO", bytes(signature)) != KEY_ADDRESS


def test_ec_recover_accepts_high_s() -> None:
    # geth's ecrecover does not require low s; (r, N - s) with flipped parity recovers too.
    plan = prepare_sign_data("text/plain", hexs(b"x"))
    recid, r, s = sign_hash(KEY, plan.hash)
    flipped = encode_signature(recid ^ 1, r, SECP256K1_N - s, 27)
    assert ec_recover(b"x", flipped) == KEY_ADDRESS


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (b"\x01" * 64, "signature must be 65 bytes long"),
        (b"\x01" * 66, "signature must be 65 bytes long"),
        (b"\x01" * 64 + b"\x00", "invalid Ethereum signature (V is not 27 or 28)"),
        (b"\x01" * 64 + b"\x01", "invalid Ethereum signature (V is not 27 or 28)"),
        (bytes(64) + b"\x1b", "recovery failed"),
        (b"\xff" * 64 + b"\x1c", "recovery failed"),
    ],
)
def test_ec_recover_errors(sig: bytes, message: str) -> None:
    with pytest.raises(SignerError) as info:
        ec_recover(b"data", sig)
    assert info.value.message == message


# -- the UI request and the plan invariants ---------------------------------------------------


def test_sign_data_request_json() -> None:
    plan = prepare_sign_data("text/plain; charset=utf-8", hexs(b"hello world"))
    meta = dict(META)
    request = sign_data_request_json(plan, "0XDEADbEeF000000000000000000000000DeaDbeEf", meta)
    assert list(request) == [
        "content_type",
        "address",
        "raw_data",
        "messages",
        "call_info",
        "hash",
        "meta",
    ]
    assert request["content_type"] == "text/plain"
    assert request["address"] == "0xDEADbEeF000000000000000000000000DeaDbeEf"
    assert base64.b64decode(request["raw_data"], validate=True) == plan.raw_data
    assert request["call_info"] is None
    assert request["hash"] == hexs(plan.hash)
    assert request["meta"] == META and request["meta"] is not meta
    request["messages"][0]["value"] = "changed"
    assert plan.messages[0]["value"] != "changed"
    json.dumps(request)
    info = [{"type": "Info", "message": "m"}]
    assert sign_data_request_json(plan, "0x" + "00" * 20, META, info)["call_info"] == info
    with pytest.raises(InvalidParams):
        sign_data_request_json(plan, "0x1234", META)


def test_typed_request_rows_are_json() -> None:
    plan = prepare_sign_data("data/typed", hexs(MAIL_FILE.read_bytes()))
    request = sign_data_request_json(plan, "0x" + "00" * 20, META)
    assert json.loads(json.dumps(request))["messages"][1]["type"] == "primary type"
    assert base64.b64decode(request["raw_data"])[:2] == b"\x19\x01"


def test_plan_invariants() -> None:
    plan = prepare_sign_data("text/plain", "0x01")
    with pytest.raises(ValueError, match="hash"):
        SignDataPlan("text/plain", b"x", (), bytes(32), 27)
    with pytest.raises(ValueError, match="v_offset"):
        SignDataPlan("text/plain", plan.raw_data, plan.messages, plan.hash, 0)
    with pytest.raises(ValueError, match="unsupported"):
        SignDataPlan("data/plain", plan.raw_data, plan.messages, plan.hash, 27)
    with pytest.raises(ValueError, match="typed"):
        SignDataPlan("data/typed", plan.raw_data, plan.messages, plan.hash, 27)


def test_encode_signature() -> None:
    assert (
        encode_signature(1, 2, 3, 27) == (2).to_bytes(32, "big") + (3).to_bytes(32, "big") + b"\x1c"
    )
    assert encode_signature(0, 2, 3, 0)[64] == 0
    with pytest.raises(ValueError):
        encode_signature(2, 1, 1, 27)
