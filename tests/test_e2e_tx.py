"""End-to-end tests of account_signTransaction (issue 3) through a running clef.

Each module-scoped clef (`clef --stdio-ui --http --ipcpath ... --lightkdf`) has one known key in
its keystore; the tests act as its stdio UI and call it over HTTP and IPC, as a DApp and as
`geth --signer` would. Independent oracles: eth-account signs the same fields (its raw bytes must
be identical: both sides use RFC 6979) and recovers the sender; the expected tx JSON is rebuilt
from the raw bytes with `rlp` following geth's types.Transaction.MarshalJSON.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from conftest import CLEF, PASSWORD, SHARED, Clef, ScriptedUI, ipc_call
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.datatypes import Signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyd.keystore import Keystore

REQUESTS = SHARED / "conformance" / "geth" / "clef-requests"
RULES_CASES = json.loads((SHARED / "conformance" / "geth" / "rules-cases.json").read_text())
SHIPPED_4BYTE = SHARED / "data" / "4byte.json"

# eth-account's documentation key; its address is 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23.
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SENDER = Account.from_key(KEY).address
AUTH_KEY = b"\x11" * 32
AUTH_SIGNER = Account.from_key(AUTH_KEY).address
TO = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
DELEGATE = "0x63c0c19a282a1B52b07dD5a65b58948A07DAE32B"
STRANGER = "0x1234567890123456789012345678901234567890"  # not in any keystore
BLOB_HASH = "0x01" + "ab" * 31
SLOT = "0x" + "00" * 31 + "07"

# A selector the shipped database lacks (checked below), supplied by callers as a method signature.
PROBE_SIG = "e2eProbeOnlyForClefTests(uint256,address)"
PROBE_SELECTOR = keccak(text=PROBE_SIG)[:4].hex()
# A selector that only the custom database (pre-seeded before start) names.
CUSTOM_SIG = "e2eCustomOnlyForClefTests(uint256)"
CUSTOM_SELECTOR = keccak(text=CUSTOM_SIG)[:4].hex()

TRANSFER_DATA = "0xa9059cbb" + "00" * 12 + TO[2:].lower() + "00" * 31 + "05"
TRANSFER_INFO = ('Transaction invokes the following method: '
                 f'"transfer(address: {TO},uint256: 5)"')
SAFESEND_INFO = ('Transaction invokes the following method: '
                 '"safeSend(address: 0x0000000000000000000000000000000000000012)"')
DENIED = (-32000, "request denied")


# --- oracles ------------------------------------------------------------------------------------


def _int(item: bytes) -> int:
    return int.from_bytes(item, "big")


def _hex(item: bytes) -> str:
    return "0x" + item.hex()


def _access_list_json(items: list[Any]) -> list[dict[str, Any]]:
    return [{"address": _hex(a), "storageKeys": [_hex(k) for k in keys]} for a, keys in items]


def geth_tx_json(raw: bytes) -> dict[str, Any]:
    """The tx JSON geth's types.Transaction.MarshalJSON produces for raw (decoded with rlp)."""
    out: dict[str, Any] = {}
    if raw[0] >= 0xC0:
        nonce, gas_price, gas, to, value, data, v, r, s = rlp.decode(raw)
        out["type"] = "0x0"
        if _int(v) not in (27, 28):
            out["chainId"] = hex((_int(v) - 35) // 2)
        out.update(nonce=hex(_int(nonce)), to=_hex(to) if to else None, gas=hex(_int(gas)),
                   gasPrice=hex(_int(gas_price)), maxPriorityFeePerGas=None, maxFeePerGas=None,
                   value=hex(_int(value)), input=_hex(data), v=hex(_int(v)), r=hex(_int(r)),
                   s=hex(_int(s)), hash=_hex(keccak(raw)))
        return out
    tx_type, fields = raw[0], rlp.decode(raw[1:])
    out["type"] = hex(tx_type)
    out["chainId"] = hex(_int(fields[0]))
    out["nonce"] = hex(_int(fields[1]))
    if tx_type == 1:
        _, _, gas_price, gas, to, value, data, access_list, y_parity, r, s = fields
        out.update(to=_hex(to) if to else None, gas=hex(_int(gas)), gasPrice=hex(_int(gas_price)),
                   maxPriorityFeePerGas=None, maxFeePerGas=None)
        rest: dict[str, Any] = {}
    else:
        tip, max_fee, gas, to, value, data, access_list = fields[2:9]
        y_parity, r, s = fields[-3:]
        out.update(to=_hex(to) if to else None, gas=hex(_int(gas)), gasPrice=None,
                   maxPriorityFeePerGas=hex(_int(tip)), maxFeePerGas=hex(_int(max_fee)))
        rest = {}
        if tx_type == 3:
            out["maxFeePerBlobGas"] = hex(_int(fields[9]))
            rest["blobVersionedHashes"] = [_hex(h) for h in fields[10]]
        if tx_type == 4:
            rest["authorizationList"] = [
                {"chainId": hex(_int(c)), "address": _hex(a), "nonce": hex(_int(n)),
                 "yParity": hex(_int(y)), "r": hex(_int(ar)), "s": hex(_int(as_))}
                for c, a, n, y, ar, as_ in fields[9]]
    out.update(value=hex(_int(value)), input=_hex(data), accessList=_access_list_json(access_list))
    out.update(rest)
    out.update(v=hex(_int(y_parity)), r=hex(_int(r)), s=hex(_int(s)), yParity=hex(_int(y_parity)),
               hash=_hex(keccak(raw)))
    return out


def check_signed(result: dict[str, Any], oracle_tx: dict[str, Any], key: bytes = KEY) -> bytes:
    """{"raw","tx"}: raw byte-identical to eth-account's, recovers to the key, tx JSON as geth's."""
    assert set(result) == {"raw", "tx"}, result
    raw = bytes.fromhex(result["raw"].removeprefix("0x"))
    expected = Account.sign_transaction(oracle_tx, key)
    assert raw == bytes(expected.raw_transaction)
    assert Account.recover_transaction(raw) == Account.from_key(key).address
    tx_json = geth_tx_json(raw)
    assert result["tx"] == tx_json
    assert list(result["tx"]) == list(tx_json)  # geth's field order
    return raw


def sign_auth(chain_id: int, delegate: str, nonce: int) -> Any:
    """An EIP-7702 authorization signed by eth-account with AUTH_KEY."""
    return Account.sign_authorization({"chainId": chain_id, "address": delegate, "nonce": nonce},
                                      AUTH_KEY)


def auth_json(auth: Any) -> dict[str, str]:
    """The execution-API JSON of an eth-account authorization (address lowercase, as geth's)."""
    return {"chainId": hex(auth.chain_id), "address": _hex(bytes(auth.address)),
            "nonce": hex(auth.nonce), "yParity": hex(auth.y_parity), "r": hex(auth.r),
            "s": hex(auth.s)}


# --- clef instances -----------------------------------------------------------------------------


def start_clef(tmp: Path, extra: list[str] | None = None,
               custom: dict[str, str] | None = None) -> Clef:
    """A clef whose keystore holds KEY (password PASSWORD), optionally with a custom 4byte DB."""
    (tmp / "keystore").mkdir(exist_ok=True)
    Keystore(tmp / "keystore", light=True).import_raw_key(KEY, PASSWORD)
    if custom is not None:
        (tmp / "4byte-custom.json").write_text(json.dumps(custom))
    return Clef(tmp, extra)


@pytest.fixture(scope="module")
def clef_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """Default (reject) mode, chain id 1, custom 4byte DB naming CUSTOM_SELECTOR."""
    instance = start_clef(tmp_path_factory.mktemp("clef-default"),
                          custom={CUSTOM_SELECTOR: CUSTOM_SIG})
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def clef_advanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """--advanced: warnings go to the UI in call_info."""
    instance = start_clef(tmp_path_factory.mktemp("clef-advanced"), ["--advanced"])
    yield instance
    instance.close()


@pytest.fixture
def signer(clef_default: Clef) -> Clef:
    """The default-mode clef with the approve-everything UI restored."""
    clef_default.ui.answers = ScriptedUI().answers
    return clef_default


@pytest.fixture
def advanced(clef_advanced: Clef) -> Clef:
    """The --advanced clef with the approve-everything UI restored."""
    clef_advanced.ui.answers = ScriptedUI().answers
    return clef_advanced


def sign_tx(clef: Clef, tx: Any, *rest: Any, via: str = "http") -> dict[str, Any]:
    """account_signTransaction; the JSON-RPC response."""
    return clef.rpc("account_signTransaction", tx, *rest, via=via)


def result_of(response: dict[str, Any]) -> Any:
    """The result of a successful response."""
    assert "result" in response, response
    return response["result"]


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(code, message) of an error response."""
    assert "error" in response, response
    return response["error"]["code"], response["error"]["message"]


def since(clef: Clef, mark: int) -> list[tuple[str, dict[str, Any]]]:
    """UI messages (requests and notifications) received after mark, once everything clef wrote
    before this call has been read: an internal-API round trip is the barrier."""
    clef.client.call("clef_listAccounts")
    return [item for item in clef.client.log[mark:] if item[0] != "ui_approveListing"]


def methods(log: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The method names of a UI log."""
    return [name for name, _ in log]


def approvals(log: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The ui_approveTx requests of a UI log."""
    return [params for name, params in log if name == "ui_approveTx"]


def deny_with_capture(clef: Clef) -> list[dict[str, Any]]:
    """Make the UI deny every transaction; return the list the requests are collected into."""
    seen: list[dict[str, Any]] = []

    def deny(params: dict[str, Any]) -> Any:
        seen.append(params)
        return {"approved": False}

    clef.ui.answers["ui_approveTx"] = deny
    return seen


def request_json(name: str) -> dict[str, Any]:
    """A clef-requests fixture file."""
    data: dict[str, Any] = json.loads((REQUESTS / name).read_text())
    return data


# --- every transaction type over HTTP -----------------------------------------------------------

BASE_TX_FIELDS: dict[str, Any] = {
    "from": SENDER, "to": TO, "gas": "0x5208", "maxFeePerGas": "0x2",
    "maxPriorityFeePerGas": "0x1", "value": "0x10", "nonce": "0x7"}
ACCESS_LIST = [{"address": DELEGATE, "storageKeys": [SLOT]}]
ORACLE_ACCESS_LIST = [{"address": DELEGATE, "storageKeys": [SLOT]}]
CODE = "0x" + "60" * 64

TYPE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "legacy": (
        {"to": TO, "gas": "0x5208", "gasPrice": "0x4a817c800", "value": "0xde0b6b3a7640000",
         "nonce": "0x9"},
        {"to": TO, "gas": 21000, "gasPrice": 20_000_000_000, "value": 10**18, "nonce": 9,
         "data": b"", "chainId": 1},
    ),
    "legacy-creation": (
        {"gas": "0x100000", "gasPrice": "0x1", "nonce": "0x0", "data": CODE},
        {"gas": 0x100000, "gasPrice": 1, "value": 0, "nonce": 0, "data": bytes.fromhex(CODE[2:]),
         "chainId": 1},
    ),
    "eip2930": (
        {"to": TO, "gas": "0x7530", "gasPrice": "0x3b9aca00", "value": "0x0", "nonce": "0x1",
         "accessList": ACCESS_LIST, "chainId": "0x1", "input": TRANSFER_DATA},
        {"type": 1, "to": TO, "gas": 30000, "gasPrice": 10**9, "value": 0, "nonce": 1,
         "accessList": ORACLE_ACCESS_LIST, "chainId": 1, "data": bytes.fromhex(TRANSFER_DATA[2:])},
    ),
    "eip1559": (
        {"to": TO, "gas": "0x5208", "maxFeePerGas": "0x77359400",
         "maxPriorityFeePerGas": "0x3b9aca00", "value": "0x1", "nonce": "0x2",
         "data": TRANSFER_DATA},
        {"type": 2, "to": TO, "gas": 21000, "maxFeePerGas": 2 * 10**9,
         "maxPriorityFeePerGas": 10**9, "value": 1, "nonce": 2,
         "data": bytes.fromhex(TRANSFER_DATA[2:]), "chainId": 1, "accessList": []},
    ),
    "eip1559-creation-to-0x": (
        {"to": "0x", "gas": "0x100000", "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1",
         "nonce": "0x3", "data": CODE},
        {"type": 2, "gas": 0x100000, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "value": 0,
         "nonce": 3, "data": bytes.fromhex(CODE[2:]), "chainId": 1, "accessList": []},
    ),
    "eip4844": (
        {"to": TO, "gas": "0x5208", "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1",
         "maxFeePerBlobGas": "0x3", "blobVersionedHashes": [BLOB_HASH], "nonce": "0x4",
         "accessList": ACCESS_LIST},
        {"type": 3, "to": TO, "gas": 21000, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1,
         "maxFeePerBlobGas": 3, "blobVersionedHashes": [BLOB_HASH], "value": 0, "nonce": 4,
         "data": b"", "chainId": 1, "accessList": ORACLE_ACCESS_LIST},
    ),
}


UI_HEAD = ["from", "to", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value", "nonce"]


def ui_view(request: dict[str, Any]) -> dict[str, Any]:
    """The SendTxArgs JSON the UI must be shown for request (the reference's marshalling: the
    first eight keys always, null when absent; input shown as data; the rest when present)."""
    view: dict[str, Any] = {key: request.get(key) for key in UI_HEAD}
    view["to"] = None if request.get("to") in (None, "0x") else request["to"]
    view["value"] = request.get("value", "0x0")
    view["nonce"] = request.get("nonce", "0x0")
    view["gas"] = request.get("gas", "0x0")
    data = request.get("input", request.get("data"))
    if data not in (None, "0x"):
        view["data"] = data
    if "accessList" in request:
        view["accessList"] = [{**t, "address": t["address"].lower()} for t in request["accessList"]]
    for key in ("chainId", "maxFeePerBlobGas", "blobVersionedHashes", "authorizationList"):
        if key in request:
            view[key] = request[key]
    return view


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_every_type_signed_over_http(signer: Clef, case: str) -> None:
    request, oracle = TYPE_CASES[case]
    mark = len(signer.client.log)
    result = result_of(sign_tx(signer, {"from": SENDER, **request}))
    check_signed(result, oracle)
    log = since(signer, mark)
    assert methods(log) == ["ui_approveTx", "ui_onInputRequired", "ui_onApprovedTx"]
    # The UI is shown every field that is signed, in the reference's shape.
    assert set(log[0][1]) == {"transaction", "call_info", "meta"}
    assert log[0][1]["transaction"] == ui_view({"from": SENDER, **request})
    assert list(log[0][1]["transaction"])[:8] == UI_HEAD
    assert log[1][1] == {"title": "Account password", "isPassword": True,
                         "prompt": f"Please enter the password for account {SENDER}"}
    assert log[2][1] == result  # ui_onApprovedTx carries exactly {raw, tx}


def test_eip7702_authorization_list_preserved(signer: Clef) -> None:
    auths = [sign_auth(1, DELEGATE, 0), sign_auth(1, "0x" + "00" * 20, 5)]
    request = {"from": SENDER, "to": TO, "gas": "0x186a0", "maxFeePerGas": "0x2",
               "maxPriorityFeePerGas": "0x1", "nonce": "0x5",
               "authorizationList": [auth_json(a) for a in auths]}
    mark = len(signer.client.log)
    result = result_of(sign_tx(signer, request))
    raw = check_signed(result, {
        "type": 4, "to": TO, "gas": 100000, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1,
        "value": 0, "nonce": 5, "data": b"", "chainId": 1, "accessList": [],
        "authorizationList": auths})
    assert result["tx"]["type"] == "0x4"
    assert result["tx"]["authorizationList"] == request["authorizationList"]
    signed_auths = [[_int(c), a, _int(n), _int(y), _int(r), _int(s)]
                    for c, a, n, y, r, s in rlp.decode(raw[1:])[9]]
    assert signed_auths == [[a.chain_id, bytes(a.address), a.nonce, a.y_parity, a.r, a.s]
                            for a in auths]
    approval = approvals(since(signer, mark))[0]
    assert approval["transaction"] == ui_view(request)
    call_info = approval["call_info"]
    infos = [m["message"] for m in call_info if m["type"] == "Info"]
    assert len(infos) == 2 and not [m for m in call_info if m["type"] != "Info"]
    assert DELEGATE in infos[0] and "chain id 1" in infos[0] and AUTH_SIGNER in infos[0]
    assert "#1" in infos[1] and "chain id 1" in infos[1] and AUTH_SIGNER in infos[1]


def test_eip7702_chain_id_zero_authorization(signer: Clef, advanced: Clef) -> None:
    auths = [sign_auth(1, DELEGATE, 0), sign_auth(0, DELEGATE, 1)]
    request = {"from": SENDER, "to": TO, "gas": "0x186a0", "maxFeePerGas": "0x2",
               "maxPriorityFeePerGas": "0x1", "nonce": "0x6",
               "authorizationList": [auth_json(a) for a in auths]}
    # Default mode: the warning refuses the request before the UI sees it.
    mark = len(signer.client.log)
    code, message = error_of(sign_tx(signer, request))
    assert code == -32000 and message.startswith("validation failed: ")
    assert "#1" in message and "chain id 0" in message and "every chain" in message
    assert approvals(since(signer, mark)) == []
    # --advanced: the UI sees each authorization and the warning, and the list is signed as is.
    mark = len(advanced.client.log)
    result = result_of(sign_tx(advanced, request))
    check_signed(result, {
        "type": 4, "to": TO, "gas": 100000, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1,
        "value": 0, "nonce": 6, "data": b"", "chainId": 1, "accessList": [],
        "authorizationList": auths})
    assert result["tx"]["authorizationList"] == request["authorizationList"]
    call_info = approvals(since(advanced, mark))[0]["call_info"]
    assert [m["type"] for m in call_info] == ["Info", "Info", "WARNING"]
    assert DELEGATE in call_info[0]["message"] and AUTH_SIGNER in call_info[0]["message"]
    assert "chain id 0" in call_info[1]["message"] and AUTH_SIGNER in call_info[1]["message"]
    assert call_info[2]["message"] in message


def test_eip7702_other_chain_authorization_warns(advanced: Clef) -> None:
    auth = sign_auth(5, DELEGATE, 0)
    seen = deny_with_capture(advanced)
    request = {"from": SENDER, "to": TO, "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1",
               "authorizationList": [auth_json(auth)]}
    assert error_of(sign_tx(advanced, request)) == DENIED
    call_info = seen[0]["call_info"]
    assert [m["type"] for m in call_info] == ["Info", "WARNING"]
    assert AUTH_SIGNER in call_info[0]["message"] and "chain id 5" in call_info[0]["message"]
    assert "chain 5" in call_info[1]["message"] and "chain 1" in call_info[1]["message"]


# --- the clef-requests fixtures -----------------------------------------------------------------

FIXTURE_REFUSALS = {
    "sign_bad_checksum_exp_fail.json":
        "validation failed: Invalid checksum on recipient address",
    "sign_1559_missing_field_exp_fail.json":
        "validation failed: Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified.",
    "sign_1559_missing_maxfeepergas_exp_fail.json":
        "validation failed: Neither 'gasPrice' nor 'maxFeePerGas' specified.",
}


def test_fixture_list_is_complete() -> None:
    names = {p.name for p in REQUESTS.glob("*.json")}
    assert names == {*FIXTURE_REFUSALS, "sign_normal_exp_ok.json", "sign_1559_tx.json"}
    derived = RULES_CASES["clef_request_fixtures"]["derived_expectations_not_pinned_by_geth"]
    for name, expected in FIXTURE_REFUSALS.items():
        assert expected.removeprefix("validation failed: ") in derived[name]


def with_our_key(body: dict[str, Any]) -> dict[str, Any]:
    """The fixture with `from` replaced by SENDER in the fixture's own letter case.

    The fixtures' sender 0x8A8e... has no published key, so it cannot be put in a keystore."""
    tx = dict(body["params"][0])
    original = tx["from"]
    tx["from"] = SENDER.lower() if original == original.lower() else SENDER
    return {**body, "params": [tx, *body["params"][1:]]}


@pytest.mark.parametrize("name", sorted(FIXTURE_REFUSALS))
@pytest.mark.parametrize("via", ["http", "ipc"])
def test_exp_fail_fixtures_refused_in_default_mode(signer: Clef, name: str, via: str) -> None:
    mark = len(signer.client.log)
    for body in (request_json(name), with_our_key(request_json(name))):
        if via == "ipc":
            response = ipc_call(signer.ipc, body)
        else:
            status, data = signer.http(body)
            assert status == 200
            response = json.loads(data)
        assert response["id"] == 67
        assert error_of(response) == (-32000, FIXTURE_REFUSALS[name])
    assert since(signer, mark) == []  # the UI never saw them


def test_exp_ok_fixture_signed_with_safesend_info(signer: Clef) -> None:
    body = with_our_key(request_json("sign_normal_exp_ok.json"))
    mark = len(signer.client.log)
    status, data = signer.http(body)
    response = json.loads(data)
    assert status == 200 and response["id"] == 67
    data_bytes = bytes.fromhex(body["params"][0]["data"][2:])
    check_signed(result_of(response), {"to": TO, "gas": 0x333, "gasPrice": 0x123, "nonce": 0,
                                       "value": 0x10, "data": data_bytes, "chainId": 1})
    request = approvals(since(signer, mark))[0]
    assert request["call_info"] == [{"type": "Info", "message": SAFESEND_INFO}]
    assert request["transaction"]["to"] == TO and request["transaction"]["gasPrice"] == "0x123"


def test_1559_fixture_signed_with_the_configured_chain_id(signer: Clef) -> None:
    body = with_our_key(request_json("sign_1559_tx.json"))
    status, data = signer.http(body)
    assert status == 200
    result = result_of(json.loads(data))
    data_bytes = bytes.fromhex(body["params"][0]["data"][2:])
    check_signed(result, {"type": 2, "to": TO, "gas": 0x333, "maxFeePerGas": 0x123,
                          "maxPriorityFeePerGas": 0x123, "nonce": 0, "value": 0x10,
                          "data": data_bytes, "chainId": 1, "accessList": []})
    assert result["tx"]["chainId"] == "0x1"


@pytest.mark.parametrize("name", sorted(FIXTURE_REFUSALS))
def test_advanced_mode_shows_fixture_warnings_to_the_ui(advanced: Clef, name: str) -> None:
    seen = deny_with_capture(advanced)
    response = advanced.http(with_our_key(request_json(name)))[1]
    assert error_of(json.loads(response)) == DENIED
    assert len(seen) == 1
    warnings = [m["message"] for m in seen[0]["call_info"] if m["type"] in ("WARNING", "CRITICAL")]
    assert "validation failed: " + ",".join(warnings) == FIXTURE_REFUSALS[name]
    assert seen[0]["call_info"][-1] == {"type": "Info", "message": SAFESEND_INFO}


def test_advanced_mode_signs_after_approval_despite_warnings(advanced: Clef) -> None:
    body = with_our_key(request_json("sign_bad_checksum_exp_fail.json"))
    result = result_of(json.loads(advanced.http(body)[1]))
    data_bytes = bytes.fromhex(body["params"][0]["data"][2:])
    check_signed(result, {"to": TO, "gas": 0x333, "gasPrice": 0x123, "nonce": 0, "value": 0x10,
                          "data": data_bytes, "chainId": 1})


# --- the reference's validation cases -----------------------------------------------------------


def _canonical(value: str) -> str:
    return hex(int(value, 16))


def validation_request(case: dict[str, Any]) -> dict[str, Any]:
    """A validation_test.go case as a JSON-RPC client must send it (0x addresses, canonical
    quantities) from SENDER; `to` keeps its letter case."""
    tx: dict[str, Any] = {"from": SENDER}
    for key, value in case["tx"].items():
        if key == "from":
            continue
        if key == "to" and value is not None:
            tx["to"] = value if value.startswith("0x") else "0x" + value
        elif key in ("nonce", "gas", "gasPrice", "value"):
            tx[key] = _canonical(value)
        else:
            tx[key] = value
    return tx


VALIDATION_CASES = RULES_CASES["transaction_validation_cases"]["cases"]


@pytest.mark.parametrize("index", range(len(VALIDATION_CASES)))
def test_validation_cases_default_mode(signer: Clef, index: int) -> None:
    case = VALIDATION_CASES[index]
    seen = deny_with_capture(signer)
    response = sign_tx(signer, validation_request(case))
    if "expected_error" in case:
        assert error_of(response) == (-32000, case["expected_error"])
        assert seen == []
        return
    warnings = [m for level, m in case["expected_messages"] if level in ("WARNING", "CRITICAL")]
    if warnings:
        assert error_of(response) == (-32000, "validation failed: " + ",".join(warnings))
        assert seen == []
    else:
        assert error_of(response) == DENIED  # reached the UI, which denied
        assert seen[0]["call_info"] is None


@pytest.mark.parametrize("index", range(len(VALIDATION_CASES)))
def test_validation_cases_advanced_mode(advanced: Clef, index: int) -> None:
    case = VALIDATION_CASES[index]
    seen = deny_with_capture(advanced)
    response = sign_tx(advanced, validation_request(case))
    if "expected_error" in case:
        assert error_of(response) == (-32000, case["expected_error"])
        assert seen == []  # hard errors stay errors
        return
    assert error_of(response) == DENIED
    expected = [{"type": level, "message": m} for level, m in case["expected_messages"]]
    assert seen[0]["call_info"] == (expected or None)


@pytest.mark.parametrize(("tx", "message"), [
    ({"gas": "0x01", "gasPrice": "0x1"}, "gas"),
    ({"gasPrice": "0x1", "value": "0x" + "1" * 65}, "value"),
    ({"gasPrice": "0x1", "data": "0x123"}, "data"),
    ({"gasPrice": 5}, "gasPrice"),
    ({"gasPrice": "0x1", "to": "0x1234"}, "to"),
    ({"gasPrice": "0x1", "type": "0x2"}, "type"),
    ({"gasPrice": "0x1", "authorizationList": []}, "authorizationList"),
    ({"gasPrice": "0x1", "maxFeePerBlobGas": "0x1"}, "maxFeePerBlobGas"),
])
def test_malformed_requests_name_the_field(signer: Clef, tx: dict[str, Any], message: str) -> None:
    seen = deny_with_capture(signer)
    code, text = error_of(sign_tx(signer, {"from": SENDER, "to": TO, **tx}))
    assert code == -32602 and message in text, text
    assert seen == []


@pytest.mark.parametrize("tx", [[BASE_TX_FIELDS], "x", 5, True])
def test_transaction_that_is_not_an_object(signer: Clef, tx: Any) -> None:
    code, text = error_of(sign_tx(signer, tx))
    assert code == -32602 and text.startswith("invalid transaction: json: cannot unmarshal "), text


def test_method_selector_arity_and_type(signer: Clef) -> None:
    seen = deny_with_capture(signer)
    assert error_of(sign_tx(signer, BASE_TX_FIELDS, None)) == DENIED  # null = no selector
    assert error_of(sign_tx(signer, BASE_TX_FIELDS, None, None)) == (
        -32602, "too many arguments, want at most 2")
    assert error_of(signer.rpc("account_signTransaction")) == (
        -32602, "missing value for required argument 0")
    assert error_of(sign_tx(signer, BASE_TX_FIELDS, 5))[0] == -32602
    assert len(seen) == 1


def test_overlong_method_selector_is_named_as_too_long(signer: Clef) -> None:
    code, text = error_of(sign_tx(signer, {**BASE_TX_FIELDS, "data": TRANSFER_DATA}, "x" * 2000))
    assert (code, text) == (-32602, "invalid argument 1: method selector longer than 1024 characters")


# --- chain id, data/input -----------------------------------------------------------------------


@pytest.mark.parametrize("chain_id", [5, 0, 2**64 + 1])
@pytest.mark.parametrize("fees", [{"gasPrice": "0x1"}, {"gasPrice": "0x1", "accessList": []},
                                  {"maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1"}])
def test_chain_id_mismatch_refused_before_the_ui(signer: Clef, fees: dict[str, Any],
                                                 chain_id: int) -> None:
    seen = deny_with_capture(signer)
    response = sign_tx(signer, {"from": SENDER, "to": TO, "chainId": hex(chain_id), **fees})
    assert error_of(response) == (
        -32000, f"requested chainid {chain_id} does not match the configuration of the signer")
    assert seen == []


def test_matching_chain_id_is_accepted(signer: Clef) -> None:
    result = result_of(sign_tx(signer, {"from": SENDER, "to": TO, "gasPrice": "0x1",
                                        "chainId": "0x1"}))
    check_signed(result, {"to": TO, "gasPrice": 1, "gas": 0, "value": 0, "nonce": 0,
                          "data": b"", "chainId": 1})


def test_data_input_mismatch_is_ambiguous(signer: Clef) -> None:
    seen = deny_with_capture(signer)
    response = sign_tx(signer, {"from": SENDER, "to": TO, "gasPrice": "0x1",
                                "data": TRANSFER_DATA, "input": TRANSFER_DATA[:-2] + "06"})
    assert error_of(response) == (
        -32000, 'ambiguous request: both "data" and "input" are set and are not identical')
    assert seen == []


def test_identical_data_and_input_are_one_payload(signer: Clef) -> None:
    mark = len(signer.client.log)
    result = result_of(sign_tx(signer, {"from": SENDER, "to": TO, "gasPrice": "0x1",
                                        "data": TRANSFER_DATA, "input": TRANSFER_DATA}))
    check_signed(result, {"to": TO, "gasPrice": 1, "gas": 0, "value": 0, "nonce": 0,
                          "data": bytes.fromhex(TRANSFER_DATA[2:]), "chainId": 1})
    request = approvals(since(signer, mark))[0]
    assert request["transaction"]["data"] == TRANSFER_DATA and "input" not in request["transaction"]
    assert request["call_info"] == [{"type": "Info", "message": TRANSFER_INFO}]


# --- approval: denial, modification, passwords, unknown accounts --------------------------------


BASE_TX = BASE_TX_FIELDS


@pytest.mark.parametrize("answer", [{"approved": False}, {"approved": True},
                                    {"approved": True, "transaction": None},
                                    {"approved": False, "transaction": "<echo>"},
                                    {"approved": "true", "transaction": "<echo>"}])
def test_ui_denial_is_request_denied(signer: Clef, answer: dict[str, Any]) -> None:
    def decide(params: dict[str, Any]) -> Any:
        if answer.get("transaction") == "<echo>":
            return {**answer, "transaction": params["transaction"]}
        return answer

    signer.ui.answers["ui_approveTx"] = decide
    mark = len(signer.client.log)
    assert error_of(sign_tx(signer, BASE_TX)) == DENIED
    assert methods(since(signer, mark)) == ["ui_approveTx"]  # no password asked, nothing signed


def test_ui_modified_value_and_gas_are_signed(signer: Clef) -> None:
    def modify(params: dict[str, Any]) -> Any:
        return {"approved": True,
                "transaction": {**params["transaction"], "value": "0x5", "gas": "0x6000"}}

    signer.ui.answers["ui_approveTx"] = modify
    mark = len(signer.client.log)
    result = result_of(sign_tx(signer, BASE_TX))
    check_signed(result, {"type": 2, "to": TO, "gas": 0x6000, "maxFeePerGas": 2,
                          "maxPriorityFeePerGas": 1, "value": 5, "nonce": 7, "data": b"",
                          "chainId": 1, "accessList": []})
    assert (result["tx"]["value"], result["tx"]["gas"]) == ("0x5", "0x6000")
    log = since(signer, mark)
    assert methods(log) == ["ui_approveTx", "ui_onInputRequired", "ui_onApprovedTx"]
    assert log[0][1]["transaction"]["value"] == "0x10"  # the UI was shown the caller's tx
    assert log[2][1] == result


GARBAGE: list[Callable[[dict[str, Any]], Any]] = [
    lambda t: "garbage",
    lambda t: [t],
    lambda t: {},
    lambda t: {**t, "chainId": "0x5"},
    lambda t: {**t, "chainId": "0x0"},
    lambda t: {**t, "gas": "0x06000"},
    lambda t: {**t, "value": "-0x1"},
    lambda t: {**t, "value": "0x1" + "0" * 64},
    lambda t: {**t, "to": "0x1234"},
    lambda t: {**t, "from": "nope"},
    lambda t: {**t, "data": "0x1", "input": None},
    lambda t: {**t, "data": "0x01", "input": "0x02"},
    lambda t: {**t, "type": "0x0"},
    lambda t: {**t, "blobs": ["0x00"]},
]


@pytest.mark.parametrize("index", range(len(GARBAGE)))
def test_ui_returning_an_invalid_transaction_is_refused(signer: Clef, index: int) -> None:
    signer.ui.answers["ui_approveTx"] = lambda p: {"approved": True,
                                                   "transaction": GARBAGE[index](p["transaction"])}
    mark = len(signer.client.log)
    code, message = error_of(sign_tx(signer, BASE_TX))
    assert code == -32000 and message.startswith("request denied"), message
    log = since(signer, mark)
    assert "ui_onInputRequired" not in methods(log) and "ui_onApprovedTx" not in methods(log)


def test_ui_modified_transaction_is_validated_again(signer: Clef) -> None:
    signer.ui.answers["ui_approveTx"] = lambda p: {
        "approved": True, "transaction": {**p["transaction"], "to": None, "value": "0x1"}}
    mark = len(signer.client.log)
    assert error_of(sign_tx(signer, BASE_TX)) == (
        -32000, "transaction will create a contract with value but empty code")
    log = since(signer, mark)
    assert "ui_onInputRequired" not in methods(log) and "ui_onApprovedTx" not in methods(log)


def test_ui_adding_the_signers_own_chain_id_is_fine(signer: Clef) -> None:
    signer.ui.answers["ui_approveTx"] = lambda p: {
        "approved": True, "transaction": {**p["transaction"], "chainId": "0x1"}}
    result = result_of(sign_tx(signer, BASE_TX))
    assert result["tx"]["chainId"] == "0x1"


def test_wrong_password(signer: Clef) -> None:
    signer.ui.answers["ui_onInputRequired"] = lambda p: {"text": PASSWORD + "-wrong"}
    mark = len(signer.client.log)
    message = "could not decrypt key with given password"
    assert error_of(sign_tx(signer, BASE_TX)) == (-32000, message)
    log = since(signer, mark)
    assert methods(log) == ["ui_approveTx", "ui_onInputRequired", "ui_showError"]
    assert log[2][1] == {"text": message}


def test_unknown_from_is_approved_first_then_unknown_account(signer: Clef) -> None:
    mark = len(signer.client.log)
    assert error_of(sign_tx(signer, {**BASE_TX, "from": STRANGER})) == (-32000, "unknown account")
    log = since(signer, mark)
    assert methods(log)[0] == "ui_approveTx"  # the UI saw it: a denial looks the same
    assert log[0][1]["transaction"]["from"] == STRANGER
    assert "ui_onInputRequired" not in methods(log) and "ui_onApprovedTx" not in methods(log)
    # A denied request for an unknown account is indistinguishable from one for a known account.
    signer.ui.answers["ui_approveTx"] = lambda p: {"approved": False}
    assert sign_tx(signer, {**BASE_TX, "from": STRANGER})["error"] == \
        sign_tx(signer, BASE_TX)["error"]


def test_every_signature_asks_for_the_password_by_default(signer: Clef) -> None:
    mark = len(signer.client.log)
    for nonce in ("0x1", "0x2"):
        result_of(sign_tx(signer, {**BASE_TX, "nonce": nonce}))
    assert methods(since(signer, mark)).count("ui_onInputRequired") == 2


# --- 4byte decoding and caller-supplied selectors -----------------------------------------------


def custom_db(clef: Clef) -> dict[str, str]:
    """The --4bytedb-custom file of clef."""
    data: dict[str, str] = json.loads((clef.tmp / "4byte-custom.json").read_text())
    return data


def probe_data(number: int) -> str:
    """Calldata for PROBE_SIG(number, TO)."""
    return ("0x" + PROBE_SELECTOR + number.to_bytes(32, "big").hex() + "00" * 12
            + TO[2:].lower())


def test_probe_selectors_are_not_shipped() -> None:
    shipped = SHIPPED_4BYTE.read_bytes()
    for selector in (PROBE_SELECTOR, CUSTOM_SELECTOR):
        assert f'"{selector}"'.encode() not in shipped


def test_4byte_decoded_call_shows_info(signer: Clef) -> None:
    seen = deny_with_capture(signer)
    assert error_of(sign_tx(signer, {**BASE_TX, "data": TRANSFER_DATA})) == DENIED
    assert seen[0]["call_info"] == [{"type": "Info", "message": TRANSFER_INFO}]


def test_unknown_selector_is_refused_in_default_mode(signer: Clef) -> None:
    response = sign_tx(signer, {**BASE_TX, "data": probe_data(1)})
    assert error_of(response) == (
        -32000, "validation failed: Transaction contains data, but the ABI signature could not be "
                f"found: signature {PROBE_SELECTOR} not found")


def test_caller_selector_marked_unverified_and_learnt_only_after_signing(signer: Clef) -> None:
    info_prefix = ('Transaction invokes the following method: '
                   f'"{PROBE_SIG.split("(")[0]}(uint256: 7,address: {TO})"')
    tx = {**BASE_TX, "data": probe_data(7)}
    # Denied: shown as unverified, not recorded.
    seen = deny_with_capture(signer)
    assert error_of(sign_tx(signer, tx, PROBE_SIG)) == DENIED
    [info] = seen[0]["call_info"]
    assert info["type"] == "Info" and info["message"].startswith(info_prefix)
    assert "unverified" in info["message"][len(info_prefix):]
    assert PROBE_SELECTOR not in custom_db(signer)
    # Approved, but the password is wrong: nothing signed, nothing recorded.
    signer.ui.answers = ScriptedUI().answers
    signer.ui.answers["ui_onInputRequired"] = lambda p: {"text": "not-the-password"}
    assert error_of(sign_tx(signer, tx, PROBE_SIG))[1] == "could not decrypt key with given password"
    assert PROBE_SELECTOR not in custom_db(signer)
    # Signed: now recorded, next to the pre-seeded entry, in a 0600 file.
    signer.ui.answers = ScriptedUI().answers
    result = result_of(sign_tx(signer, tx, PROBE_SIG))
    check_signed(result, {"type": 2, "to": TO, "gas": 21000, "maxFeePerGas": 2,
                          "maxPriorityFeePerGas": 1, "value": 16, "nonce": 7,
                          "data": bytes.fromhex(probe_data(7)[2:]), "chainId": 1,
                          "accessList": []})
    assert custom_db(signer) == {CUSTOM_SELECTOR: CUSTOM_SIG, PROBE_SELECTOR: PROBE_SIG}
    assert (signer.tmp / "4byte-custom.json").stat().st_mode & 0o777 == 0o600


def test_learnt_selector_decodes_later_requests(signer: Clef) -> None:
    number = 11
    data = ("0x" + PROBE_SELECTOR + number.to_bytes(32, "big").hex() + "00" * 12
            + DELEGATE[2:].lower())
    result_of(sign_tx(signer, {**BASE_TX, "data": data}, PROBE_SIG))
    assert custom_db(signer).get(PROBE_SELECTOR) == PROBE_SIG
    seen = deny_with_capture(signer)
    assert error_of(sign_tx(signer, {**BASE_TX, "data": data})) == DENIED
    [info] = seen[0]["call_info"]
    prefix = ('Transaction invokes the following method: '
              f'"{PROBE_SIG.split("(")[0]}(uint256: 11,address: {DELEGATE})"')
    assert info["type"] == "Info" and info["message"].startswith(prefix)
    assert "unverified" in info["message"][len(prefix):]


def test_caller_selector_that_does_not_match_the_data_warns(signer: Clef) -> None:
    response = sign_tx(signer, {**BASE_TX, "data": TRANSFER_DATA}, PROBE_SIG)
    code, message = error_of(response)
    assert code == -32000 and message.startswith(
        "validation failed: Transaction contains data, but provided ABI signature could not be "
        "matched: ")


def test_caller_naming_a_shipped_selector_correctly_is_not_flagged(signer: Clef) -> None:
    seen = deny_with_capture(signer)
    before = custom_db(signer)
    assert error_of(sign_tx(signer, {**BASE_TX, "data": TRANSFER_DATA},
                            "transfer(address,uint256)")) == DENIED
    assert seen[0]["call_info"] == [{"type": "Info", "message": TRANSFER_INFO}]
    signer.ui.answers = ScriptedUI().answers
    result_of(sign_tx(signer, {**BASE_TX, "data": TRANSFER_DATA}, "transfer(address,uint256)"))
    assert custom_db(signer) == before  # already known: not recorded


def test_custom_db_name_is_marked_unverified(signer: Clef) -> None:
    seen = deny_with_capture(signer)
    data = "0x" + CUSTOM_SELECTOR + (9).to_bytes(32, "big").hex()
    assert error_of(sign_tx(signer, {**BASE_TX, "data": data})) == DENIED
    [info] = seen[0]["call_info"]
    prefix = ('Transaction invokes the following method: '
              f'"{CUSTOM_SIG.split("(")[0]}(uint256: 9)"')
    assert info["type"] == "Info" and info["message"].startswith(prefix)
    assert "unverified" in info["message"][len(prefix):]


# --- random transactions through the whole pipeline ---------------------------------------------

u64 = st.integers(0, 2**64 - 1)
u256 = st.integers(0, 2**256 - 1)


@st.composite
def random_tx(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request JSON, eth-account dict) for a random transaction of a random type."""
    tx_type = draw(st.sampled_from([0, 1, 2, 3, 4]))
    to = to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    fields: dict[str, Any] = {"nonce": draw(u64), "gas": draw(u64), "value": draw(u256),
                              "data": draw(st.binary(max_size=100))}
    req: dict[str, Any] = {"from": SENDER, "to": to, "nonce": hex(fields["nonce"]),
                           "gas": hex(fields["gas"]), "value": hex(fields["value"]),
                           "input": _hex(fields["data"])}
    oracle: dict[str, Any] = {"to": to, **fields, "chainId": 1}
    if tx_type:
        oracle["type"] = tx_type
        keys = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=2))
        access = [{"address": to, "storageKeys": [_hex(k) for k in keys]}] if draw(
            st.booleans()) else []
        req["accessList"] = access
        oracle["accessList"] = access
    if tx_type < 2:
        req["gasPrice"] = hex(oracle.setdefault("gasPrice", draw(u256)))
    else:
        req["maxFeePerGas"] = hex(oracle.setdefault("maxFeePerGas", draw(u256)))
        req["maxPriorityFeePerGas"] = hex(oracle.setdefault("maxPriorityFeePerGas", draw(u256)))
    if tx_type == 3:
        hashes = ["0x01" + h.hex() for h in draw(st.lists(st.binary(min_size=31, max_size=31),
                                                          min_size=1, max_size=3))]
        req["blobVersionedHashes"] = oracle["blobVersionedHashes"] = hashes
        req["maxFeePerBlobGas"] = hex(oracle.setdefault("maxFeePerBlobGas", draw(u256)))
    if tx_type == 4:
        auth = sign_auth(draw(st.sampled_from([1, 7])), to, draw(u64))
        req["authorizationList"] = [auth_json(auth)]
        oracle["authorizationList"] = [auth]
    if draw(st.booleans()):
        req["chainId"] = "0x1"
    return req, oracle


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_tx())
def test_random_transactions_match_eth_account(advanced: Clef,
                                               case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    request, oracle = case
    check_signed(result_of(sign_tx(advanced, request)), oracle)


# --- geth --signer over IPC (accounts/external/backend.go) --------------------------------------


def geth_args(tx_type: int, *, input_: str = "0x", nonce: int = 0) -> dict[str, Any]:
    """SendTxArgs as geth's ExternalSigner.SignTx marshals them for one tx type."""
    args: dict[str, Any] = {
        "from": SENDER, "to": TO, "gas": "0x5208", "gasPrice": None, "maxFeePerGas": None,
        "maxPriorityFeePerGas": None, "value": "0x2a", "nonce": hex(nonce), "input": input_,
    }
    if tx_type in (0, 1):
        args["gasPrice"] = "0x3b9aca00"
    else:
        args["maxFeePerGas"] = "0x77359400"
        args["maxPriorityFeePerGas"] = "0x3b9aca00"
    if tx_type != 0:
        args["accessList"] = [{"address": DELEGATE.lower(), "storageKeys": [SLOT]}]
    args["chainId"] = "0x1"
    return args


def test_geth_version_and_list_over_ipc(signer: Clef) -> None:
    assert result_of(signer.rpc("account_version", via="ipc")) == "6.1.0"
    assert result_of(signer.rpc("account_list", via="ipc")) == [SENDER.lower()]


@pytest.mark.parametrize("tx_type", [0, 1, 2])
def test_geth_sign_transaction_shapes_over_ipc(signer: Clef, tx_type: int) -> None:
    args = geth_args(tx_type, input_=TRANSFER_DATA, nonce=tx_type)
    mark = len(signer.client.log)
    response = ipc_call(signer.ipc, {"jsonrpc": "2.0", "id": 1, "method": "account_signTransaction",
                                     "params": [args]})
    oracle: dict[str, Any] = {"to": TO, "gas": 21000, "value": 42, "nonce": tx_type,
                              "data": bytes.fromhex(TRANSFER_DATA[2:]), "chainId": 1}
    if tx_type:
        oracle.update(type=tx_type, accessList=[{"address": DELEGATE, "storageKeys": [SLOT]}])
    if tx_type < 2:
        oracle["gasPrice"] = 10**9
    else:
        oracle.update(maxFeePerGas=2 * 10**9, maxPriorityFeePerGas=10**9)
    result = result_of(response)
    check_signed(result, oracle)
    assert result["tx"]["type"] == hex(tx_type)
    request = approvals(since(signer, mark))[0]
    assert request["meta"]["scheme"] == "ipc"
    assert request["transaction"]["data"] == TRANSFER_DATA  # input moved to data for the UI
    assert request["call_info"] == [{"type": "Info", "message": TRANSFER_INFO}]


def test_geth_blob_transaction_with_sidecar_is_refused_clearly(signer: Clef) -> None:
    args = geth_args(3)
    args["blobVersionedHashes"] = [BLOB_HASH]
    args["blobs"] = ["0x" + "00" * 131072]
    args["commitments"] = ["0x" + "c0" + "00" * 47]
    args["proofs"] = ["0x" + "c0" + "00" * 47]
    seen = deny_with_capture(signer)
    code, message = error_of(ipc_call(signer.ipc, {"jsonrpc": "2.0", "id": 1,
                                                   "method": "account_signTransaction",
                                                   "params": [args]}))
    assert code == -32602 and "blob sidecars are not supported" in message, message
    assert seen == []


def test_geth_sign_text_over_ipc(signer: Clef) -> None:
    text = b"geth SignText \xf0\x9f\x94\x91"
    mark = len(signer.client.log)
    response = ipc_call(signer.ipc, {"jsonrpc": "2.0", "id": 2, "method": "account_signData",
                                     "params": ["text/plain", SENDER, _hex(text)]})
    signature = bytes.fromhex(result_of(response)[2:])
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert Account.recover_message(encode_defunct(primitive=text), signature=signature) == SENDER
    expected = Account.sign_message(encode_defunct(primitive=text), KEY)
    assert signature == bytes(expected.signature)
    log = since(signer, mark)
    assert methods(log) == ["ui_approveSignData", "ui_onInputRequired"]
    assert log[0][1]["content_type"] == "text/plain" and log[0][1]["address"] == SENDER


def clique_header_rlp(number: int) -> bytes:
    """CliqueRLP of a pre-London header as geth's clique engine passes it to SignData."""
    items: list[Any] = [b"\x01" * 32, keccak(rlp.encode([])), b"\x00" * 20, b"\x02" * 32,
                        b"\x03" * 32, b"\x04" * 32, b"\x00" * 256, 2, number, 8_000_000, 0,
                        1_700_000_000, b"\x00" * 32, b"\x00" * 32, b"\x00" * 8]
    return bytes(rlp.encode(items))


def test_geth_sign_clique_header_over_ipc(signer: Clef) -> None:
    header = clique_header_rlp(1337)
    mark = len(signer.client.log)
    response = ipc_call(signer.ipc, {"jsonrpc": "2.0", "id": 3, "method": "account_signData",
                                     "params": ["application/x-clique-header", SENDER,
                                                _hex(header)]})
    signature = bytes.fromhex(result_of(response)[2:])
    assert len(signature) == 65 and signature[64] in (0, 1)
    recovered = Signature(signature).recover_public_key_from_msg_hash(keccak(header))
    assert recovered.to_checksum_address() == SENDER
    items = rlp.decode(header)
    items[12] = items[12] + b"\x00" * 65
    block_hash = _hex(keccak(rlp.encode(items)))
    request = next(p for name, p in since(signer, mark) if name == "ui_approveSignData")
    assert request["content_type"] == "application/x-clique-header"
    assert request["messages"] == [{"name": "Clique header", "type": "clique",
                                    "value": f"clique header 1337 [{block_hash}]"}]


# --- --unlock-ttl -------------------------------------------------------------------------------


def test_unlock_ttl_caches_the_key_until_idle(tmp_path: Path) -> None:
    clef = start_clef(tmp_path, ["--unlock-ttl", "2", "--chainid", "1337"])
    try:
        assert clef.info["unlock_ttl"] == "2"  # the user is told keys stay in memory
        def prompts() -> int:
            return methods(since(clef, 0)).count("ui_onInputRequired")

        tx = {"from": SENDER, "to": TO, "gas": "0x5208", "gasPrice": "0x1", "value": "0x1"}
        oracle = {"to": TO, "gas": 21000, "gasPrice": 1, "value": 1, "data": b"",
                  "chainId": 1337}
        # A wrong password caches nothing.
        clef.ui.answers["ui_onInputRequired"] = lambda p: {"text": "wrong-password-123"}
        assert error_of(sign_tx(clef, tx))[1] == "could not decrypt key with given password"
        clef.ui.answers = ScriptedUI().answers
        result = result_of(sign_tx(clef, {**tx, "nonce": "0x1"}))
        check_signed(result, {**oracle, "nonce": 1})
        assert int(result["tx"]["v"], 16) in (35 + 2 * 1337, 36 + 2 * 1337)
        assert prompts() == 2
        # Used again within the TTL of its last use, several times past the TTL of the first.
        for nonce in (2, 3, 4):
            time.sleep(0.8)
            check_signed(result_of(sign_tx(clef, {**tx, "nonce": hex(nonce)})),
                         {**oracle, "nonce": nonce})
        signature = result_of(clef.rpc("account_signData", "text/plain", SENDER, "0x6869"))
        assert Account.recover_message(encode_defunct(b"hi"), signature=signature) == SENDER
        assert prompts() == 2
        # Idle for longer than the TTL: the password is asked for again.
        time.sleep(2.6)
        check_signed(result_of(sign_tx(clef, {**tx, "nonce": "0x5"})), {**oracle, "nonce": 5})
        assert prompts() == 3
    finally:
        clef.close()


def test_startup_info_without_key_cache_is_the_reference_payload(signer: Clef) -> None:
    assert sorted(signer.info) == ["extapi_http", "extapi_ipc", "extapi_version", "intapi_version"]


def test_unlock_ttl_in_help() -> None:
    out = subprocess.run([CLEF, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert "--unlock-ttl" in out.stdout + out.stderr
