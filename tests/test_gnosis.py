"""account_signGnosisSafeTx: pinned Safe digests, the safeTxHash check, the response JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams, SignerError
from clef.eth.eip712 import TypedData
from clef.eth.gnosis import GnosisSafeTx
from clef.eth.secp import address_of, sign_hash
from clef.eth.signdata import encode_signature, typed_data_plan

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXPECTED = json.loads((SHARED / "conformance" / "geth" / "expected.json").read_text())
PINNED = {item["source_test"].split()[-1]: item for item in EXPECTED["eip712"]["pinned"]}
CUSTOM = PINNED["TestGnosisCustomData"]
WITH_CHAIN = PINNED["TestGnosisCustomDataWithChainId"]
SAFE = PINNED["TestGnosisSafe"]
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def tx_json(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(item["gnosis_safe_tx"])
    doc.update(changes)
    return doc


def digest_hex(tx: GnosisSafeTx, default: int = 1) -> str:
    return "0x" + tx.to_typed_data(default).digest().hex()


def test_pinned_without_chain_id() -> None:
    tx = GnosisSafeTx.parse(tx_json(CUSTOM))
    assert tx.chain_id is None and tx.data is None
    assert digest_hex(tx) == CUSTOM["digest"]
    # It matched without chainId, so the signer's chain id is never added.
    assert "chainId" not in tx.to_typed_data(1).to_canonical_json()["domain"]


def test_pinned_with_chain_id() -> None:
    tx = GnosisSafeTx.parse(tx_json(WITH_CHAIN))
    assert tx.chain_id == 4
    assert digest_hex(tx, default=1) == WITH_CHAIN["digest"]


def test_gnosis_typed_data_equals_the_pinned_typed_form() -> None:
    tx = GnosisSafeTx.parse(tx_json(CUSTOM))
    assert tx.typed_data(None) == TypedData.parse(PINNED["TestGnosisTypedData"]["typed_data"])
    tx = GnosisSafeTx.parse(tx_json(WITH_CHAIN))
    pinned = TypedData.parse(PINNED["TestGnosisTypedDataWithChainId"]["typed_data"])
    assert tx.typed_data(4).digest() == pinned.digest()


def test_retry_with_the_signer_chain_id() -> None:
    tx = GnosisSafeTx.parse(tx_json(SAFE))
    assert (
        "0x" + tx.typed_data(None).digest().hex()
        == SAFE["derived_not_pinned_by_geth"]["digest_without_chainId"]
    )
    typed = tx.to_typed_data(1)
    assert "0x" + typed.digest().hex() == SAFE["digest_with_chainId_1"] == SAFE["input_safeTxHash"]
    with pytest.raises(SignerError) as info:
        tx.to_typed_data(5)
    assert info.value.message == (
        f"mismatched safeTxHash; have 0x{tx.typed_data(5).digest().hex()} "
        f"want {SAFE['input_safeTxHash']}"
    )


def test_mismatch_refused_even_with_chain_id() -> None:
    # The reference signed its own hash silently when chainId was present.
    wrong = "0x" + "12" * 32
    tx = GnosisSafeTx.parse(tx_json(WITH_CHAIN, safeTxHash=wrong))
    with pytest.raises(SignerError) as info:
        tx.to_typed_data(4)
    assert info.value.message == f"mismatched safeTxHash; have {WITH_CHAIN['digest']} want {wrong}"
    tx = GnosisSafeTx.parse(tx_json(WITH_CHAIN, nonce=16))
    with pytest.raises(SignerError, match="mismatched safeTxHash"):
        tx.to_typed_data(4)


def test_absent_safe_tx_hash() -> None:
    # With chainId the reference signed whatever it computed: nothing was supplied to compare.
    doc = tx_json(WITH_CHAIN)
    del doc["safeTxHash"]
    assert digest_hex(GnosisSafeTx.parse(doc)) == WITH_CHAIN["digest"]
    # Without chainId the reference compared with the zero hash and so always refused.
    doc = tx_json(CUSTOM)
    del doc["safeTxHash"]
    tx = GnosisSafeTx.parse(doc)
    with pytest.raises(SignerError) as info:
        tx.to_typed_data(1)
    assert info.value.message.endswith("want 0x" + "00" * 32)


def test_result_json() -> None:
    tx = GnosisSafeTx.parse(tx_json(SAFE))
    typed = tx.to_typed_data(1)
    plan = typed_data_plan(typed)
    recid, r, s = sign_hash(KEY, plan.hash)
    signature = encode_signature(recid, r, s, plan.v_offset)
    out = tx.result_json(typed, signature, address_of(KEY))
    assert list(out) == [
        "signature",
        "contractTransactionHash",
        "sender",
        "safe",
        "to",
        "value",
        "gasPrice",
        "data",
        "operation",
        "gasToken",
        "refundReceiver",
        "baseGas",
        "safeTxGas",
        "nonce",
        "safeTxHash",
        "chainId",
    ]
    assert out["signature"] == "0x" + signature.hex() and signature[64] in (27, 28)
    assert out["contractTransactionHash"] == SAFE["digest_with_chainId_1"]
    assert out["sender"] == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert out["safe"] == "0x899FcB1437DE65DC6315f5a69C017dd3F2837557"
    assert (out["value"], out["gasPrice"]) == ("0", "0")
    assert out["data"] == SAFE["gnosis_safe_tx"]["data"]
    assert (out["operation"], out["baseGas"], out["safeTxGas"], out["nonce"]) == (0, 0, 0, 0)
    assert out["gasToken"] == out["refundReceiver"] == "0x" + "00" * 20
    assert out["safeTxHash"] == SAFE["input_safeTxHash"]
    # The chain id that made the hash match is reported, as a hex quantity.
    assert out["chainId"] == "0x1"
    json.dumps(out)
    # Signature agrees with eth-account signing the same typed data.
    expected = Account.sign_typed_data(KEY, full_message=typed.to_canonical_json()).signature
    assert signature == bytes(expected)


def test_result_json_without_chain_id_and_checks() -> None:
    tx = GnosisSafeTx.parse(tx_json(CUSTOM))
    typed = tx.to_typed_data(1)
    out = tx.result_json(typed, bytes(65), bytes(20))
    assert "chainId" not in out and out["data"] is None
    assert out["value"] == "20000000000000000" and out["safeTxGas"] == 27845 and out["nonce"] == 3
    other = GnosisSafeTx.parse(tx_json(WITH_CHAIN)).to_typed_data(4)
    with pytest.raises(ValueError, match="not this Safe transaction"):
        tx.result_json(other, bytes(65), bytes(20))
    with pytest.raises(ValueError):
        tx.result_json(typed, bytes(64), bytes(20))


def test_number_forms() -> None:
    base = tx_json(WITH_CHAIN)
    for value in ("0x10", "16", 16):
        tx = GnosisSafeTx.parse({**base, "value": value, "gasPrice": value, "chainId": value})
        assert (tx.value, tx.gas_price, tx.chain_id) == (16, 16, 16)
    tx = GnosisSafeTx.parse({**base, "gasToken": None, "operation": None, "value": None})
    assert (tx.gas_token, tx.operation, tx.value) == (bytes(20), 0, 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nonce": "15"}, "invalid nonce: want a JSON integer"),
        ({"nonce": 1.5}, "invalid nonce: want a JSON integer"),
        ({"nonce": 1 << 64}, "invalid nonce: larger than 64 bits"),
        ({"baseGas": -1}, "invalid baseGas: negative"),
        ({"safeTxGas": True}, "invalid safeTxGas: want a JSON integer"),
        ({"operation": 256}, "invalid operation: larger than 8 bits"),
        ({"value": "abc"}, "invalid value: want a decimal or 0x-hex integer string"),
        ({"value": "-1"}, "invalid value: negative"),
        ({"value": 1.0}, "invalid value: want a decimal or 0x-hex integer string"),
        (
            {"gasPrice": "0x" + "1" * 65},
            "invalid gasPrice: want a decimal or 0x-hex integer string",
        ),
        ({"chainId": "x"}, "invalid chainId: want a decimal or 0x-hex integer string"),
        ({"safe": None}, "missing safe: required in a Safe transaction"),
        ({"to": "0x1234"}, "invalid to:"),
        ({"gasToken": "0x12"}, "invalid gasToken:"),
        ({"data": "0x1"}, "invalid data: hex string of odd length"),
        ({"data": 5}, "invalid data:"),
        ({"safeTxHash": "0x1234"}, "invalid safeTxHash"),
        ({"safeTxHash": "0x" + "00" * 33}, "invalid safeTxHash"),
    ],
)
def test_parse_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParams) as info:
        GnosisSafeTx.parse(tx_json(WITH_CHAIN, **changes))
    assert info.value.message.startswith(message)


def test_parse_requires_an_object() -> None:
    with pytest.raises(InvalidParams, match="not a JSON object"):
        GnosisSafeTx.parse([])


def test_validation_args() -> None:
    tx = GnosisSafeTx.parse(tx_json(WITH_CHAIN, safeTxGas=1 << 70))
    args = tx.validation_args()
    assert args.from_ == tx.safe and args.to == tx.to
    assert args.gas == (1 << 64) - 1
    assert (args.gas_price, args.value, args.nonce, args.chain_id) == (0, 0, 15, 4)
    assert args.data == tx.data and args.tx_type == 0


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, (1 << 256) - 1),
    st.integers(0, (1 << 64) - 1),
    st.binary(max_size=64),
    st.one_of(st.none(), st.integers(0, 1 << 40)),
)
def test_typed_form_matches_eth_account(
    value: int, nonce: int, data: bytes, chain: int | None
) -> None:
    doc = tx_json(CUSTOM, value=str(value), nonce=nonce, data="0x" + data.hex(), chainId=chain)
    tx = GnosisSafeTx.parse(doc)
    typed = tx.typed_data(chain)
    full = typed.to_canonical_json()
    full["domain"] = {k: int(v) if k == "chainId" else v for k, v in full["domain"].items()}
    expected = Account.sign_typed_data(KEY, full_message=full).signature
    recid, r, s = sign_hash(KEY, typed.digest())
    assert encode_signature(recid, r, s, 27) == bytes(expected)
