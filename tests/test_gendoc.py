"""`clef gendoc`: complete, in sync with docs/ui-protocol.md, and correct against other code.

The signing examples are checked with eth-account (an independent implementation); the UI
messages are compared with what a running clef actually sends.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CLEF, REPO, Clef
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_keys.datatypes import Signature
from eth_utils.crypto import keccak

from clef import gendoc
from clef.external_api import METHODS

DOC = REPO / "docs" / "ui-protocol.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    """The generated document (rendered once for the module)."""
    return gendoc.render()


def _flows() -> dict[str, list[gendoc.Flow]]:
    return gendoc._signing_flows()


def test_committed_doc_is_the_generated_one(rendered: str) -> None:
    assert DOC.read_text() == rendered, "docs/ui-protocol.md is stale: clef gendoc > it"


def test_render_is_deterministic(rendered: str) -> None:
    assert gendoc.render() == rendered


def test_clef_gendoc_prints_it(rendered: str) -> None:
    result = subprocess.run([CLEF, "gendoc"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == rendered


def test_every_external_method_has_request_and_response(rendered: str) -> None:
    documented = [m for m, _ in gendoc.EXTERNAL_METHODS]
    assert sorted(documented) == sorted(METHODS)
    for method in METHODS:
        section = _section(rendered, f"### `{method}`")
        assert "Request:" in section and "Response:" in section, method
        assert f'"method": "{method}"' in section


def test_every_ui_method_keyd_sends_is_documented(rendered: str) -> None:
    # Every ui_* name the stdio channel can send, read from its source.
    source = (REPO / "keyd" / "ui" / "stdio.py").read_text()
    sent = set(re.findall(r'"(ui_[A-Za-z]+)"', source))
    documented = {m for m, _ in gendoc.UI_METHODS}
    assert sent == documented
    ui_part = rendered.split("## UI API", 1)[1].split("## Internal API", 1)[0]
    for method in sent:
        section = _section(ui_part, f"### `{method}`")
        message = _json_blocks(section)[0]
        assert message["method"] == method
        assert ("id" in message) == (method not in ("ui_showInfo", "ui_showError",
                                                     "ui_onApprovedTx", "ui_onSignerStartup"))
        if "id" in message:
            reply = _json_blocks(section)[1]
            assert reply["id"] == message["id"] and "result" in reply


def test_every_json_block_parses(rendered: str) -> None:
    blocks = _json_blocks(rendered)
    assert len(blocks) > 50


def test_examples_hold_no_real_paths_or_time() -> None:
    text = DOC.read_text()
    assert "/tmp/" not in text and "/root" not in text and "/work/" not in text


# --- the signing examples, checked with eth-account ---------------------------------------------


def test_sign_data_example_recovers_to_the_signer() -> None:
    flow = _flows()["account_signData"][0]
    _, signer, message = flow.request["params"]
    recovered = Account.recover_message(encode_defunct(hexstr=message),
                                        signature=flow.response["result"])
    assert recovered == signer
    recovered_flow = _flows()["account_ecRecover"][0]
    assert recovered_flow.response["result"] == signer.lower()
    assert recovered_flow.request["params"] == [message, flow.response["result"]]


def test_sign_transaction_example_recovers_to_the_signer() -> None:
    flow = _flows()["account_signTransaction"][0]
    sender = flow.request["params"][0]["from"]
    result = flow.response["result"]
    assert Account.recover_transaction(result["raw"]) == sender
    approved = [m for d, m in flow.transcript if m.get("method") == "ui_onApprovedTx"]
    assert approved[0]["params"][0] == result


def test_typed_data_example_recovers_to_the_signer() -> None:
    flow = _flows()["account_signTypedData"][0]
    signer, typed = flow.request["params"]
    signable = encode_typed_data(full_message=typed)
    assert Account.recover_message(signable, signature=flow.response["result"]) == signer


def test_gnosis_example_signature_matches_its_hash() -> None:
    flow = _flows()["account_signGnosisSafeTx"][0]
    signer, safe_tx = flow.request["params"]
    result = flow.response["result"]
    assert result["contractTransactionHash"] == safe_tx["safeTxHash"]
    # The Safe's EIP-712 hash, computed independently (Safe >= 1.3 domain with chainId).
    fields = [("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"),
              ("safeTxGas", "uint256"), ("baseGas", "uint256"), ("gasPrice", "uint256"),
              ("gasToken", "address"), ("refundReceiver", "address"), ("nonce", "uint256")]
    typed = {
        "types": {"EIP712Domain": [{"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "SafeTx": [{"name": n, "type": t} for n, t in fields]},
        "primaryType": "SafeTx",
        "domain": {"chainId": int(safe_tx["chainId"], 16), "verifyingContract": safe_tx["safe"]},
        "message": {"to": safe_tx["to"], "value": int(safe_tx["value"]),
                    "data": safe_tx["data"] or "0x", "operation": safe_tx["operation"],
                    "safeTxGas": safe_tx["safeTxGas"], "baseGas": safe_tx["baseGas"],
                    "gasPrice": int(safe_tx["gasPrice"]), "gasToken": safe_tx["gasToken"],
                    "refundReceiver": safe_tx["refundReceiver"], "nonce": safe_tx["nonce"]},
    }
    signable = encode_typed_data(full_message=typed)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert "0x" + digest.hex() == safe_tx["safeTxHash"]
    assert result["sender"] == signer
    signature = bytes.fromhex(result["signature"][2:])
    assert signature[64] in (27, 28)
    public = Signature(signature[:64] + bytes([signature[64] - 27])) \
        .recover_public_key_from_msg_hash(bytes.fromhex(result["contractTransactionHash"][2:]))
    assert public.to_checksum_address() == signer


# --- the documented UI messages are what a running clef sends -----------------------------------


def test_documented_ui_messages_match_a_running_clef(rendered: str,
                                                     clef_factory: Callable[..., Clef]) -> None:
    clef = clef_factory()
    clef.rpc("account_new")
    clef.rpc("account_list")
    ui_part = rendered.split("## UI API", 1)[1]
    live = {m: p for m, p in clef.client.log}
    for method in ("ui_onSignerStartup", "ui_approveNewAccount", "ui_onInputRequired",
                   "ui_approveListing"):
        documented = _json_blocks(_section(ui_part, f"### `{method}`"))[0]["params"][0]
        assert _shape(documented) == _shape(live[method]), method


def _shape(value: Any) -> Any:
    """Keys and value types, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    level = heading.split(" ", 1)[0]
    rest = text[start + len(heading):]
    match = re.search(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)
    return rest[: match.start()] if match else rest


def _json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.DOTALL)]
