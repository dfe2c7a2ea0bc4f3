"""policy.validation: the reference's transaction checks, texts, levels and order, and ours.

Fixtures: rules-cases.json -> transaction_validation_cases (validation_test.go, empty 4byte DB)
and clef_request_fixtures (cmd/clef/testdata, with the shipped 4byte DB).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams, SignerError
from clef.eth.address import MixedcaseAddress, to_checksum
from clef.eth.hexutil import parse_bytes, parse_quantity
from policy.abi import encode_arguments, parse_signature
from policy.fourbyte import CustomDB, FourByteDB
from policy.validation import (
    UNVERIFIED_CALLER,
    UNVERIFIED_CUSTOM,
    AuthorizationView,
    ValidationMessage,
    ValidationResult,
    merge_data_input,
    validate_transaction,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance" / "geth"
RULES: dict[str, Any] = json.loads((CONFORMANCE / "rules-cases.json").read_text())
TX_CASES = RULES["transaction_validation_cases"]["cases"]
REQUEST_FIXTURES: dict[str, str] = RULES["clef_request_fixtures"][
    "derived_expectations_not_pinned_by_geth"
]

CHECKSUMMED = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
SAFESEND_DATA = bytes.fromhex("4401a6e4" + "00" * 31 + "12")
SAFESEND_INFO = (
    'Transaction invokes the following method: '
    '"safeSend(address: 0x0000000000000000000000000000000000000012)"'
)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FourByteDB]:
    with FourByteDB.open(tmp_path_factory.mktemp("cache") / "4byte.cache") as db:
        yield db


def _address(text: str | None) -> MixedcaseAddress | None:
    if text is None:
        return None
    raw = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    return MixedcaseAddress(raw, text)


def _hex(value: str | None) -> int | None:
    # validation_test.go feeds raw FromHex values (leading zeros allowed)
    return None if value is None else int(value, 16)


def _validate(**overrides: Any) -> ValidationResult:
    kwargs: dict[str, Any] = {
        "to": _address(CHECKSUMMED),
        "value": 0,
        "data": b"",
        "gas_price": 1,
        "max_fee_per_gas": None,
        "max_priority_fee_per_gas": None,
        "selector": None,
        "db": FourByteDB.empty(),
        "custom": CustomDB(),
        "authorizations": (),
        "signer_chain_id": 1,
    }
    kwargs.update(overrides)
    return validate_transaction(**kwargs)


def _pairs(result: ValidationResult) -> list[list[str]]:
    return [[m["type"], m["message"]] for m in result.messages]


# --- the reference's cases ----------------------------------------------------------------


@pytest.mark.parametrize("case", TX_CASES, ids=[str(i) for i in range(len(TX_CASES))])
def test_transaction_validation_cases(case: dict[str, Any]) -> None:
    tx = case["tx"]

    def run() -> ValidationResult:
        data = merge_data_input(
            bytes.fromhex(tx["data"][2:]) if "data" in tx else None,
            bytes.fromhex(tx["input"][2:]) if "input" in tx else None,
        )
        return _validate(
            to=_address(tx["to"]),
            value=_hex(tx.get("value")) or 0,
            data=data,
            gas_price=_hex(tx.get("gasPrice")),
            max_fee_per_gas=_hex(tx.get("maxFeePerGas")),
            max_priority_fee_per_gas=_hex(tx.get("maxPriorityFeePerGas")),
        )

    if "expected_error" in case:
        with pytest.raises(SignerError) as info:
            run()
        assert info.value.message == case["expected_error"]
        assert info.value.code == -32000
    else:
        assert _pairs(run()) == case["expected_messages"]


@pytest.mark.parametrize("name", sorted(REQUEST_FIXTURES))
def test_clef_request_fixtures(name: str, shipped: FourByteDB) -> None:
    request = json.loads((CONFORMANCE / "clef-requests" / name).read_text())
    args = request["params"][0]

    def quantity(key: str) -> int | None:
        return parse_quantity(args[key], key) if key in args else None

    result = _validate(
        to=MixedcaseAddress.parse(args["to"], "to"),
        value=quantity("value") or 0,
        data=parse_bytes(args["data"], "data"),
        gas_price=quantity("gasPrice"),
        max_fee_per_gas=quantity("maxFeePerGas"),
        max_priority_fee_per_gas=quantity("maxPriorityFeePerGas"),
        db=shipped,
    )
    info = [m["message"] for m in result.messages if m["type"] == "Info"]
    assert info == [SAFESEND_INFO]  # the shipped database knows 4401a6e4
    refusal = result.refusal_text()
    if name.endswith("_exp_fail.json"):
        assert refusal is not None
    else:
        assert refusal is None and result.warnings() == []
    expected = {
        "sign_bad_checksum_exp_fail.json":
            "validation failed: Invalid checksum on recipient address",
        "sign_1559_missing_field_exp_fail.json":
            "validation failed: Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified.",
        "sign_1559_missing_maxfeepergas_exp_fail.json":
            "validation failed: Neither 'gasPrice' nor 'maxFeePerGas' specified.",
    }
    assert refusal == expected.get(name)


def test_without_the_selector_in_the_database() -> None:
    # What sign_normal_exp_ok would give with a database lacking 4401a6e4.
    result = _validate(data=SAFESEND_DATA)
    assert result.refusal_text() == (
        "validation failed: Transaction contains data, but the ABI signature could not be "
        "found: signature 4401a6e4 not found"
    )


# --- order, levels and exact texts --------------------------------------------------------


def test_order_and_refusal_text() -> None:
    result = _validate(
        to=_address("0x8a8eafb1cf62bfbeb1741769dae1a9dd47996192"),
        gas_price=None,
        max_fee_per_gas=5,
        data=b"\x01\x02",
    )
    assert _pairs(result) == [
        ["WARNING", "Invalid checksum on recipient address"],
        ["CRITICAL", "Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified."],
        ["WARNING", "Transaction data is not valid ABI (missing the 4 byte call prefix)"],
    ]
    assert result.warnings() == [p[1] for p in _pairs(result)]
    assert result.refusal_text() == (
        "validation failed: Invalid checksum on recipient address,"
        "Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified.,"
        "Transaction data is not valid ABI (missing the 4 byte call prefix)"
    )


@pytest.mark.parametrize(
    ("fees", "message"),
    [
        ((None, None, None), "Neither 'gasPrice' nor 'maxFeePerGas' specified."),
        ((None, 1, None), "Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified."),
        ((None, None, 1), "Neither 'gasPrice' nor 'maxFeePerGas' specified."),
        ((1, 1, None), "Both 'gasPrice' and 'maxFeePerGas' specified."),
        ((1, 1, 1), "Both 'gasPrice' and 'maxFeePerGas' specified."),
        ((1, None, 1), "Both 'gasPrice' and 'maxPriorityFeePerGas' specified."),
        ((1, None, None), None),
        ((None, 1, 1), None),
    ],
)
def test_fee_checks_first_match_only(
    fees: tuple[int | None, int | None, int | None], message: str | None
) -> None:
    gas_price, max_fee, tip = fees
    result = _validate(gas_price=gas_price, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
    assert _pairs(result) == ([["CRITICAL", message]] if message else [])


def test_contract_creation_rules() -> None:
    assert _pairs(_validate(to=None, data=b"\x60" * 40)) == []
    assert _pairs(_validate(to=None, data=b"\x60" * 39, selector="f()")) == [
        ["WARNING", "Transaction will create a contract, but the payload is suspiciously "
                    "small (39 bytes)"],
        ["WARNING", "Transaction will create a contract, but method selector supplied, "
                    "indicating an intent to call a method"],
    ]
    # creations skip the fee and calldata checks entirely
    assert _pairs(_validate(to=None, data=b"\x60" * 50, gas_price=None)) == []


def test_length_warning_then_verification_warning(shipped: FourByteDB) -> None:
    result = _validate(data=SAFESEND_DATA + b"\x00", db=shipped)
    assert _pairs(result) == [
        ["WARNING", "Transaction data is not valid ABI (length should be a multiple of 32 "
                    "(was 33))"],
        ["WARNING", "Transaction contains data, but provided ABI signature could not be "
                    "verified: invalid call data; length should be a multiple of 32 bytes "
                    "(was 33)"],
    ]


def test_stuffed_data_from_the_database(shipped: FourByteDB) -> None:
    result = _validate(data=SAFESEND_DATA + b"\x00" * 32, db=shipped)
    (message,) = result.warnings()
    assert message.startswith(
        "Transaction contains data, but provided ABI signature could not be verified: "
        "WARNING: Supplied data is stuffed with extra data. \nWant "
    )
    assert message.endswith("\nfor method safeSend(address)")


# --- caller-supplied selectors and the custom database ------------------------------------


def test_caller_selector_unknown_is_unverified_and_learnt() -> None:
    custom = CustomDB()
    data = bytes.fromhex("a52c101e") + (18).to_bytes(32, "big")
    result = _validate(data=data, selector="send(uint256)", custom=custom)
    assert _pairs(result) == [[
        "Info", 'Transaction invokes the following method: "send(uint256: 18)"' + UNVERIFIED_CALLER
    ]]
    assert result.learned == (bytes.fromhex("a52c101e"), "send(uint256)")
    assert result.refusal_text() is None
    assert custom.learn(*result.learned)
    again = _validate(data=data, selector="send(uint256)", custom=custom)
    assert again.learned is None  # now known (custom), not learnt twice
    assert again.messages[0]["message"].endswith(UNVERIFIED_CALLER)
    from_custom = _validate(data=data, custom=custom)
    assert _pairs(from_custom) == [[
        "Info", 'Transaction invokes the following method: "send(uint256: 18)"' + UNVERIFIED_CUSTOM
    ]]


def test_caller_selector_matching_the_database_is_verified(shipped: FourByteDB) -> None:
    result = _validate(data=SAFESEND_DATA, selector="safeSend(address)", db=shipped)
    assert _pairs(result) == [["Info", SAFESEND_INFO]]
    assert result.learned is None


def test_caller_selector_colliding_with_the_database(shipped: FourByteDB) -> None:
    # a9059cbb is transfer(address,uint256) and also many_msg_babbage(bytes1): a caller can
    # pick the spam name; the reference would show it as the method invoked.
    sig = parse_signature("many_msg_babbage(bytes1)")
    assert sig.selector.hex() == "a9059cbb"
    data = sig.selector + encode_arguments(sig.inputs, [b"\x07"])
    result = _validate(data=data, selector=sig.canonical, db=shipped)
    ((level, message),) = _pairs(result)
    assert level == "Info"
    assert message == (
        'Transaction invokes the following method: "many_msg_babbage(bytes1: [7])" '
        "(selector name unverified: supplied by caller; the 4byte database names this "
        "selector transfer(address,uint256))"
    )
    assert result.learned is None


def test_caller_selector_mismatch() -> None:
    result = _validate(data=SAFESEND_DATA, selector="send(uint256)")
    assert _pairs(result) == [[
        "WARNING",
        "Transaction contains data, but provided ABI signature could not be matched: "
        "no method with id: 0x4401a6e4",
    ]]
    assert result.learned is None


def test_caller_selector_unparsable() -> None:
    result = _validate(data=SAFESEND_DATA, selector="safeSend(address")
    assert result.warnings() == [
        "Transaction contains data, but provided ABI signature could not be matched: "
        "failed to parse selector: failed to parse selector 'safeSend(address': "
        "expected ')', got ''"
    ]


def test_selector_ignored_without_data() -> None:
    assert _pairs(_validate(selector="send(uint256)")) == []


def test_custom_entry_that_does_not_verify() -> None:
    custom = CustomDB({"4401a6e4": "safeSend(uint8)"})  # hand-edited, wrong
    result = _validate(data=SAFESEND_DATA, custom=custom)
    assert result.warnings() == [
        "Transaction contains data, but provided ABI signature could not be verified: "
        "no method with id: 0x4401a6e4"
    ]


def test_decoded_strings_cannot_inject_control_characters() -> None:
    sig = parse_signature("note(string)")
    data = sig.selector + encode_arguments(sig.inputs, ["\x1b[2J\nApprove\u202e"])
    result = _validate(data=data, selector=sig.canonical)
    message = result.messages[0]["message"]
    assert "\x1b" not in message and "\n" not in message and "\u202e" not in message
    assert '"note(string: \\x1b[2J\\nApprove\\u202e)"' in message


# --- EIP-7702 authorizations --------------------------------------------------------------


DELEGATE = bytes.fromhex("63c0c19a282a1b52b07dd5a65b58948a07dae32b")
SIGNER = bytes.fromhex("d8da6bf26964af9d7eed9e03e53415d37aa96045")


def test_authorization_lines() -> None:
    auths = [
        AuthorizationView(1, DELEGATE, SIGNER),
        AuthorizationView(0, DELEGATE, SIGNER),
        AuthorizationView(5, b"\x00" * 20, None),
    ]
    result = _validate(authorizations=auths, signer_chain_id=1)
    d, s = to_checksum(DELEGATE), to_checksum(SIGNER)
    assert _pairs(result) == [
        ["Info", f"EIP-7702 authorization #0: delegates its signer's account to {d} "
                 f"(chain id 1, signer {s})"],
        ["Info", f"EIP-7702 authorization #1: delegates its signer's account to {d} "
                 f"(chain id 0, signer {s})"],
        ["WARNING", "EIP-7702 authorization #1 has chain id 0: it is valid on every chain"],
        ["Info", "EIP-7702 authorization #2: clears the delegation of its signer "
                 "(chain id 5, signer unrecoverable)"],
        ["WARNING", "EIP-7702 authorization #2 has an invalid signature: its signer cannot be "
                    "recovered, so the network will ignore it"],
        ["WARNING", "EIP-7702 authorization #2 is for chain 5, but this signer is configured "
                    "for chain 1"],
    ]


def test_authorizations_need_a_recipient() -> None:
    with pytest.raises(SignerError, match="recipient must be set"):
        _validate(to=None, data=b"\x60" * 50, authorizations=[AuthorizationView(1, DELEGATE, None)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chain_id": -1, "address": DELEGATE, "signer": None},
        {"chain_id": 1 << 256, "address": DELEGATE, "signer": None},
        {"chain_id": True, "address": DELEGATE, "signer": None},
        {"chain_id": 1, "address": DELEGATE[:19], "signer": None},
        {"chain_id": 1, "address": DELEGATE, "signer": b"\x01"},
        {"chain_id": 1, "address": "0x" + DELEGATE.hex(), "signer": None},
    ],
)
def test_authorization_view_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        AuthorizationView(**kwargs)


# --- the result types and hostile arguments -----------------------------------------------


def test_result_types() -> None:
    with pytest.raises(ValueError):
        ValidationMessage("ERROR", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ValidationResult(learned=(b"\x01", "f()"))
    empty = ValidationResult()
    assert empty.messages == [] and empty.warnings() == [] and empty.refusal_text() is None
    info_only = ValidationResult((ValidationMessage("Info", "hello"),))
    assert info_only.messages == [{"type": "Info", "message": "hello"}]
    assert info_only.refusal_text() is None


def test_merge_data_input() -> None:
    assert merge_data_input(None, None) == b""
    assert merge_data_input(b"\x01", None) == b"\x01"
    assert merge_data_input(None, b"\x02") == b"\x02"
    assert merge_data_input(b"\x02", b"\x02") == b"\x02"


@pytest.mark.parametrize(
    "override",
    [
        {"value": -1}, {"value": 1 << 256}, {"value": "1"}, {"data": "0x"},
        {"gas_price": -5}, {"max_fee_per_gas": 1.5}, {"selector": 5},
        {"to": "0x" + "00" * 20}, {"authorizations": None},
    ],
)
def test_wrong_argument_types_are_invalid_params(override: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        _validate(**override)


@given(
    data=st.binary(max_size=300),
    selector=st.one_of(
        st.none(),
        st.text(max_size=60),
        st.sampled_from(["send(uint256)", "f(bytes,uint256[])", "g((bool,string)[])"]),
    ),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_calldata_and_selectors_never_crash(data: bytes, selector: str | None) -> None:
    result = _validate(data=data, selector=selector)
    for message in result.messages:
        assert message["type"] in ("WARNING", "CRITICAL", "Info")
        assert not any(ord(c) < 0x20 and c != "\n" for c in message["message"])
