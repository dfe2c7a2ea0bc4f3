"""`clef gendoc`: every JSON-RPC message format, with examples produced by the code itself.

The account and UI examples are not written by hand: render() runs the real request path in one
process — the net worker's JSON-RPC front (clef.net.rpc), keyd's external API (keyd.api), the
approval gate and the stdio UI channel (keyd.ui.stdio) — against a scripted UI and a fixed
in-memory keystore, and prints what crossed each boundary. The signing examples are assembled
from the pure encoders keyd signs with (clef.eth.*) until keyd's signing flow lands.
`docs/ui-protocol.md` is this output; a test keeps the two identical.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from clef import EXTERNAL_API_VERSION, INTERNAL_API_VERSION, jsonrpc
from clef.errors import SignerError, UnknownAccount
from clef.eth.address import to_checksum
from clef.eth.eip712 import TypedData
from clef.eth.gnosis import GnosisSafeTx
from clef.eth.hashing import keccak256
from clef.eth.secp import address_of, sign_hash
from clef.eth.signdata import (
    encode_signature,
    prepare_sign_data,
    sign_data_request_json,
    typed_data_plan,
)
from clef.eth.tx import build_transaction, parse_send_tx_args
from clef.net.http import BATCH_LIMIT, build_meta
from clef.net.ipc import IPC_META
from clef.net.link import KeydLink
from clef.net.rpc import RpcFront
from keyd.accounts import AccountManager
from keyd.api import SignerAPI, run_call
from keyd.approvals import ApprovalGate
from keyd.config import Config
from keyd.daemon import startup_info
from keyd.internal_api import InternalAPI
from keyd.keystore import Account, Keystore
from keyd.netsup import NetSupervisor
from keyd.ui.stdio import StdioUI

JSON = dict[str, Any]
Answer = Callable[[str, JSON], Any]
NO_ANSWER = object()  # a scripted UI answer meaning "never reply"

TO_UI = "keyd → UI"
FROM_UI = "UI → keyd"

DOC_KEYSTORE = Path("/home/user/.ethereum/keystore")
DOC_CONFIGDIR = Path("/home/user/.clef")
DOC_ACCOUNTS = (
    ("deadbeef000000000000000000000000deadbeef", "UTC--2024-01-01T00-00-00.000000000Z--a"),
    ("1111111122222222222233333333334444444444", "UTC--2024-01-01T00-00-00.000000000Z--b"),
)
DOC_NEW_ACCOUNT = "9160dc9105f7de5dc5e7f3d97ef11da47269bda6"
# The example password shown in the documentation, not a credential.
DOC_PASSWORD = "correct horse battery staple"  # noqa: S105  # nosec B105
# A published example key (never holds funds): the signatures below are reproducible.
DOC_SIGNING_KEY = keccak256(b"clef gendoc example key")

# The request context of the examples, built the way the HTTP front builds it.
HTTP_META: dict[str, str] = build_meta(
    {"client": ("127.0.0.1", 52734), "http_version": "1.1"},
    {"host": "localhost:8550", "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
     "origin": "https://dapp.example"},
)
HTTP_META_PROXIED: dict[str, str] = build_meta(
    {"client": ("10.0.0.2", 41000), "http_version": "1.1"},
    {"host": "signer.internal", "user-agent": "curl/8.5.0", "x-forwarded-for": "203.0.113.9"},
)


# --- the in-process system under documentation --------------------------------------------------


class _DocKeystore(Keystore):
    """A keystore with fixed accounts that never touches the disk (every public method)."""

    def __init__(self) -> None:
        super().__init__(DOC_KEYSTORE, light=True)
        self._fixed = [_doc_account(addr, name) for addr, name in DOC_ACCOUNTS]

    def accounts(self) -> list[Account]:
        """The fixed accounts."""
        return list(self._fixed)

    def refresh(self) -> list[Account]:
        """The fixed accounts."""
        return self.accounts()

    def has_address(self, address: bytes) -> bool:
        """Whether a fixed account has address."""
        return any(a.address == address for a in self._fixed)

    def find(self, address: bytes) -> Account:
        """The fixed account for address."""
        for account in self._fixed:
            if account.address == address:
                return account
        raise UnknownAccount()

    def decrypt_key(self, address: bytes, password: str) -> bytearray:
        """Example accounts have no key material."""
        raise SignerError("example keystore")

    def export(self, address: bytes) -> str:
        """Example accounts have no key file."""
        raise SignerError("example keystore")

    def import_key_json(self, key_json: dict[str, Any], old_pw: str, new_pw: str) -> Account:
        """Not part of the examples."""
        raise SignerError("example keystore")

    def new_account(self, password: str) -> Account:
        """A fixed 'new' account (no key is generated or written)."""
        return self._add(bytes.fromhex(DOC_NEW_ACCOUNT))

    def import_raw_key(self, key: bytes | bytearray, password: str) -> Account:
        """The account of key, recorded in memory only."""
        address = address_of(bytes(key))
        if self.has_address(address):
            raise SignerError("account already exists")
        return self._add(address)

    def _add(self, address: bytes) -> Account:
        account = _doc_account(address.hex(), f"UTC--2024-01-01T00-00-00.000000000Z--"
                                              f"{address.hex()}")
        self._fixed.append(account)
        return account


def _doc_account(address: str, name: str) -> Account:
    path = DOC_KEYSTORE / name
    return Account(bytes.fromhex(address), f"keystore://{path}", path)


class _InProcessLink(KeydLink):
    """The worker→keyd link without the socketpair: calls keyd's dispatcher directly."""

    def __init__(self, api: SignerAPI) -> None:
        self._api = api

    async def call(self, method: str, params: list[Any], meta: dict[str, str]) -> JSON:
        """Run the call as keyd's supervisor does."""
        return await run_call(self._api, method, params, meta)


class _DocSupervisor(NetSupervisor):
    """Listener addresses for ui_onSignerStartup without opening sockets."""

    @property
    def http_url(self) -> str | None:
        """The default HTTP endpoint."""
        return "http://127.0.0.1:8550/"


@dataclass
class Flow:
    """One documented exchange: the caller's request, the UI traffic it caused, the response."""

    title: str
    request: Any = None
    transcript: list[tuple[str, JSON]] = field(default_factory=list)
    response: Any = None
    has_response: bool = True
    request_label: str = "Request"
    response_label: str = "Response"


@dataclass(frozen=True)
class _Raw:
    """A request body that is not valid JSON (or too big to show): sent as these bytes."""

    body: bytes


@dataclass(frozen=True)
class _Shown:
    """A request rendered verbatim (it is not a JSON value)."""

    text: str


class _Harness:
    """keyd's API, approval gate and stdio UI wired to a scripted UI over in-memory streams."""

    def __init__(self, answer: Answer, *, timeout: float = 60.0) -> None:
        to_ui_send, self._to_ui = trio.testing.memory_stream_one_way_pair()
        self._from_ui, from_ui_receive = trio.testing.memory_stream_one_way_pair()
        self.stdio = StdioUI(from_ui_receive, to_ui_send)
        self.config = Config(keystore=DOC_KEYSTORE, configdir=DOC_CONFIGDIR, http=True)
        self.accounts = AccountManager(_DocKeystore())
        self.api = SignerAPI(self.config, self.accounts,
                             ApprovalGate(self.stdio, timeout=timeout, max_pending=64))
        self.front = RpcFront(_InProcessLink(self.api))
        self.transcript: list[tuple[str, JSON]] = []
        self._answer = answer

    async def run_ui(self) -> None:
        """The scripted UI: record every message and answer calls."""
        splitter = jsonrpc.StreamSplitter()
        while True:
            data = await self._to_ui.receive_some(65536)
            if not data:
                return
            for raw in splitter.feed(bytes(data)):
                message = json.loads(raw)
                self.transcript.append((TO_UI, message))
                if "method" not in message or "id" not in message:
                    continue
                params = message.get("params") or [{}]
                result = self._answer(message["method"], params[0])
                if result is not NO_ANSWER:
                    await self.ui_send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    async def ui_send(self, message: JSON) -> None:
        """Write one message from the UI to keyd (and record it)."""
        self.transcript.append((FROM_UI, message))
        await self._from_ui.send_all(jsonrpc.dumps(message) + b"\n")


def _approve_all(method: str, params: JSON) -> Any:
    if method == "ui_approveListing":
        return {"accounts": params["accounts"]}
    if method == "ui_onInputRequired":
        return {"text": DOC_PASSWORD}
    return {"approved": True}


def _script(**answers: Any) -> Answer:
    """A UI answering from a table; a list answers in turn; unlisted methods approve."""
    queues = {k: list(v) if isinstance(v, list) else [v] for k, v in answers.items()}

    def answer(method: str, params: JSON) -> Any:
        queue = queues.get(method)
        if not queue:
            return _approve_all(method, params)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        return item(params) if callable(item) else item

    return answer


async def _external(title: str, request: Any, answer: Answer = _approve_all, *,
                    meta: dict[str, str] | None = None, timeout: float = 60.0,
                    withdraw: bool = False) -> Flow:
    """Send request through the JSON-RPC front into keyd; capture UI traffic and the response."""
    harness = _Harness(answer, timeout=timeout)
    flow = Flow(title, request=request)
    if isinstance(request, _Raw):
        body_in = request.body
        flow.request = _Shown(body_in.decode() if len(body_in) < 200
                              else "[ ...1001 requests... ]")
    else:
        body_in = jsonrpc.dumps(request)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.stdio.run)
        nursery.start_soon(harness.run_ui)
        with trio.CancelScope() as call_scope:
            if withdraw:
                # The caller hangs up once the UI has been asked (the front cancels the call).
                async def hang_up() -> None:
                    await trio.testing.wait_all_tasks_blocked()
                    call_scope.cancel()

                nursery.start_soon(hang_up)
            body = await harness.front.handle(body_in, meta or HTTP_META,
                                              batch_limit=BATCH_LIMIT)
            flow.response = json.loads(body) if body else None
            flow.has_response = bool(body)
        if call_scope.cancelled_caught:
            flow.has_response = False
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    flow.transcript = harness.transcript
    return flow


async def _internal(title: str, request: JSON, answer: Answer = _approve_all) -> Flow:
    """The UI calls a clef_* method on keyd's stdio channel; capture keyd's side of it."""
    harness = _Harness(answer)
    internal = InternalAPI(harness.config, harness.accounts, harness.api)
    harness.stdio.serve_internal_api(internal.dispatch)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.stdio.run)
        nursery.start_soon(harness.run_ui)
        await harness.ui_send(request)
        while not any(d == TO_UI and m.get("id") == request["id"] and "method" not in m
                      for d, m in harness.transcript):
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    flow = Flow(title, request=request, request_label=FROM_UI,
                response_label=f"{TO_UI}, the reply")
    flow.transcript = [(d, m) for d, m in harness.transcript if m is not request]
    reply = next(m for d, m in flow.transcript if d == TO_UI and m.get("id") == request["id"]
                 and "method" not in m)
    flow.transcript.remove((TO_UI, reply))
    flow.response = reply
    return flow


async def _startup() -> Flow:
    harness = _Harness(_approve_all)
    supervisor = _DocSupervisor(harness.config, harness.api)
    supervisor.ipc_path = DOC_CONFIGDIR / "clef.ipc"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run_ui)
        await harness.stdio.on_signer_startup(startup_info(harness.config, supervisor))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return Flow("startup", transcript=harness.transcript, has_response=False)


def _call(method: str, *params: Any, id_: Any = 1) -> JSON:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


async def _core_flows() -> dict[str, list[Flow]]:
    """The flows keyd implements today, run for real."""
    flows: dict[str, list[Flow]] = {}
    flows["account_version"] = [await _external("Request and response", _call("account_version"))]
    flows["rpc_modules"] = [await _external("Request and response", _call("rpc_modules"))]
    flows["account_list"] = [
        await _external("The UI approves a subset of the accounts", _call("account_list"),
                        _script(ui_approveListing=lambda p: {"accounts": p["accounts"][:1]})),
        await _external("The UI denies (`accounts` null or absent)", _call("account_list"),
                        _script(ui_approveListing={"accounts": None})),
    ]
    flows["account_new"] = [
        await _external("Approved; the first password is too short, the second is accepted",
                        _call("account_new"),
                        _script(ui_onInputRequired=[{"text": "short"}, {"text": DOC_PASSWORD}])),
        await _external("Denied", _call("account_new"),
                        _script(ui_approveNewAccount={"approved": False})),
        await _external("No answer within --approval-timeout", _call("account_new"),
                        _script(ui_approveNewAccount=NO_ANSWER), timeout=0.01),
        await _external("The caller disconnects while the UI is deciding", _call("account_new"),
                        _script(ui_approveNewAccount=NO_ANSWER), withdraw=True),
    ]
    flows["errors"] = [
        await _external("Malformed JSON (-32700)", _Raw(b'{"jsonrpc":"2.0","method":')),
        await _external("Not a JSON-RPC request (-32600)", {"jsonrpc": "2.0", "id": 1}),
        await _external("A UI method called from outside (-32601)",
                        _call("ui_approveTx", {"approved": True})),
        await _external("Wrong arity (-32602)", _call("account_list", "extra")),
        await _external("Object params (-32602)",
                        {"jsonrpc": "2.0", "id": 1, "method": "account_version", "params": {}}),
        await _external("Batch with a notification and an error",
                        [_call("account_version", id_=1), _call("nope_method", id_=2),
                         {"jsonrpc": "2.0", "method": "account_version"}]),
        await _external("Batch over 1000 requests (HTTP only; IPC has no limit)",
                        _Raw(b"[" + b",".join([jsonrpc.dumps(_call("rpc_modules"))] * 1001)
                             + b"]")),
    ]
    flows["ipc_meta"] = [await _external("The same account_list over IPC",
                                         _call("account_list"), meta=dict(IPC_META))]
    flows["proxied_meta"] = [await _external("Behind a proxy that sets X-Forwarded-For",
                                             _call("account_list"), meta=HTTP_META_PROXIED)]
    flows["startup"] = [await _startup()]
    flows["clef_listAccounts"] = [await _internal("", _call("clef_listAccounts"))]
    flows["clef_listWallets"] = [await _internal("", _call("clef_listWallets"))]
    flows["clef_chainId"] = [await _internal("", _call("clef_chainId"))]
    flows["clef_setChainId"] = [await _internal("", _call("clef_setChainId", "0x4268"))]
    flows["clef_openWallet"] = [await _internal(
        "", _call("clef_openWallet", f"keystore://{DOC_KEYSTORE / DOC_ACCOUNTS[0][1]}"))]
    flows["clef_deriveAccount"] = [await _internal(
        "Only hardware wallets derive", _call("clef_deriveAccount", "ledger://0001:0004:00",
                                              "m/44'/60'/0'/0/0"))]
    flows["clef_new"] = [await _internal("No approval (the UI asked); password as account_new",
                                         _call("clef_new"))]
    flows["clef_importRawKey"] = [await _internal(
        "", _call("clef_importRawKey", DOC_SIGNING_KEY.hex(), DOC_PASSWORD)),
        await _internal("A password that breaks the rule",
                        _call("clef_importRawKey", DOC_SIGNING_KEY.hex(), "short"))]
    return flows


# --- signing: assembled from the pure encoders --------------------------------------------------


def _signing_flows() -> dict[str, list[Flow]]:
    key = DOC_SIGNING_KEY
    signer = to_checksum(address_of(key))
    flows: dict[str, list[Flow]] = {}

    tx_args = {"from": signer, "to": "0x07a565b7ed7d7A678680A4c162885bEdbb695fe0",
               "gas": "0x5208", "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "0x3b9aca00", "value": "0xde0b6b3a7640000",
               "nonce": "0x0", "chainId": "0x1"}
    args = parse_send_tx_args(tx_args)
    unsigned = build_transaction(args, 1)
    signed = unsigned.sign(*sign_hash(key, unsigned.signing_hash()))
    result = {"raw": "0x" + signed.raw.hex(), "tx": signed.to_json()}
    approve_tx = {"transaction": args.to_json(), "call_info": None, "meta": HTTP_META}
    flows["account_signTransaction"] = [_assembled(
        _call("account_signTransaction", tx_args),
        [("ui_approveTx", approve_tx, {"approved": True, "transaction": args.to_json()}),
         ("ui_onInputRequired", {"title": "Account password",
                                 "prompt": f"Please enter the password for account {signer}",
                                 "isPassword": True}, {"text": DOC_PASSWORD}),
         ("ui_onApprovedTx", result, None)],
        result)]

    message = "0x" + b"hello world".hex()
    plan = prepare_sign_data("text/plain", message)
    recid, r, s = sign_hash(key, plan.hash)
    signature = "0x" + encode_signature(recid, r, s, plan.v_offset).hex()
    flows["account_signData"] = [_assembled(
        _call("account_signData", "text/plain", signer, message),
        [("ui_approveSignData", sign_data_request_json(plan, signer, HTTP_META),
          {"approved": True}), _signing_password(signer)],
        signature)]
    flows["account_ecRecover"] = [_assembled(
        _call("account_ecRecover", message, signature), [], "0x" + address_of(key).hex(),
        "Request and response")]

    typed_json = _mail_typed_data()
    typed_plan = typed_data_plan(TypedData.parse(typed_json))
    recid, r, s = sign_hash(key, typed_plan.hash)
    flows["account_signTypedData"] = [_assembled(
        _call("account_signTypedData", signer, typed_json),
        [("ui_approveSignData", sign_data_request_json(typed_plan, signer, HTTP_META),
          {"approved": True}), _signing_password(signer)],
        "0x" + encode_signature(recid, r, s, typed_plan.v_offset).hex())]

    safe_json: JSON = {
        "safe": "0x25a6c4BBd32B2424A9c99aEB0584Ad12045382B3",
        "to": "0xB372a646f7F05Cc1785018dBDA7EBc734a2A20E2", "value": "20000000000000000",
        "data": None, "operation": 0, "gasToken": "0x0000000000000000000000000000000000000000",
        "safeTxGas": 27845, "baseGas": 0, "gasPrice": "0",
        "refundReceiver": "0x0000000000000000000000000000000000000000", "nonce": 2,
        "chainId": "0x1",
    }
    safe = GnosisSafeTx.parse(safe_json)
    safe_typed = safe.to_typed_data(1)
    safe_json["safeTxHash"] = "0x" + safe_typed.digest().hex()
    safe = GnosisSafeTx.parse(safe_json)
    safe_plan = typed_data_plan(safe_typed)
    recid, r, s = sign_hash(key, safe_plan.hash)
    safe_sig = encode_signature(recid, r, s, safe_plan.v_offset)
    flows["account_signGnosisSafeTx"] = [_assembled(
        _call("account_signGnosisSafeTx", signer, safe_json),
        [("ui_approveSignData", sign_data_request_json(safe_plan, signer, HTTP_META, []),
          {"approved": True}), _signing_password(signer)],
        safe.result_json(safe_typed, safe_sig, address_of(key)))]
    return flows


def _signing_password(signer: str) -> tuple[str, JSON, Any]:
    return ("ui_onInputRequired", {"title": "Password for signing",
                                   "prompt": f"Please enter password for signing data with "
                                             f"account {signer}", "isPassword": True},
            {"text": DOC_PASSWORD})


def _assembled(request: JSON, ui: list[tuple[str, JSON, Any]], result: Any,
               title: str = "Approved") -> Flow:
    """A flow written out from the encoders' output, in the reference's message order."""
    transcript: list[tuple[str, JSON]] = []
    next_id = 1
    for method, param, answer in ui:
        if answer is None:
            transcript.append((TO_UI, {"jsonrpc": "2.0", "method": method, "params": [param]}))
            continue
        transcript.append((TO_UI, {"jsonrpc": "2.0", "id": next_id, "method": method,
                                   "params": [param]}))
        transcript.append((FROM_UI, {"jsonrpc": "2.0", "id": next_id, "result": answer}))
        next_id += 1
    return Flow(title, request=request, transcript=transcript,
                response=jsonrpc.result_response(request["id"], result))


def _mail_typed_data() -> JSON:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
                   "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                    "contents": "Hello, Bob!"},
    }


# --- rendering ----------------------------------------------------------------------------------

EXTERNAL_METHODS: tuple[tuple[str, str], ...] = (
    ("account_version", "The external API version. No UI involved."),
    ("rpc_modules", "The served namespaces, as geth's RPC server reports them."),
    ("account_list",
     "Asks the UI which accounts the caller may see (`ui_approveListing`, all accounts offered "
     "with their URLs). The caller gets the lower-case addresses the UI returned, restricted to "
     "accounts that exist; `accounts` null, absent or malformed is the error `request denied`."),
    ("account_new",
     "Asks `ui_approveNewAccount`, then up to three passwords through `ui_onInputRequired` "
     "(printable 7-bit ASCII, at least 10 characters; each bad one is reported with "
     "`ui_showError`), and returns the new address. Only `{\"approved\": true}` approves."),
    ("account_signTransaction",
     "Validates the transaction, asks `ui_approveTx` (the UI may modify the transaction; what it "
     "returns is what is signed), asks for the account password, signs, notifies "
     "`ui_onApprovedTx` and returns `{raw, tx}`."),
    ("account_signData",
     "Signs data of a content type (`text/plain`, `data/validator`, "
     "`application/x-clique-header`, `data/typed`) after `ui_approveSignData`. `raw_data` in "
     "the UI request is standard base64."),
    ("account_signTypedData", "EIP-712 typed data; the UI sees `ui_approveSignData` with "
                              "content type `data/typed`."),
    ("account_signGnosisSafeTx",
     "A Gnosis Safe transaction, signed as EIP-712 typed data; the response is the input plus "
     "`signature`, `contractTransactionHash` and `sender`."),
    ("account_ecRecover", "The address that signed a personal message. No UI involved."),
)
ASSEMBLED = ("account_signTransaction", "account_signData", "account_signTypedData",
             "account_signGnosisSafeTx", "account_ecRecover")

UI_METHODS: tuple[tuple[str, str], ...] = (
    ("ui_onSignerStartup", "Notification sent once keyd is serving: the API endpoints and "
                           "versions (`n/a` for a disabled transport)."),
    ("ui_approveListing",
     "Call. Answer `{\"accounts\": [...]}` with the subset the caller may see (each `url` must "
     "contain `://` or be omitted); `{\"accounts\": null}` denies."),
    ("ui_approveNewAccount", "Call. Answer `{\"approved\": true}` to allow; anything else denies."),
    ("ui_onInputRequired",
     "Call. Answer `{\"text\": \"...\"}`; `isPassword` asks for an echo-free field. A bare "
     "string is malformed and denies."),
    ("ui_showInfo", "Notification with a message for the user."),
    ("ui_showError", "Notification with an error for the user."),
    ("ui_approveTx",
     "Call. Answer `{\"approved\": true, \"transaction\": {...}}`; the returned transaction is "
     "what gets signed. `{\"approved\": false}` denies."),
    ("ui_approveSignData", "Call. Answer `{\"approved\": true}` to sign; anything else denies."),
    ("ui_onApprovedTx", "Notification after a transaction was signed: `{raw, tx}`."),
)

INTERNAL_METHODS: tuple[tuple[str, str], ...] = (
    ("clef_listAccounts", "All accounts with their URLs (`null` when there are none)."),
    ("clef_listWallets", "One keystore wallet per key file."),
    ("clef_chainId", "The chain id signatures are made for."),
    ("clef_setChainId", "Changes the chain id for all later requests."),
    ("clef_openWallet", "Keystore wallets need no opening."),
    ("clef_deriveAccount", "Derives and pins an account on a hardware wallet."),
    ("clef_new", "Creates an account without an approval prompt."),
    ("clef_importRawKey", "Imports a hex private key under a password that meets the rule."),
)
# clef_export (the key file's JSON) and clef_import (keyJSON, old, new password) carry key
# material and have no generated example.


def _code(value: Any) -> str:
    if isinstance(value, _Shown):
        return f"```\n{value.text}\n```\n"
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```\n"


def _render_flow(flow: Flow) -> str:
    out = [f"#### {flow.title}\n\n"] if flow.title else []
    if flow.request is not None:
        out.append(f"{flow.request_label}:\n\n{_code(flow.request)}\n")
    if flow.transcript:
        out.append("On the UI channel meanwhile:\n\n")
        for direction, message in flow.transcript:
            what = message.get("method") or ("error" if "error" in message else "result")
            kind = "" if "method" not in message else \
                (" (call)" if "id" in message else " (notification)")
            out.append(f"{direction}, `{what}`{kind}:\n\n{_code(message)}\n")
    if flow.has_response:
        out.append(f"{flow.response_label}:\n\n{_code(flow.response)}\n")
    elif flow.request is not None:
        out.append("No response (the caller is gone, or it was a notification).\n\n")
    return "".join(out)


def _ui_examples(all_flows: list[Flow]) -> dict[str, tuple[JSON, JSON | None]]:
    """The first message keyd sent for each ui_* method, with the UI's reply if it is a call."""
    found: dict[str, tuple[JSON, JSON | None]] = {}
    for flow in all_flows:
        for index, (direction, message) in enumerate(flow.transcript):
            method = message.get("method")
            if direction != TO_UI or not isinstance(method, str) or method in found:
                continue
            reply = None
            if "id" in message:
                reply = next((m for d, m in flow.transcript[index + 1:]
                              if d == FROM_UI and m.get("id") == message["id"]), None)
            found[method] = (message, reply)
    return found


def render() -> str:
    """The whole document (Markdown). Runs an event loop: call it outside trio."""
    core = trio.run(_core_flows)
    signing = _signing_flows()
    flows = {**core, **signing}
    out: list[str] = [_HEADER.format(ext=EXTERNAL_API_VERSION, int=INTERNAL_API_VERSION)]

    out.append("## External API (HTTP and IPC)\n\n" + _EXTERNAL_INTRO)
    for method, text in EXTERNAL_METHODS:
        out.append(f"### `{method}`\n\n{text}\n\n")
        if method in ASSEMBLED:
            out.append(_ASSEMBLED_NOTE)
        for flow in flows[method]:
            out.append(_render_flow(flow))
    out.append("### Errors\n\n" + _ERRORS_INTRO)
    for flow in flows["errors"]:
        out.append(_render_flow(flow))

    out.append("## Request context (`meta`)\n\n" + _META_INTRO)
    out.append(f"HTTP:\n\n{_code(HTTP_META)}\n")
    out.append(f"IPC:\n\n{_code(IPC_META)}\n")
    out.append(f"HTTP behind a proxy that sent `X-Forwarded-For` (caller-supplied, untrusted):\n\n"
               f"{_code(HTTP_META_PROXIED)}\n")

    out.append("## UI API (keyd → UI, over stdin/stdout with `--stdio-ui`)\n\n" + _UI_INTRO)
    ordered = [f for key in ("startup", *[m for m, _ in EXTERNAL_METHODS]) for f in flows[key]]
    examples = _ui_examples(ordered + flows["ipc_meta"])
    for method, text in UI_METHODS:
        message, reply = examples[method]
        out.append(f"### `{method}`\n\n{text}\n\n{TO_UI}:\n\n{_code(message)}\n")
        if reply is not None:
            out.append(f"{FROM_UI}:\n\n{_code(reply)}\n")

    out.append("## Internal API (UI → keyd, `clef_*`, on the stdio channel only)\n\n"
               + _INTERNAL_INTRO)
    for method, text in INTERNAL_METHODS:
        out.append(f"### `{method}`\n\n{text}\n\n")
        for flow in flows[method]:
            out.append(_render_flow(flow))
    return "".join(out).rstrip("\n") + "\n"


_HEADER = """\
# Clef JSON-RPC message formats

Generated by `clef gendoc` (`clef/gendoc.py`); do not edit by hand, regenerate with
`clef gendoc > docs/ui-protocol.md`. External API version {ext}, internal (UI) API version {int}.

The examples of the account and UI methods are produced by running the real request path in one
process: the net worker's JSON-RPC front, keyd's external API, the approval gate and the stdio UI
channel, with a scripted UI and a fixed example keystore. Signing examples are assembled from
the encoders keyd signs with, in the reference's message order, until keyd's signing flow lands.
JSON is shown indented; on the wire every message is compact JSON (one line on IPC and stdio).

"""

_EXTERNAL_INTRO = """\
JSON-RPC 2.0 over HTTP (`--http`: POST, `Content-Type: application/json`, body at most 5 MiB,
batches of at most 1000) or IPC (the unix socket `--ipcpath`: a stream of JSON values, each
response is compact JSON and a newline, no batch limit). Params are positional. Method errors
use code -32000 with the reference's plain message (`request denied`, `unknown account`, ...).
No `ui_*` or `clef_*` method is ever served here.

"""

_ASSEMBLED_NOTE = """\
*Assembled from the encoders (`clef/eth/`) with an example key; the request context and UI
messages follow the reference's flow.*

"""

_ERRORS_INTRO = """\
Produced by the net worker's front before anything reaches keyd (HTTP status 200 with a
JSON-RPC error; transport errors such as 403 `invalid host specified`, 405, 413 and 415 are
plain-text HTTP responses).

"""

_META_INTRO = """\
Every request reaches the UI with the caller's context. `remote` is the peer address, `local`
the `Host` header, `scheme` the protocol; `User-Agent` and `Origin` are copied from the request
and are as untrusted as the request itself.

"""

_UI_INTRO = """\
keyd is the JSON-RPC client: one message per line on its stdout, the UI's answers on its stdin.
Every `ui_*` method takes one object. Calls carry integer ids counting from 1; notifications have
no id. Only an answer of exactly the documented shape approves: a malformed answer, an error, an
answer for an id that is not pending, or no answer within `--approval-timeout` is a denial.
The examples below are taken from the flows above.

"""

_INTERNAL_INTRO = """\
The UI may call keyd on the same stdio channel (keyd serves these only there).

"""
