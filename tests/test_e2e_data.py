"""End-to-end tests of data signing (issue 4) through a running clef.

One clef per module (`clef --stdio-ui --http --ipcpath ...` with a known key imported into its
keystore) is driven as a user would: calls over HTTP and IPC, approvals through the scripted stdio
UI. Every signature is checked with independent code: eth-account (EIP-191, EIP-712) and eth-keys
(recovery from a hash), with hashes recomputed by eth-utils' keccak and pyrlp, not clef's code.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from conftest import CONFORMANCE, PASSWORD, Clef, ScriptedUI
from eth_account import Account
from eth_account.messages import encode_defunct, encode_intended_validator, encode_typed_data
from eth_keys.datatypes import Signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keyd.keystore import Keystore

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ACCOUNT = Account.from_key(KEY)
ADDRESS = ACCOUNT.address  # EIP-55
WRONG_PASSWORD = "not-the-right-password-42"
EXPECTED = json.loads((CONFORMANCE / "expected.json").read_text())
EIP712_DIR = CONFORMANCE / "eip712"
ACCEPTED = "text/plain, data/validator, text/validator, application/x-clique-header, data/typed"
IPC_META = {"remote": "NA", "local": "NA", "scheme": "ipc", "User-Agent": "", "Origin": ""}
REQUEST_KEYS = ["content_type", "address", "raw_data", "messages", "call_info", "hash", "meta"]
SIGNING_PROMPT = {"title": "Password for signing", "isPassword": True,
                  "prompt": f"Please enter password for signing data with account {ADDRESS}"}
Message = tuple[str, dict[str, Any]]


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_clef(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """One clef whose keystore holds KEY (encrypted with conftest.PASSWORD)."""
    tmp = tmp_path_factory.mktemp("e2e-data")
    (tmp / "keystore").mkdir()
    Keystore(tmp / "keystore", light=True).import_raw_key(KEY, PASSWORD)
    instance = Clef(tmp, ui=ScriptedUI())
    yield instance
    instance.close()


@pytest.fixture
def clef(module_clef: Clef) -> Clef:
    """The module's clef with the default (approving) UI answers restored."""
    module_clef.ui.answers = ScriptedUI().answers
    return module_clef


def pinned(source_test: str) -> dict[str, Any]:
    """The expected.json entry pinned by the named geth test."""
    entries: list[dict[str, Any]] = EXPECTED["eip712"]["pinned"]
    return next(e for e in entries if e["source_test"].endswith(" " + source_test))


def ok(response: dict[str, Any]) -> Any:
    """The result of a successful JSON-RPC response."""
    assert "result" in response, response
    return response["result"]


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(code, message) of an error response."""
    assert "error" in response, response
    return response["error"]["code"], response["error"]["message"]


def mark(clef: Clef) -> int:
    """A position in the UI message log."""
    return len(clef.client.log)


def ui_messages(clef: Clef, start: int) -> list[Message]:
    """The UI messages (requests and notifications) since `start`, complete up to now.

    A UI request and the call's response are ordered by the request/answer round trip, but a
    notification (ui_showError) may still be in the reader thread when the response arrives. An
    account_list call is used as a barrier: keyd writes everything of an earlier call to stdout
    before its ui_approveListing, so the log up to that listing is final.
    """
    barrier_start = mark(clef)
    assert ok(clef.rpc("account_list", via="ipc")) == [ADDRESS.lower()]
    log = list(clef.client.log)
    barrier = next(i for i in range(barrier_start, len(log)) if log[i][0] == "ui_approveListing")
    return log[start:barrier]


def names(messages: list[Message]) -> list[str]:
    """The method names of UI messages."""
    return [method for method, _ in messages]


def prompts(messages: list[Message]) -> list[Message]:
    """The UI requests (calls that need an answer) among messages."""
    return [(m, p) for m, p in messages if m in ("ui_approveSignData", "ui_onInputRequired",
                                                 "ui_approveTx", "ui_approveNewAccount")]


def sign_data(clef: Clef, content_type: str, data: Any, address: str = ADDRESS,
              via: str = "http") -> tuple[dict[str, Any], list[Message]]:
    """account_signData; returns the response and the UI messages of the call."""
    start = mark(clef)
    response = clef.rpc("account_signData", content_type, address, data, via=via)
    return response, ui_messages(clef, start)


def sign_typed(clef: Clef, typed: Any, address: str = ADDRESS,
               via: str = "http") -> tuple[dict[str, Any], list[Message]]:
    """account_signTypedData; returns the response and the UI messages of the call."""
    start = mark(clef)
    response = clef.rpc("account_signTypedData", address, typed, via=via)
    return response, ui_messages(clef, start)


def sig_bytes(result: str) -> bytes:
    """A 0x-hex signature as 65 bytes."""
    assert re.fullmatch(r"0x[0-9a-f]{130}", result), result
    return bytes.fromhex(result[2:])


def recover_from_hash(digest: bytes, signature: bytes, v_offset: int = 27) -> str:
    """The EIP-55 address that made signature (r ‖ s ‖ v) over digest, by eth-keys."""
    assert signature[64] - v_offset in (0, 1), signature[64]
    vrs = signature[:64] + bytes([signature[64] - v_offset])
    recovered: str = Signature(vrs).recover_public_key_from_msg_hash(digest).to_checksum_address()
    return recovered


def oracle_sign_hash(digest: bytes) -> bytes:
    """eth-account's signature of digest with KEY (v 27/28); RFC 6979, so deterministic."""
    return bytes(Account.unsafe_sign_hash(digest, KEY).signature)


def hex_json(doc: Any) -> str:
    """The data/typed argument: 0x-hex of the JSON text."""
    return "0x" + json.dumps(doc).encode().hex()


def only_request(messages: list[Message], method: str = "ui_approveSignData") -> dict[str, Any]:
    """The single UI request named method among messages."""
    found = [p for m, p in messages if m == method]
    assert len(found) == 1, names(messages)
    return found[0]


MAIL = pinned("TestEncodeType")["typed_data"]
MAIL_DIGEST = bytes.fromhex(pinned("TestHashStruct")["derived_not_pinned_by_geth"]["digest"][2:])


# --- text/plain ---------------------------------------------------------------------------------


def test_text_plain_signature_and_approval_request(clef: Clef) -> None:
    case = EXPECTED["sign_data"]["text_plain_hash"]["cases"][0]
    message = case["message_utf8"].encode()
    response, messages = sign_data(clef, "text/plain", "0x" + message.hex(), via="ipc")
    signature = sig_bytes(ok(response))
    assert signature[64] in (27, 28)
    # Independent check: eth-account recovers the account and makes the identical signature.
    assert Account.recover_message(encode_defunct(message), signature=signature) == ADDRESS
    assert signature == bytes(ACCOUNT.sign_message(encode_defunct(message)).signature)

    assert names(messages) == ["ui_approveSignData", "ui_onInputRequired"]
    request = only_request(messages)
    assert list(request) == REQUEST_KEYS
    assert request == {
        "content_type": "text/plain",
        "address": ADDRESS,
        "raw_data": case["raw_data_base64"],
        "messages": [{"name": "message", "value": "\x19Ethereum Signed Message:\n11hello world",
                      "type": "text/plain"}],
        "call_info": None,
        "hash": case["hash"],
        "meta": IPC_META,
    }
    assert only_request(messages, "ui_onInputRequired") == SIGNING_PROMPT


def test_text_plain_request_keeps_the_address_as_sent_and_the_http_meta(clef: Clef) -> None:
    case = EXPECTED["sign_data"]["text_plain_hash"]["cases"][1]  # 0x01020304
    lower = ADDRESS.lower()
    start = mark(clef)
    status, body = clef.http({"jsonrpc": "2.0", "id": 1, "method": "account_signData",
                              "params": ["text/plain", lower, case["message_hex"]]},
                             headers={"User-Agent": "dapp/1.0", "Origin": "https://dapp.example"})
    assert status == 200
    signature = sig_bytes(ok(json.loads(body)))
    assert recover_from_hash(bytes.fromhex(case["hash"][2:]), signature) == ADDRESS
    request = only_request(ui_messages(clef, start))
    assert request["address"] == lower  # the caller's spelling, not re-checksummed
    assert request["hash"] == case["hash"]
    assert base64.b64decode(request["raw_data"], validate=True) == \
        b"\x19Ethereum Signed Message:\n4\x01\x02\x03\x04"
    meta = request["meta"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", meta.pop("remote"))
    assert meta == {"local": f"127.0.0.1:{clef.port}", "scheme": "HTTP/1.1",
                    "User-Agent": "dapp/1.0", "Origin": "https://dapp.example"}


def test_text_plain_with_media_parameters_and_binary_message(clef: Clef) -> None:
    message = b"\xff\x00binary\xfe"
    response, messages = sign_data(clef, "Text/Plain; charset=utf-8", "0x" + message.hex())
    signature = sig_bytes(ok(response))
    assert Account.recover_message(encode_defunct(message), signature=signature) == ADDRESS
    request = only_request(messages)
    assert request["content_type"] == "text/plain"  # the parsed media type
    raw = b"\x19Ethereum Signed Message:\n9" + message
    assert base64.b64decode(request["raw_data"]) == raw
    assert request["hash"] == "0x" + keccak(raw).hex()
    # Undecodable bytes are also shown exactly, so two messages cannot look the same.
    assert request["messages"] == [
        {"name": "message", "value": raw.decode("utf-8", "replace"), "type": "text/plain"},
        {"name": "message (hex)", "value": "0x" + message.hex(), "type": "hexdata"},
    ]


@pytest.mark.parametrize(("data", "text"), [
    (5, "input for text/plain must be an hex-encoded string"),
    ({"message": "0x00"}, "input for text/plain must be an hex-encoded string"),
    ("hello", "hex string without 0x prefix"),
    ("0x123", "hex string of odd length"),
    ("0xzz", "invalid hex string"),
    ("", "empty hex string"),
])
def test_text_plain_bad_data_is_refused_before_the_ui(clef: Clef, data: Any, text: str) -> None:
    response, messages = sign_data(clef, "text/plain", data)
    assert error_of(response) == (-32000, text)
    assert messages == []


# --- data/validator, text/validator -------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["data/validator", "text/validator"])
def test_validator_signature_and_rows(clef: Clef, content_type: str) -> None:
    validator = "0x" + "ab" * 20
    payload = b"application specific \x00\x01"
    response, messages = sign_data(
        clef, content_type, {"address": validator, "message": "0x" + payload.hex()})
    signature = sig_bytes(ok(response))
    assert signature[64] in (27, 28)
    signable = encode_intended_validator(to_checksum_address(validator), payload)
    assert Account.recover_message(signable, signature=signature) == ADDRESS
    assert signature == bytes(ACCOUNT.sign_message(signable).signature)

    raw = b"\x19\x00" + bytes.fromhex("ab" * 20) + payload
    request = only_request(messages)
    assert request["content_type"] == content_type
    assert base64.b64decode(request["raw_data"]) == raw
    assert request["hash"] == "0x" + keccak(raw).hex()
    assert request["call_info"] is None
    assert request["messages"] == [
        {"name": "This is a request to sign data intended for a particular validator (see EIP 191 "
                 "version 0)", "value": "", "type": "description"},
        {"name": "Intended validator address", "value": to_checksum_address(validator),
         "type": "address"},
        {"name": "Application-specific data", "value": "0x" + payload.hex(), "type": "hexdata"},
        {"name": "Full message for signing", "value": "0x" + raw.hex(), "type": "hexdata"},
    ]


def test_validator_short_address_is_left_padded(clef: Clef) -> None:
    response, messages = sign_data(clef, "data/validator", {"address": "0x1234", "message": "0x01"})
    signature = sig_bytes(ok(response))
    raw = b"\x19\x00" + bytes(18) + b"\x12\x34" + b"\x01"
    assert recover_from_hash(keccak(raw), signature) == ADDRESS
    assert base64.b64decode(only_request(messages)["raw_data"]) == raw


@pytest.mark.parametrize(("data", "text"), [
    ("0x00", "validator input is not a map[string]interface{}"),
    ({"message": "0x01"}, "validator address error: wrong type <nil>"),
    ({"address": "0x", "message": "0x01"}, "validator address is undefined"),
    ({"address": "0x" + "11" * 20}, "message error: wrong type <nil>"),
    ({"address": "0x" + "11" * 20, "message": "0x"}, "message is undefined"),
    ({"address": "11" * 20, "message": "0x01"},
     "validator address error: hex string without 0x prefix"),
])
def test_validator_bad_input_is_refused_before_the_ui(clef: Clef, data: Any, text: str) -> None:
    response, messages = sign_data(clef, "data/validator", data)
    assert error_of(response) == (-32000, text)
    assert messages == []


# --- application/x-clique-header ----------------------------------------------------------------


def clique_items(number: int, base_fee: int | None = None) -> list[Any]:
    """An unsealed clique header's fields (pre-London, or London with baseFee)."""
    items: list[Any] = [b"\x01" * 32, b"\x1d" * 32, bytes(20), b"\x04" * 32, b"\x05" * 32,
                        b"\x06" * 32, bytes(256), 2, number, 8_000_000, 21_000, 1_600_000_000,
                        b"vanity".ljust(32, b"\x00"), bytes(32), bytes(8)]
    if base_fee is not None:
        items.append(base_fee)
    return items


@pytest.mark.parametrize("base_fee", [None, 7])
def test_clique_header_is_sealed_with_v_0_and_1(clef: Clef, base_fee: int | None) -> None:
    seen_v: set[int] = set()
    number = 0
    while seen_v != {0, 1}:
        number += 1
        assert number < 40, "never saw both recovery ids"
        items = clique_items(number, base_fee)
        encoded = rlp.encode(items)
        response, messages = sign_data(clef, "application/x-clique-header", "0x" + encoded.hex())
        signature = sig_bytes(ok(response))
        # Clique seals carry V as 0/1 and sign keccak(CliqueRLP) = keccak(the header as sent).
        assert signature[64] in (0, 1)
        seen_v.add(signature[64])
        seal_hash = keccak(encoded)
        assert recover_from_hash(seal_hash, signature, v_offset=0) == ADDRESS
        assert signature[:64] == oracle_sign_hash(seal_hash)[:64]

        request = only_request(messages)
        assert request["content_type"] == "application/x-clique-header"
        assert base64.b64decode(request["raw_data"]) == encoded
        assert request["hash"] == "0x" + seal_hash.hex()
        sealed = list(items)
        sealed[12] = items[12] + bytes(65)  # the block hash covers 65 zero bytes for the seal
        block_hash = keccak(rlp.encode(sealed))
        assert request["messages"] == [{"name": "Clique header", "type": "clique",
                                        "value": f"clique header {number} [0x{block_hash.hex()}]"}]


@pytest.mark.parametrize(("data", "text"), [
    ("0x" + rlp.encode([*clique_items(1, 7), b"\x11" * 32]).hex(),
     "invalid clique header: post-London fields (withdrawalsHash, blobGasUsed, excessBlobGas, "
     "parentBeaconRoot, ...) cannot be sealed by clique"),
    ("0x" + rlp.encode(clique_items(1)[:14]).hex(), "rlp: too few elements for types.Header"),
    ("0x" + rlp.encode(b"not a list").hex(), "rlp: expected input list for types.Header"),
    ("0x" + rlp.encode([*clique_items(1)[:2], bytes(19), *clique_items(1)[3:]]).hex(),
     "invalid clique header: miner must be 20 bytes, got 19"),
    ("0x", "invalid clique header: rlp: "),
    (12, "wrong type float64"),
])
def test_bad_clique_headers_are_refused_before_the_ui(clef: Clef, data: Any, text: str) -> None:
    response, messages = sign_data(clef, "application/x-clique-header", data)
    code, message = error_of(response)
    assert code == -32000
    assert message.startswith(text) if text.endswith(": ") else message == text
    assert messages == []


# --- unknown content types ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/clique", "data/plain", "garbage",
                                          "application/json", "TEXT/HTML; charset=utf-8",
                                          "text/plain2", "text/validator/x"])
def test_unknown_content_types_are_refused_without_a_prompt(clef: Clef, content_type: str) -> None:
    response, messages = sign_data(clef, content_type, "0x" + b"hello".hex())
    code, text = error_of(response)
    if content_type == "text/validator/x":  # not even a media type (Go mime's error)
        assert (code, text) == (-32000, "mime: unexpected content after media subtype")
    else:
        media = content_type.split(";")[0].lower()
        assert (code, text) == (-32602, f"unsupported content type '{media}'; accepted types: "
                                        f"{ACCEPTED}")
    # Never signed as a personal message (the reference's fall-through), never shown to the UI.
    assert messages == []


@pytest.mark.parametrize(("content_type", "text"), [
    ("", "mime: no media type"), (";x=y", "mime: no media type"),
    ("text/", "mime: expected token after slash"), ("text plain", "mime: expected slash after "
                                                                  "first token"),
])
def test_invalid_media_types(clef: Clef, content_type: str, text: str) -> None:
    response, messages = sign_data(clef, content_type, "0x00")
    assert error_of(response) == (-32000, text)
    assert messages == []


# --- data/typed and account_signTypedData -------------------------------------------------------


def mail_rows() -> list[dict[str, Any]]:
    """The UI rows of the Mail example (inventory §5.4)."""
    def person(name: str, wallet: str) -> list[dict[str, Any]]:
        return [{"name": "name", "value": name, "type": "string"},
                {"name": "wallet", "value": wallet, "type": "address"}]

    return [
        {"name": "EIP712Domain", "type": "domain", "value": [
            {"name": "name", "value": "Ether Mail", "type": "string"},
            {"name": "version", "value": "1", "type": "string"},
            {"name": "chainId", "value": "1 (0x1)", "type": "uint256"},
            {"name": "verifyingContract", "value": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
             "type": "address"}]},
        {"name": "Mail", "type": "primary type", "value": [
            {"name": "from", "type": "Person",
             "value": person("Cow", "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826")},
            {"name": "to", "type": "Person",
             "value": person("Bob", "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB")},
            {"name": "contents", "value": "Hello, Bob!", "type": "string"}]},
    ]


def test_typed_data_hex_object_and_sign_typed_data_agree(clef: Clef) -> None:
    hashes = pinned("TestHashStruct")
    raw = (b"\x19\x01" + bytes.fromhex(hashes["domainSeparator"][2:])
           + bytes.fromhex(hashes["hashStruct_Mail"][2:]))
    assert keccak(raw) == MAIL_DIGEST
    oracle = bytes(ACCOUNT.sign_message(encode_typed_data(full_message=MAIL)).signature)

    results = []
    for response, messages in (sign_data(clef, "data/typed", hex_json(MAIL)),
                               sign_data(clef, "data/typed", MAIL, via="ipc"),
                               sign_typed(clef, MAIL),
                               sign_typed(clef, MAIL, address=ADDRESS.lower(), via="ipc")):
        signature = sig_bytes(ok(response))
        results.append(signature)
        assert signature[64] in (27, 28)
        assert Account.recover_message(encode_typed_data(full_message=MAIL),
                                       signature=signature) == ADDRESS
        assert names(messages) == ["ui_approveSignData", "ui_onInputRequired"]
        request = only_request(messages)
        assert list(request) == REQUEST_KEYS
        assert request["content_type"] == "data/typed"
        assert base64.b64decode(request["raw_data"], validate=True) == raw
        assert request["hash"] == "0x" + MAIL_DIGEST.hex()
        assert request["messages"] == mail_rows()
        assert request["call_info"] is None
    assert results == [oracle] * 4


def test_arrays_of_primitives_sign(clef: Clef) -> None:
    """The reference's formatter refused arrays-1.json (inventory §5.4); here it signs."""
    path = EIP712_DIR / "arrays-1.json"
    digest = bytes.fromhex(
        EXPECTED["eip712"]["signer_core_testdata"]["derived_not_pinned_by_geth"]["arrays-1.json"]
        ["digest"][2:])
    response, messages = sign_typed(clef, json.loads(path.read_text()))
    signature = sig_bytes(ok(response))
    assert recover_from_hash(digest, signature) == ADDRESS
    assert signature == oracle_sign_hash(digest)
    assert ok(clef.rpc("account_signData", "data/typed", ADDRESS,
                       "0x" + path.read_bytes().hex())) == "0x" + signature.hex()
    request = only_request(messages)
    assert request["hash"] == "0x" + digest.hex()
    foo = request["messages"][1]
    assert foo["name"] == "Foo"
    by_name = {row["name"]: row for row in foo["value"]}
    # Every element is shown (the reference showed only the last element of struct arrays).
    assert by_name["addys"] == {"name": "addys", "type": "address[]", "value": [
        {"name": f"addys[{i}]", "type": "address", "value": "0x" + f"{i + 1:040x}"}
        for i in range(3)]}
    assert [r["value"] for r in by_name["stringies"]["value"]] == ["lorem", "ipsum", "dolores"]
    assert [r["value"] for r in by_name["inties"]["value"]] == ["1 (0x1)", "3 (0x3)", "4 (0x4)"]


ARRAYS_DOC: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
        "Item": [{"name": "flags", "type": "bool[]"}, {"name": "deltas", "type": "int8[]"}],
        "Batch": [{"name": "who", "type": "address[]"}, {"name": "notes", "type": "string[]"},
                  {"name": "amounts", "type": "int256[]"}, {"name": "items", "type": "Item[]"},
                  {"name": "blobs", "type": "bytes[]"}, {"name": "grid", "type": "uint16[2][]"}],
    },
    "primaryType": "Batch",
    "domain": {"name": "arrays", "chainId": 5},
    "message": {
        "who": ["0x" + "11" * 20, "0x" + "22" * 20],
        "notes": ["a", "", "\u00fcnicode \u2603"],
        "amounts": ["-1", "0x10", str(-(2**200)), 7],
        "items": [{"flags": [True, False, True], "deltas": [-128, 127, 0]},
                  {"flags": [], "deltas": ["-5"]}],
        "blobs": ["0x", "0xdeadbeef"],
        "grid": [[1, 2], [3, 65535]],
    },
}


def test_arrays_of_address_bool_string_int_and_structs_match_eth_account(clef: Clef) -> None:
    signable = encode_typed_data(full_message=ARRAYS_DOC)
    oracle = bytes(ACCOUNT.sign_message(signable).signature)
    response, messages = sign_typed(clef, ARRAYS_DOC)
    assert sig_bytes(ok(response)) == oracle
    request = only_request(messages)
    assert base64.b64decode(request["raw_data"]) == b"\x19" + signable.version \
        + signable.header + signable.body
    rows = {row["name"]: row for row in request["messages"][1]["value"]}
    assert [r["value"] for r in rows["items"]["value"][0]["value"][0]["value"]] == \
        ["true", "false", "true"]
    assert [r["value"] for r in rows["items"]["value"][0]["value"][1]["value"]] == \
        ["-128 (-0x80)", "127 (0x7f)", "0 (0x0)"]
    assert rows["who"]["value"][1]["value"] == to_checksum_address("0x" + "22" * 20)


def test_integer_ranges_are_exact(clef: Clef) -> None:
    """int8 is -128..127 (the reference accepted +-255: its bitlen check, inventory §5.2)."""
    doc = {"types": {"EIP712Domain": [{"name": "name", "type": "string"}],
                     "M": [{"name": "v", "type": "int8"}]},
           "primaryType": "M", "domain": {"name": "n"}, "message": {"v": -128}}
    response, _ = sign_typed(clef, doc)
    assert sig_bytes(ok(response)) == \
        bytes(ACCOUNT.sign_message(encode_typed_data(full_message=doc)).signature)
    for value in (128, 255, -129, "-255", "0x80"):
        response, messages = sign_typed(clef, {**doc, "message": {"v": value}})
        assert error_of(response) == (-32000, "integer larger than 'int8'"), value
        assert messages == []


@pytest.mark.parametrize("path", sorted(EIP712_DIR.glob("expfail_*.json")), ids=lambda p: p.name)
def test_expfail_fixtures_are_refused_before_any_prompt(clef: Clef, path: Path) -> None:
    expected = EXPECTED["eip712"]["signer_core_testdata"]["files"][path.name]
    assert expected["expect"] == "reject"
    doc = json.loads(path.read_text())
    first, messages = sign_typed(clef, doc)
    second, more = sign_data(clef, "data/typed", "0x" + path.read_bytes().hex())
    assert error_of(first) == error_of(second)
    code, text = error_of(first)
    assert code in (-32000, -32602)
    if path.name != "expfail_arraytype_overload.json":
        # The reference's own error text (by code reading); the overload case is refused
        # earlier here, at the type name "Person[]".
        assert text == expected["geth_error_by_code_reading"]
    else:
        assert "Person[]" in text
    assert messages == [] and more == []


@pytest.mark.parametrize("path", sorted((EIP712_DIR / "fuzzing").iterdir()), ids=lambda p: p.name)
def test_fuzzing_corpus_neither_crashes_nor_hangs_clef(clef: Clef, path: Path) -> None:
    clef.ui.answers["ui_approveSignData"] = lambda p: {"approved": False}
    started = time.monotonic()
    response, messages = sign_data(clef, "data/typed", "0x" + path.read_bytes().hex())
    assert time.monotonic() - started < 10
    code, text = error_of(response)  # refused, or valid and then denied by the UI
    if text == "request denied":
        assert names(prompts(messages)) == ["ui_approveSignData"]
    else:
        assert code in (-32000, -32602) and text != "method handler crashed"
        assert prompts(messages) == []
    assert ok(clef.rpc("account_version")) == "6.1.0"


def _typed_body(address: str, typed_json: str) -> bytes:
    """A JSON-RPC account_signTypedData body around typed data given as JSON text."""
    return ('{"jsonrpc":"2.0","id":1,"method":"account_signTypedData","params":['
            + json.dumps(address) + "," + typed_json + "]}").encode()


def _doc_json(types: dict[str, Any], primary: str, message_json: str) -> str:
    """Typed data JSON text; the message is given as text, so it may nest beyond json.dumps."""
    all_types = {"EIP712Domain": [{"name": "name", "type": "string"}], **types}
    return ('{"types":' + json.dumps(all_types) + ',"primaryType":' + json.dumps(primary)
            + ',"domain":{"name":"x"},"message":' + message_json + "}")


def _field(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "type": kind}


def _hostile_cases() -> dict[str, tuple[str, str]]:
    deep = "[" * 200_000 + "]" * 200_000
    deeper = "[" * 1_000_000 + "]" * 1_000_000
    chain: dict[str, Any] = {f"T{i}": [_field("x", f"T{i + 1}")] for i in range(40)}
    chain["T40"] = [_field("v", "uint8")]
    many: dict[str, Any] = {f"S{i}": [_field(f"f{j}", "uint8") for j in range(10)]
                            for i in range(3000)}
    many["A"] = [_field("a", "uint8")]
    return {
        "deep JSON nesting (HTTP)": ("http", _doc_json({}, "A", '{"a":' + deep + "}")),
        "deep JSON nesting (IPC)": ("ipc", _doc_json({}, "A", '{"a":' + deep + "}")),
        "deep JSON nesting (data/typed hex)": ("hex", _doc_json({}, "A", '{"a":' + deeper + "}")),
        "deeply nested array type": ("http", _doc_json(
            {"A": [_field("a", "uint8" + "[]" * 2000)]}, "A", '{"a":' + "[" * 50 + "]" * 50 + "}")),
        "deep struct chain": ("http", _doc_json(chain, "T0", '{"x":' * 40 + '{"v":1}' + "}" * 40)),
        "too many values": ("http", _doc_json({"A": [_field("a", "bool[]")]}, "A",
                                              '{"a":[' + ",".join(["true"] * 300_000) + "]}")),
        "too many bytes": ("http", _doc_json({"A": [_field("a", "string")]}, "A",
                                             '{"a":"' + "x" * 4_900_000 + '"}')),
        "too many types": ("http", _doc_json(many, "A", '{"a":1}')),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_typed_data_is_refused_quickly(clef: Clef, case: str) -> None:
    via, doc_json = HOSTILE[case]
    start = mark(clef)
    started = time.monotonic()
    if via == "http":
        status, body = clef.http(None, raw=_typed_body(ADDRESS, doc_json))
        assert status == 200
        response = json.loads(body)
    elif via == "ipc":
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(clef.ipc))
            s.sendall(_typed_body(ADDRESS, doc_json) + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        response = json.loads(buf)
    else:
        response = clef.rpc("account_signData", "data/typed", ADDRESS,
                            "0x" + doc_json.encode().hex())
    elapsed = time.monotonic() - started
    assert "error" in response, str(response)[:300]
    assert response["error"]["code"] in (-32700, -32600, -32602, -32000), response["error"]
    assert len(response["error"]["message"]) < 1000
    assert elapsed < 5, f"{case} took {elapsed:.1f} s"
    assert prompts(ui_messages(clef, start)) == []
    # Still responsive, and still signing.
    assert ok(clef.rpc("account_version")) == "6.1.0"
    response, _ = sign_typed(clef, MAIL, via="ipc")
    assert recover_from_hash(MAIL_DIGEST, sig_bytes(ok(response))) == ADDRESS


def test_large_but_legitimate_typed_data_signs(clef: Clef) -> None:
    doc = {"types": {"EIP712Domain": [{"name": "name", "type": "string"}],
                     "A": [{"name": "a", "type": "uint256[]"}]},
           "primaryType": "A", "domain": {"name": "big"},
           "message": {"a": [str(i) for i in range(20_000)]}}
    started = time.monotonic()
    response, messages = sign_typed(clef, doc)
    assert time.monotonic() - started < 15
    digest = keccak(b"\x19\x01" + bytes(encode_typed_data(full_message=doc).header)
                    + bytes(encode_typed_data(full_message=doc).body))
    assert recover_from_hash(digest, sig_bytes(ok(response))) == ADDRESS
    assert len(only_request(messages)["messages"][1]["value"][0]["value"]) == 20_000


# --- account_signGnosisSafeTx -------------------------------------------------------------------


GNOSIS_RESPONSE_KEYS = ["signature", "contractTransactionHash", "sender", "safe", "to", "value",
                        "gasPrice", "data", "operation", "gasToken", "refundReceiver", "baseGas",
                        "safeTxGas", "nonce", "safeTxHash"]


def sign_gnosis(clef: Clef, safe_tx: dict[str, Any],
                via: str = "http") -> tuple[dict[str, Any], list[Message]]:
    """account_signGnosisSafeTx; returns the response and the UI messages of the call."""
    start = mark(clef)
    response = clef.rpc("account_signGnosisSafeTx", ADDRESS, safe_tx, via=via)
    return response, ui_messages(clef, start)


def test_gnosis_safe_tx_response(clef: Clef) -> None:
    case = pinned("TestGnosisCustomData")
    safe_tx = case["gnosis_safe_tx"]
    digest = bytes.fromhex(case["digest"][2:])
    response, messages = sign_gnosis(clef, safe_tx)
    result = ok(response)
    signature = sig_bytes(result["signature"])
    assert signature[64] in (27, 28)
    assert recover_from_hash(digest, signature) == ADDRESS
    assert signature == oracle_sign_hash(digest)
    # The typed form of the pinned Safe transaction, signed by eth-account, is the same.
    assert signature == bytes(ACCOUNT.sign_message(encode_typed_data(
        full_message=pinned("TestGnosisTypedData")["typed_data"])).signature)
    assert list(result) == GNOSIS_RESPONSE_KEYS  # the reference's field order; no chainId
    assert result == {
        "signature": "0x" + signature.hex(),
        "contractTransactionHash": case["digest"],
        "sender": ADDRESS,
        "safe": "0x25a6c4BBd32B2424A9c99aEB0584Ad12045382B3",
        "to": "0x9eE457023bB3De16D51A003a247BaEaD7fce313D",
        "value": "20000000000000000",
        "gasPrice": "0",
        "data": None,
        "operation": 0,
        "gasToken": "0x" + "00" * 20,
        "refundReceiver": "0x" + "00" * 20,
        "baseGas": 0,
        "safeTxGas": 27845,
        "nonce": 3,
        "safeTxHash": case["digest"],
    }
    request = only_request(messages)
    assert request["content_type"] == "data/typed"
    assert request["hash"] == case["digest"]
    assert request["address"] == ADDRESS
    assert request["messages"][1]["name"] == "SafeTx"


def test_gnosis_safe_tx_with_chain_id_and_the_chain_id_retry(clef: Clef) -> None:
    with_chain = pinned("TestGnosisCustomDataWithChainId")
    response, messages = sign_gnosis(clef, with_chain["gnosis_safe_tx"], via="ipc")
    result = ok(response)
    assert result["contractTransactionHash"] == with_chain["digest"]
    assert result["chainId"] == "0x4"
    assert recover_from_hash(bytes.fromhex(with_chain["digest"][2:]),
                             sig_bytes(result["signature"])) == ADDRESS
    # The calldata (transfer) was decoded by the validator and shown to the user.
    request = only_request(messages)
    assert request["call_info"] == [{"type": "Info", "message": (
        'Transaction invokes the following method: "transfer(address: '
        '0x99D580d3a7FE7BD183b2464517B2cD7ce5A8F15A,uint256: 1000000000000000000)"')}]

    retry = pinned("TestGnosisSafe")  # no chainId: matches only with the signer's chain id 1
    result = ok(sign_gnosis(clef, retry["gnosis_safe_tx"])[0])
    assert result["contractTransactionHash"] == retry["digest_with_chainId_1"]
    assert result["chainId"] == "0x1"
    assert recover_from_hash(bytes.fromhex(retry["digest_with_chainId_1"][2:]),
                             sig_bytes(result["signature"])) == ADDRESS


def test_gnosis_mismatched_safe_tx_hash_is_refused(clef: Clef) -> None:
    plain = dict(pinned("TestGnosisCustomData")["gnosis_safe_tx"], nonce=4)
    response, messages = sign_gnosis(clef, plain)
    code, text = error_of(response)
    assert code == -32000
    match = re.fullmatch(r"mismatched safeTxHash; have 0x([0-9a-f]{64}) want 0x([0-9a-f]{64})",
                         text)
    assert match is not None, text
    assert "0x" + match.group(2) == plain["safeTxHash"]
    assert prompts(messages) == []

    # With chainId the reference signed its own hash silently; here it is refused too.
    chained = dict(pinned("TestGnosisCustomDataWithChainId")["gnosis_safe_tx"], nonce=16)
    response, messages = sign_gnosis(clef, chained)
    code, text = error_of(response)
    assert code == -32000 and text.startswith("mismatched safeTxHash; have 0x")
    assert text.endswith("want " + chained["safeTxHash"])
    assert prompts(messages) == []


# --- account_ecRecover --------------------------------------------------------------------------


def test_ec_recover_round_trip(clef: Clef) -> None:
    message = b"round trip \x00\xff"
    signature = ok(sign_data(clef, "text/plain", "0x" + message.hex())[0])
    start = mark(clef)
    for via in ("http", "ipc"):
        assert ok(clef.rpc("account_ecRecover", "0x" + message.hex(), signature, via=via)) == \
            ADDRESS.lower()
    # A signature made elsewhere (eth-account, another key) recovers to that key's address.
    other = Account.from_key(b"\x42" * 32)
    foreign = other.sign_message(encode_defunct(b"x")).signature
    assert ok(clef.rpc("account_ecRecover", "0x78", "0x" + bytes(foreign).hex())) == \
        other.address.lower()
    # A different message recovers some other address, never the signer's.
    assert ok(clef.rpc("account_ecRecover", "0x00", signature)) != ADDRESS.lower()
    assert ui_messages(clef, start) == []  # no UI involved


@pytest.mark.parametrize(("data", "sig", "code", "text"), [
    ("0x00", "0x00", -32000, "signature must be 65 bytes long"),
    ("0x00", "0x" + "11" * 66, -32000, "signature must be 65 bytes long"),
    ("0x00", "0x", -32000, "signature must be 65 bytes long"),
    ("0x00", "0x" + "11" * 64 + "00", -32000, "invalid Ethereum signature (V is not 27 or 28)"),
    ("0x00", "0x" + "11" * 64 + "01", -32000, "invalid Ethereum signature (V is not 27 or 28)"),
    ("0x00", "0x" + "11" * 64 + "1d", -32000, "invalid Ethereum signature (V is not 27 or 28)"),
    ("0x00", "0x" + "00" * 64 + "1b", -32000, "recovery failed"),
    ("00", "0x" + "00" * 65, -32602, "invalid argument 0: hex string without 0x prefix"),
    ("0x0", "0x" + "00" * 65, -32602, "invalid argument 0: hex string of odd length"),
    ("0x00", 27, -32602, "invalid argument 1: "),
    (None, "0x" + "00" * 65, -32602, "argument 0"),
])
def test_ec_recover_errors(clef: Clef, data: Any, sig: Any, code: int, text: str) -> None:
    start = mark(clef)
    got_code, got_text = error_of(clef.rpc("account_ecRecover", data, sig))
    assert got_code == code
    if text.endswith(": "):
        assert got_text.startswith(text)
    elif text == "argument 0":  # null: the reference's Go decoder text is not specified
        assert "argument 0" in got_text
    else:
        assert got_text == text
    assert ui_messages(clef, start) == []


# --- denial, unknown account, wrong password ----------------------------------------------------


def show_errors(messages: list[Message]) -> list[str]:
    """The texts of ui_showError notifications."""
    return [p["text"] for m, p in messages if m == "ui_showError"]


@pytest.mark.parametrize("method", ["account_signData", "account_signTypedData"])
def test_ui_denial_is_request_denied_and_shown(clef: Clef, method: str) -> None:
    clef.ui.answers["ui_approveSignData"] = lambda p: {"approved": False}
    start = mark(clef)
    params = ["text/plain", ADDRESS, "0x01"] if method == "account_signData" else [ADDRESS, MAIL]
    assert error_of(clef.rpc(method, *params)) == (-32000, "request denied")
    messages = ui_messages(clef, start)
    assert names(messages) == ["ui_approveSignData", "ui_showError"]  # no password asked
    assert show_errors(messages) == ["request denied"]


def test_malformed_approvals_are_denials(clef: Clef) -> None:
    for answer in ({"approved": "true"}, {"approved": 1}, {"Approved": True}, {}, True, None):
        clef.ui.answers["ui_approveSignData"] = lambda p, a=answer: a  # type: ignore[misc]
        response, messages = sign_data(clef, "text/plain", "0x01")
        assert error_of(response) == (-32000, "request denied"), answer
        assert "ui_onInputRequired" not in names(messages)


def test_unknown_account_is_prompted_then_refused(clef: Clef) -> None:
    """Approval comes before the account lookup, so callers cannot probe for accounts."""
    stranger = "0x" + "5a" * 20
    response, messages = sign_data(clef, "text/plain", "0x01", address=stranger)
    assert error_of(response) == (-32000, "unknown account")
    assert names(messages) == ["ui_approveSignData", "ui_showError"]
    assert only_request(messages)["address"] == stranger
    assert show_errors(messages) == ["unknown account"]
    # Denied: the same answer as for a known account, whether or not it exists.
    clef.ui.answers["ui_approveSignData"] = lambda p: {"approved": False}
    for address in (stranger, ADDRESS):
        assert error_of(sign_typed(clef, MAIL, address=address)[0]) == (-32000, "request denied")


def test_wrong_password_is_a_decrypt_error(clef: Clef) -> None:
    clef.ui.answers["ui_onInputRequired"] = lambda p: {"text": WRONG_PASSWORD}
    for response, messages in (sign_data(clef, "text/plain", "0x01"), sign_typed(clef, MAIL)):
        assert error_of(response) == (-32000, "could not decrypt key with given password")
        assert names(messages)[:2] == ["ui_approveSignData", "ui_onInputRequired"]
        assert only_request(messages, "ui_onInputRequired") == SIGNING_PROMPT
        # Shown to the user once, as the reference does (SignData reports the error once).
        assert show_errors(messages) == ["could not decrypt key with given password"]
    # A UI that fails to give a password at all is a denial.
    clef.ui.answers["ui_onInputRequired"] = lambda p: {"text": None}
    assert error_of(sign_data(clef, "text/plain", "0x01")[0]) == (-32000, "request denied")


# --- audit log ----------------------------------------------------------------------------------


AUDIT_LINE = re.compile(r"time=\S+ level=INFO msg=(\w+) api=signer type=(request|response) (.*)"
                        r" seq=\d+ prev=[0-9a-f]{64}")


def audit_lines(clef: Clef) -> list[str]:
    """The audit log's lines."""
    return (clef.tmp / "audit.log").read_text().splitlines()


def test_audit_log_has_a_request_and_a_response_line_per_call(clef: Clef) -> None:
    before = len(audit_lines(clef))
    sig_plain = ok(clef.rpc("account_signData", "text/plain", ADDRESS, "0x6869"))
    sig_typed = ok(clef.rpc("account_signTypedData", ADDRESS, MAIL, via="ipc"))
    recovered = ok(clef.rpc("account_ecRecover", "0x6869", sig_plain))
    gnosis = ok(clef.rpc("account_signGnosisSafeTx", ADDRESS,
                         pinned("TestGnosisCustomData")["gnosis_safe_tx"]))
    # Refusals are audited as well: before the UI (bad content type, invalid typed data, bad
    # signature) and after it (wrong password).
    refused = error_of(clef.rpc("account_signData", "data/plain", ADDRESS, "0x6869"))
    invalid = error_of(clef.rpc("account_signTypedData", ADDRESS, json.loads(
        (EIP712_DIR / "expfail_extradata.json").read_text())))
    bad_sig = error_of(clef.rpc("account_ecRecover", "0x6869", "0x00"))
    clef.ui.answers["ui_onInputRequired"] = lambda p: {"text": WRONG_PASSWORD}
    failed = error_of(clef.rpc("account_signData", "text/plain", ADDRESS, "0x6869"))
    assert failed == (-32000, "could not decrypt key with given password")

    parsed = []
    for line in audit_lines(clef)[before:]:
        match = AUDIT_LINE.fullmatch(line)
        assert match is not None, line
        parsed.append(match.groups())
    assert [(m, t) for m, t, _ in parsed] == [
        (method, kind)
        for method in ("SignData", "SignTypedData", "EcRecover", "SignGnosisSafeTx", "SignData",
                       "SignTypedData", "EcRecover", "SignData")
        for kind in ("request", "response")
    ]
    fields = [rest.replace('\\"', '"') for _, _, rest in parsed]
    assert f'addr="{ADDRESS} [chksum ok]"' in fields[0]
    assert 'data=""0x6869""' in fields[0] and fields[0].endswith("content-type=text/plain")
    assert fields[1] == f"data={sig_plain[2:]} error=<nil>"
    assert '"primaryType":"Mail"' in fields[2]
    assert fields[3] == f"data={sig_typed[2:]} error=<nil>"
    assert fields[4].endswith(f"data=6869 sig={sig_plain[2:]}")
    assert fields[5] == f"address={to_checksum_address(recovered)} error=<nil>"
    assert gnosis["signature"] in fields[7] and gnosis["contractTransactionHash"] in fields[7]
    assert fields[8].endswith("content-type=data/plain")
    assert fields[9] == f'data="" error="{refused[1]}"'
    assert fields[11] == f'data="" error="{invalid[1]}"'
    assert fields[13] == f'address=0x{"0" * 40} error="{bad_sig[1]}"'
    assert fields[15] == 'data="" error="could not decrypt key with given password"'
    # No password ever reaches the audit log (nor clef's stderr).
    text = (clef.tmp / "audit.log").read_text()
    for secret in (PASSWORD, WRONG_PASSWORD):
        assert secret not in text
        assert secret not in clef.stderr()
