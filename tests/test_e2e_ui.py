"""End-to-end tests of the UI channel (issue 5): the --stdio-ui-test handshake, the internal
`clef_*` API, approval timeouts, caller disconnects, queueing and malformed UI answers.

Real `clef --stdio-ui` processes driven through clef/uiclient.py; callers use HTTP and IPC.
eth-account and eth-keyfile are the independent oracles for signatures and key files. Four clef
instances in all: the two handshake runs (started first, they run while the other tests do),
one with `--approval-timeout 2 --max-pending 2` and one with `--approval-timeout 0`.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import rlp
from conftest import PASSWORD, REPO, Clef, ScriptedUI
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json
from eth_keys.datatypes import PrivateKey

from clef.eth.clique import CliqueHeader
from clef.eth.eip712 import TypedData
from clef.uiclient import NO_ANSWER, UIError
from keyd.keystore import Keystore
from keyd.uitest import (
    ORIGIN,
    TEST_ADDRESS,
    check_approved,
    check_denied,
    check_response,
    clique_test_header,
    in_process_meta,
    summary,
    typed_data_example,
)

KEY_A = bytes.fromhex("11" * 32)  # in the keystore of the timeout instance
KEY_B = bytes.fromhex("22" * 32)  # in the keystore of the wait-forever instance
KEY_C = bytes.fromhex("33" * 32)  # imported through clef_import
KEY_D = bytes.fromhex("44" * 32)  # imported through clef_importRawKey
OTHER_PASSWORD = "another-password-2"
RECIPIENT = "0xDEADbEeF000000000000000000000000DeaDbeEf"
TIMED_OUT = (-32000, "request timed out waiting for approval")
DENIED = (-32000, "request denied")
INTERNAL_METHODS = ["clef_listAccounts", "clef_listWallets", "clef_deriveAccount",
                    "clef_importRawKey", "clef_openWallet", "clef_chainId", "clef_setChainId",
                    "clef_export", "clef_import", "clef_new"]


def address_of(key: bytes) -> str:
    """EIP-55 address of a private key (eth-keys)."""
    return str(PrivateKey(key).public_key.to_checksum_address())


ADDR_A, ADDR_B, ADDR_C, ADDR_D = (address_of(k) for k in (KEY_A, KEY_B, KEY_C, KEY_D))


# --- helpers ------------------------------------------------------------------------------------


def start_clef(tmp: Path, extra: list[str] | None = None,
               ui: ScriptedUI | None = None, keys: tuple[bytes, ...] = (),
               http: bool = True) -> Clef:
    """A clef in tmp with the given keys already in its keystore."""
    keystore = Keystore(tmp / "keystore", light=True)
    for key in keys:
        keystore.import_raw_key(key, PASSWORD)
    return Clef(tmp, extra, ui, http)


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(code, message) of an error response."""
    assert "error" in response, response
    return response["error"]["code"], response["error"]["message"]


def timed(fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float]:
    """Run a call; return its response and how long it took."""
    start = time.monotonic()
    response = fn()
    return response, time.monotonic() - start


def sign_text(clef: Clef, address: str, text: str, via: str = "http") -> dict[str, Any]:
    """account_signData text/plain."""
    return clef.rpc("account_signData", "text/plain", address, "0x" + text.encode().hex(), via=via)


def transfer(sender: str, **extra: str) -> dict[str, str]:
    """A legacy value transfer that validates without warnings."""
    tx = {"from": sender, "to": RECIPIENT, "gas": "0x5208", "gasPrice": "0x3b9aca00",
          "value": "0x1", "nonce": "0x0"}
    tx.update(extra)
    return tx


def requests_of(clef: Clef, method: str) -> list[dict[str, Any]]:
    """Every ui_* request of that method seen so far."""
    return [p for m, p in list(clef.client.requests) if m == method]


def infos(clef: Clef) -> list[str]:
    """Texts of every ui_showInfo so far."""
    return [p["text"] for m, p in list(clef.client.notifications) if m == "ui_showInfo"]


def last_request_id(clef: Clef, method: str) -> int:
    """The JSON-RPC id of the latest request of method (clef numbers its calls 1, 2, ...)."""
    names = [m for m, _ in list(clef.client.requests)]
    return len(names) - names[::-1].index(method)


def answer_raw(clef: Clef, call_id: int, result: Any) -> None:
    """Send a UI answer by hand."""
    clef.client.send_raw(json.dumps({"jsonrpc": "2.0", "id": call_id, "result": result}).encode()
                         + b"\n")


def constant(answer: Any) -> Callable[[dict[str, Any]], Any]:
    """A UI answer function that always returns answer."""
    return lambda params: answer


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    """Poll predicate until true (assert on timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def audit_response(clef: Clef, text: str) -> str:
    """The audit log's response line for the one account_signData request of text."""
    lines = (clef.tmp / "audit.log").read_text().splitlines()
    needle = '\\"0x' + text.encode().hex() + '\\"'
    starts = [i for i, line in enumerate(lines) if needle in line]
    assert len(starts) == 1, starts
    return next(line for line in lines[starts[0] + 1:]
                if "msg=SignData" in line and "type=response" in line)


def stderr_lines(clef: Clef, needle: str) -> list[str]:
    """Lines of clef's stderr containing needle."""
    return [line for line in clef.stderr().splitlines() if needle in line]


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for callers that wait on the UI."""
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


# --- the handshake (started first, checked last) ------------------------------------------------


class HandshakeUI(ScriptedUI):
    """A UI that reads each announcement and does what it says (a human following the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.client: Clef | None = None
        self.origin_seen = False
        self.calls: list[tuple[str, float]] = []

    def last_announcement(self) -> str:
        deadline = time.monotonic() + 10
        while self.client is None:  # the first request may beat the constructor's return
            assert time.monotonic() < deadline
            time.sleep(0.01)
        texts = infos(self.client)
        return texts[-1] if texts else ""

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, time.monotonic()))
        if method == "ui_onInputRequired":
            if params["prompt"].startswith("Did you see origin"):
                return {"text": "yes" if self.origin_seen else "no"}
            return {"text": "no" if "warnings" in params["prompt"] else "yes"}
        if method == "ui_approveSignData":
            return {"approved": "deny" not in self.last_announcement()}
        if method == "ui_approveListing":
            self.origin_seen = params["meta"].get("Origin") == ORIGIN
            return {"accounts": None}
        return {"approved": False}  # the transaction and the new account are to be rejected


class WrongUI(ScriptedUI):
    """A UI that gets most answers wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_questions = 0

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        if method == "ui_onInputRequired":
            prompt = params["prompt"]
            if prompt.startswith("Did you see the message?"):
                self.seen_questions += 1
                if self.seen_questions == 2:
                    raise UIError("not now")
                return {"text": "no"}
            return {"text": "yes" if "warnings" in prompt else "no"}
        if method == "ui_approveSignData":
            return {"approved": params["content_type"] != "application/x-clique-header"}
        if method == "ui_approveTx":
            return {"approved": True, "transaction": params["transaction"]}
        if method == "ui_approveListing":
            return {"accounts": []}
        return {"approved": "true"}  # malformed: a denial, which is what the test wanted


WRONG_ERRORS = [
    "showinfo: got no, expected yes",
    "not now",
    "showerror: got , expected yes",
    "signdata - clique header: expected no error, got request denied",
    "signdata - text: expected ErrRequestDenied, got unknown account",
    "signtransaction [1]: expected ErrRequestDenied, got unknown account",
    "signtransaction [2]: got yes, expected no",
    "list: expected ErrRequestDenied, got <nil>",
    "metadata - origin: got no, expected yes",
]


class Handshakes:
    """The two handshake runs."""

    def __init__(self, following: Clef, follow_ui: HandshakeUI, wrong: Clef) -> None:
        self.following = following
        self.follow_ui = follow_ui
        self.wrong = wrong

    def exit_code(self, clef: Clef) -> int:
        assert clef.client.proc is not None
        return clef.client.proc.wait(90)


@pytest.fixture(scope="module")
def handshakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handshakes]:
    """Both runs at once: one without transports, one with HTTP and IPC."""
    follow_ui = HandshakeUI()
    following = start_clef(tmp_path_factory.mktemp("handshake-ok"),
                           ["--stdio-ui-test", "--ipcdisable"], follow_ui, http=False)
    follow_ui.client = following
    wrong = start_clef(tmp_path_factory.mktemp("handshake-wrong"),
                       ["--stdio-ui-test"], WrongUI())
    yield Handshakes(following, follow_ui, wrong)
    following.close()
    wrong.close()


def test_signer_startup_carries_the_reference_values(handshakes: Handshakes) -> None:
    assert handshakes.following.info == {"extapi_http": "n/a", "extapi_ipc": "n/a",
                                         "extapi_version": "6.1.0", "intapi_version": "7.0.1"}
    wrong = handshakes.wrong
    assert wrong.info == {"extapi_http": f"http://127.0.0.1:{wrong.port}/",
                          "extapi_ipc": str(wrong.ipc), "extapi_version": "6.1.0",
                          "intapi_version": "7.0.1"}
    # The announced endpoints are the live ones.
    assert wrong.rpc("account_version")["result"] == "6.1.0"
    assert wrong.rpc("account_version", via="ipc")["result"] == "6.1.0"


# --- pure parts of keyd/uitest.py ---------------------------------------------------------------


def test_handshake_checks_and_summary_texts() -> None:
    assert check_response("showinfo", "yes", "yes") is None
    assert check_response("showinfo", "", "yes") == "showinfo: got , expected yes"
    long = check_response("x", "y" * 1000, "yes")
    assert long is not None and len(long) < 300 and long.endswith("…(truncated), expected yes")
    assert check_approved("c", None) is None
    assert check_approved("c", "unknown account") is None
    assert check_approved("c", "request denied") == "c: expected no error, got request denied"
    assert check_denied("d", "request denied") is None
    assert check_denied("d", None) == "d: expected ErrRequestDenied, got <nil>"
    assert check_denied("d", "request denied: the UI returned an invalid transaction: x") == (
        "d: expected ErrRequestDenied, got request denied: the UI returned an invalid "
        "transaction: x")
    assert summary([]) == "Tests completed. 0 errors:\n\n"
    assert summary(["a", "b"]) == "Tests completed. 2 errors:\na\nb\n"
    assert in_process_meta() == {"remote": "NA", "local": "NA", "scheme": "NA",
                                 "User-Agent": "", "Origin": ""}
    assert in_process_meta(ORIGIN)["Origin"] == "origin.com"


def test_handshake_request_data_is_the_references() -> None:
    header_hex = clique_test_header()
    header = CliqueHeader.decode(bytes.fromhex(header_hex[2:]))
    assert header.number == 1337
    items = rlp.decode(bytes.fromhex(header_hex[2:]))
    assert len(items) == 15 and items[7] == (1337).to_bytes(2, "big")
    assert [int.from_bytes(i, "big") for i in items[9:12]] == [1338, 1338, 1338]
    assert items[12].startswith(b"Extra data Extra data")
    typed = TypedData.parse(typed_data_example())
    assert typed.primary_type == "Mail"


# --- internal API (clef_*) on the stdio channel only --------------------------------------------


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """A clef that waits for its UI forever (--approval-timeout 0), holding KEY_B."""
    instance = start_clef(tmp_path_factory.mktemp("patient"),
                          ["--approval-timeout", "0"], keys=(KEY_B,))
    yield instance
    instance.close()


@pytest.fixture
def patient_clef(patient: Clef) -> Clef:
    """The patient instance with the default (approving) scripted answers restored."""
    patient.ui.answers = ScriptedUI().answers
    return patient


def keystore_accounts(clef: Clef) -> list[dict[str, str]]:
    """[{address, url}] from the key files on disk, sorted by url."""
    out = []
    for path in sorted(clef.keystore.iterdir()):
        if path.name.startswith("."):
            continue
        address = json.loads(path.read_text())["address"]
        out.append({"address": address_of_hex(address), "url": f"keystore://{path}"})
    return sorted(out, key=lambda a: a["url"])


def address_of_hex(text: str) -> str:
    """EIP-55 form of a hex address (eth-account's implementation, not ours)."""
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address("0x" + text.removeprefix("0x")))


def test_clef_list_accounts_and_wallets(patient_clef: Clef) -> None:
    client = patient_clef.client
    listed = client.call("clef_listAccounts")
    assert listed == keystore_accounts(patient_clef)
    assert ADDR_B in [a["address"] for a in listed]
    wallets = client.call("clef_listWallets")
    assert [w["url"] for w in wallets] == [a["url"] for a in listed]
    for wallet, account in zip(wallets, listed, strict=True):
        assert wallet["accounts"] == [account]
        assert isinstance(wallet["status"], str)
    # Listing through the internal API asks the UI nothing.
    assert not requests_of(patient_clef, "ui_approveListing")


def test_clef_open_and_derive(patient_clef: Clef) -> None:
    client = patient_clef.client
    url = client.call("clef_listAccounts")[0]["url"]
    assert client.call("clef_openWallet", url) is None
    for bad in ("keystore:///nonexistent", "trezor://0001"):
        with pytest.raises(UIError, match=r"^unknown wallet$"):
            client.call("clef_openWallet", bad)
    with pytest.raises(UIError, match=r"^unknown wallet$"):
        client.call("clef_deriveAccount", url, "m/44'/60'/0'/0/0")


def test_clef_import_raw_key(patient_clef: Clef) -> None:
    client = patient_clef.client
    with pytest.raises(UIError, match=r"^password requirements not met: password too short "
                                      r"\(<10 characters\)$"):
        client.call("clef_importRawKey", KEY_D.hex(), "short")
    account = client.call("clef_importRawKey", "0x" + KEY_D.hex(), OTHER_PASSWORD)
    assert account["address"] == ADDR_D
    path = Path(account["url"].removeprefix("keystore://"))
    assert path.parent == patient_clef.keystore
    assert decode_keyfile_json(json.loads(path.read_text()), OTHER_PASSWORD.encode()) == KEY_D
    with pytest.raises(UIError, match=r"^account already exists$"):
        client.call("clef_importRawKey", KEY_D.hex(), OTHER_PASSWORD)
    assert account in client.call("clef_listAccounts")


def test_clef_export_and_import(patient_clef: Clef) -> None:
    client = patient_clef.client
    exported = client.call("clef_export", ADDR_B)
    assert isinstance(exported, dict)
    assert decode_keyfile_json(exported, PASSWORD.encode()) == KEY_B
    with pytest.raises(UIError, match=r"^unknown account$"):
        client.call("clef_export", "0x" + "99" * 20)

    key_json = create_keyfile_json(KEY_C, b"old-password-1", kdf="pbkdf2", iterations=2)
    with pytest.raises(UIError, match=r"^could not decrypt key with given password$"):
        client.call("clef_import", key_json, "wrong-password", OTHER_PASSWORD)
    with pytest.raises(UIError, match=r"^password requirements not met: "):
        client.call("clef_import", key_json, "old-password-1", "short")
    account = client.call("clef_import", key_json, "old-password-1", OTHER_PASSWORD)
    assert account["address"] == ADDR_C
    stored = json.loads(Path(account["url"].removeprefix("keystore://")).read_text())
    assert decode_keyfile_json(stored, OTHER_PASSWORD.encode()) == KEY_C
    with pytest.raises(ValueError, match="MAC mismatch"):
        decode_keyfile_json(stored, b"old-password-1")
    with pytest.raises(UIError, match=r"^account already exists$"):
        client.call("clef_import", key_json, "old-password-1", OTHER_PASSWORD)


def test_clef_new_asks_only_for_a_password(patient_clef: Clef) -> None:
    before = len(patient_clef.client.requests)
    address = patient_clef.client.call("clef_new")
    asked = patient_clef.client.requests[before:]
    assert [m for m, _ in asked] == ["ui_onInputRequired"]  # no ui_approveNewAccount
    assert asked[0][1] == {"title": "New account password", "isPassword": True,
                           "prompt": "Please enter a password for the new account to be created "
                                     "(attempt 0 of 3)"}
    files = [p for p in patient_clef.keystore.iterdir() if address[2:] in p.name.lower()]
    assert len(files) == 1
    key = decode_keyfile_json(json.loads(files[0].read_text()), PASSWORD.encode())
    assert address_of(key).lower() == address


def test_clef_chain_id_changes_later_signing(patient_clef: Clef) -> None:
    client = patient_clef.client
    assert client.call("clef_chainId") == "0x1"
    try:
        assert client.call("clef_setChainId", "0x5") == "0x5"
        assert client.call("clef_chainId") == "0x5"
        result = patient_clef.rpc("account_signTransaction", transfer(ADDR_B))["result"]
        assert result["tx"]["chainId"] == "0x5"
        assert Account.recover_transaction(result["raw"]) == ADDR_B
        v = int.from_bytes(rlp.decode(bytes.fromhex(result["raw"][2:]))[6], "big")
        assert v in (35 + 2 * 5, 36 + 2 * 5)  # EIP-155 with the new chain id
        mismatch = patient_clef.rpc("account_signTransaction", transfer(ADDR_B, chainId="0x1"))
        assert error_of(mismatch) == (
            -32000, "requested chainid 1 does not match the configuration of the signer")
        assert client.call("clef_setChainId", "10") == "0xa"
        assert client.call("clef_setChainId", 137) == "0x89"
        for bad in ("abc", -1, None, True, "0x" + "f" * 17):
            with pytest.raises(UIError):
                client.call("clef_setChainId", bad)
        assert client.call("clef_chainId") == "0x89"
    finally:
        client.call("clef_setChainId", 1)


def test_internal_api_exists_only_on_the_stdio_channel(patient_clef: Clef) -> None:
    for method in INTERNAL_METHODS:
        for via in ("http", "ipc"):
            assert error_of(patient_clef.rpc(method, via=via)) == (
                -32601, f"the method {method} does not exist/is not available"), (method, via)
    # And the stdio channel serves only clef_*: not the external API, not unknown names.
    for method in ("account_list", "clef_unknown", "ui_showInfo"):
        with pytest.raises(UIError, match=f"^the method {method} does not exist/is not available$"):
            patient_clef.client.call(method)
    assert not requests_of(patient_clef, "ui_approveListing")


def routed(handler: Callable[[str, dict[str, Any]], Any],
           method: str) -> Callable[[dict[str, Any]], Any]:
    """A ScriptedUI answer function that asks a UIClient-style handler."""
    return lambda params: handler(method, params)


def test_the_ui_client_guide_example_program(patient_clef: Clef,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """docs/ui-client.md's program, its terminal scripted, decides real requests."""
    guide = (REPO / "docs" / "ui-client.md").read_text()
    code = guide.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "approver"}
    exec(compile(code, "approver.py", "exec"), namespace)  # nosec B102 - our own doc
    typed = ["y", "y", "n"]
    namespace["input"] = lambda prompt="": typed.pop(0)
    namespace["getpass"] = lambda prompt="": PASSWORD
    handler = namespace["handler"]
    for method in ("ui_approveListing", "ui_approveSignData", "ui_approveTx", "ui_onInputRequired",
                   "ui_approveNewAccount"):
        patient_clef.ui.answers[method] = routed(handler, method)

    assert ADDR_B.lower() in patient_clef.rpc("account_list")["result"]
    hostile = "\x1b[2J\x1b[Hall clear"
    signature = sign_text(patient_clef, ADDR_B, hostile)["result"]
    assert Account.recover_message(encode_defunct(text=hostile), signature=signature) == ADDR_B
    assert error_of(patient_clef.rpc("account_signTransaction", transfer(ADDR_B))) == DENIED
    assert typed == []
    shown = capsys.readouterr().out
    assert "Reveal these accounts?" in shown and "Transaction from" in shown
    assert "\\u001b[2J\\u001b[Hall clear" in shown and "\x1b" not in shown


# --- queueing and waiting forever ---------------------------------------------------------------


def test_several_approvals_outstanding_at_once(patient_clef: Clef,
                                               pool: ThreadPoolExecutor) -> None:
    count = 4
    barrier = threading.Barrier(count, timeout=30)

    def approve(params: dict[str, Any]) -> Any:
        index = barrier.wait()  # returns only when all four requests are at the UI together
        time.sleep(0.1 * index)  # answer in a scrambled order
        return {"approved": "m2" not in params["messages"][0]["value"]}

    patient_clef.ui.answers["ui_approveSignData"] = approve
    futures = [pool.submit(sign_text, patient_clef, ADDR_B, f"m{i}", "http" if i % 2 else "ipc")
               for i in range(count)]
    responses = [f.result(60) for f in futures]
    for i, response in enumerate(responses):
        if i == 2:
            assert error_of(response) == DENIED
        else:
            signer = Account.recover_message(encode_defunct(text=f"m{i}"),
                                             signature=response["result"])
            assert signer == ADDR_B


def test_approval_timeout_zero_waits_forever(patient_clef: Clef, pool: ThreadPoolExecutor) -> None:
    release = threading.Event()

    def approve_later(params: dict[str, Any]) -> Any:
        release.wait(30)
        return {"approved": True}

    patient_clef.ui.answers["ui_approveSignData"] = approve_later
    before = len(infos(patient_clef))
    future = pool.submit(sign_text, patient_clef, ADDR_B, "patience")
    patient_clef.client.wait_for("ui_approveSignData",
                                 lambda p: "patience" in p["messages"][0]["value"])
    time.sleep(3.5)  # well past the 2 s a short timeout would allow
    assert not future.done()
    assert infos(patient_clef)[before:] == []  # no "timed out" notice
    release.set()
    signature = future.result(30)["result"]
    assert Account.recover_message(encode_defunct(text="patience"), signature=signature) == ADDR_B


# --- caller disconnect --------------------------------------------------------------------------


def open_raw_call(clef: Clef, via: str, body: dict[str, Any]) -> socket.socket:
    """Send one request over a raw HTTP or IPC connection and leave it open."""
    data = json.dumps(body).encode()
    if via == "http":
        s = socket.create_connection(("127.0.0.1", clef.port), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(clef.ipc))
        s.sendall(data + b"\n")
    return s


@pytest.mark.parametrize("via", ["http", "ipc"])
def test_caller_disconnect_withdraws_and_a_late_answer_signs_nothing(patient_clef: Clef,
                                                                     via: str) -> None:
    release = threading.Event()
    answered = threading.Event()

    def approve_after_release(params: dict[str, Any]) -> Any:
        release.wait(30)
        answered.set()
        return {"approved": True}

    patient_clef.ui.answers["ui_approveSignData"] = approve_after_release
    text = f"gone-{via}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "account_signData",
            "params": ["text/plain", ADDR_B, "0x" + text.encode().hex()]}
    s = open_raw_call(patient_clef, via, body)
    patient_clef.client.wait_for("ui_approveSignData",
                                 lambda p: text in p["messages"][0]["value"])
    call_id = last_request_id(patient_clef, "ui_approveSignData")
    prompts_before = len(requests_of(patient_clef, "ui_onInputRequired"))
    withdrawn_before = withdrawals(patient_clef)
    s.close()
    wait_until(lambda: withdrawals(patient_clef) > withdrawn_before, timeout=15)
    release.set()  # the UI approves after the caller left
    assert answered.wait(10)
    wait_until(lambda: bool(stderr_lines(patient_clef, f"UI answered id {call_id}, which is not "
                                                       "pending")))
    # Nothing after the approval ran: no password prompt, and the audit log shows no signature.
    assert patient_clef.rpc("account_version")["result"] == "6.1.0"
    assert len(requests_of(patient_clef, "ui_onInputRequired")) == prompts_before
    assert 'data="" error="request withdrawn"' in audit_response(patient_clef, text)


def withdrawals(clef: Clef) -> int:
    """How many withdrawal notices the UI got (the exact text is asserted)."""
    notices = [t for t in infos(clef) if "withdrawn" in t]
    assert set(notices) <= {"The signing request was withdrawn: the caller disconnected."}
    return len(notices)


# --- approval timeouts (--approval-timeout 2) ---------------------------------------------------


@pytest.fixture(scope="module")
def hasty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clef]:
    """A clef with --approval-timeout 2 --max-pending 2, holding KEY_A."""
    instance = start_clef(tmp_path_factory.mktemp("hasty"),
                          ["--approval-timeout", "2", "--max-pending", "2"], keys=(KEY_A,))
    yield instance
    instance.close()


@pytest.fixture
def hasty_clef(hasty: Clef) -> Clef:
    """The hasty instance with the default (approving) scripted answers restored."""
    hasty.ui.answers = ScriptedUI().answers
    return hasty


def test_a_ui_that_never_answers_times_out(hasty_clef: Clef) -> None:
    clef = hasty_clef
    clef.ui.answers["ui_approveSignData"] = lambda p: NO_ANSWER
    clef.ui.answers["ui_approveTx"] = lambda p: NO_ANSWER
    prompts = len(requests_of(clef, "ui_onInputRequired"))
    approved_txs = len([m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"])
    response, elapsed = timed(lambda: sign_text(clef, ADDR_A, "never"))
    assert error_of(response) == TIMED_OUT
    assert 1.8 <= elapsed < 15
    clef.client.wait_for("ui_showInfo", lambda p: p["text"] == (
        "The signing request timed out waiting for approval and was rejected."))
    response, elapsed = timed(lambda: clef.rpc("account_signTransaction", transfer(ADDR_A),
                                               via="ipc"))
    assert error_of(response) == TIMED_OUT
    assert 1.8 <= elapsed < 15
    clef.client.wait_for("ui_showInfo", lambda p: p["text"] == (
        "The transaction request timed out waiting for approval and was rejected."))
    assert len(requests_of(clef, "ui_onInputRequired")) == prompts
    assert len([m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"]) == approved_txs


def test_a_late_answer_is_ignored_and_signs_nothing(hasty_clef: Clef) -> None:
    clef = hasty_clef
    answered = threading.Event()

    def late(params: dict[str, Any]) -> Any:
        time.sleep(3)
        answered.set()
        return {"approved": True, "transaction": params["transaction"]}

    clef.ui.answers["ui_approveTx"] = late
    prompts = len(requests_of(clef, "ui_onInputRequired"))
    response = clef.rpc("account_signTransaction", transfer(ADDR_A, nonce="0x7"))
    assert error_of(response) == TIMED_OUT
    call_id = last_request_id(clef, "ui_approveTx")
    assert answered.wait(10)
    wait_until(lambda: bool(stderr_lines(clef, f"UI answered id {call_id}, which is not pending")))
    time.sleep(0.3)
    assert len(requests_of(clef, "ui_onInputRequired")) == prompts  # no password asked
    assert not [m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"]


def test_the_timeout_covers_the_password_prompt(hasty_clef: Clef) -> None:
    clef = hasty_clef

    def slow_approval(params: dict[str, Any]) -> Any:
        time.sleep(1.2)
        return {"approved": True}

    def slow_password(params: dict[str, Any]) -> Any:
        time.sleep(1.5)
        return {"text": PASSWORD}

    clef.ui.answers["ui_approveSignData"] = slow_approval
    clef.ui.answers["ui_onInputRequired"] = slow_password
    response, elapsed = timed(lambda: sign_text(clef, ADDR_A, "slow"))
    # Each step alone is under 2 s; together they are not, and the clock started at queueing.
    assert error_of(response) == TIMED_OUT
    assert 1.8 <= elapsed < 2.7
    prompt = clef.client.wait_for("ui_onInputRequired")
    assert prompt["title"] == "Password for signing"
    time.sleep(1.0)  # the password arrives late: it must not produce a signature
    assert 'data="" error="request timed out waiting for approval"' in audit_response(clef, "slow")


def test_max_pending_refuses_at_once(hasty_clef: Clef, pool: ThreadPoolExecutor) -> None:
    clef = hasty_clef
    clef.ui.answers["ui_approveSignData"] = lambda p: NO_ANSWER
    before = len(requests_of(clef, "ui_approveSignData"))
    first = pool.submit(sign_text, clef, ADDR_A, "p1")
    second = pool.submit(sign_text, clef, ADDR_A, "p2", "ipc")
    wait_until(lambda: len(requests_of(clef, "ui_approveSignData")) == before + 2, timeout=1.5)
    response, elapsed = timed(lambda: sign_text(clef, ADDR_A, "p3"))
    assert error_of(response) == (-32000, "too many pending requests")
    assert elapsed < 1.0
    assert error_of(clef.rpc("account_list", via="ipc")) == (-32000, "too many pending requests")
    assert error_of(first.result(15)) == TIMED_OUT
    assert error_of(second.result(15)) == TIMED_OUT
    assert len(requests_of(clef, "ui_approveSignData")) == before + 2  # p3 never reached the UI
    # Slots are free again.
    clef.ui.answers["ui_approveSignData"] = lambda p: {"approved": True}
    signature = sign_text(clef, ADDR_A, "p4")["result"]
    assert Account.recover_message(encode_defunct(text="p4"), signature=signature) == ADDR_A


# --- malformed UI answers -----------------------------------------------------------------------

MALFORMED_APPROVALS: list[Any] = ["yes", True, None, 1, [], ["approved"], {"approved": "true"},
                                  {"approved": 1}, {"approved": None}, {"Approved": True}]


def test_malformed_answers_are_logged_denials(hasty_clef: Clef) -> None:
    clef = hasty_clef
    prompts = len(requests_of(clef, "ui_onInputRequired"))
    approved_txs = len([m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"])
    logged_before = {m: len(stderr_lines(clef, f"malformed {m} answer"))
                     for m in ("ui_approveSignData", "ui_approveTx", "ui_approveListing")}
    for answer in MALFORMED_APPROVALS:
        clef.ui.answers["ui_approveSignData"] = constant(answer)
        clef.ui.answers["ui_approveTx"] = constant(answer)
        assert error_of(sign_text(clef, ADDR_A, "malformed")) == DENIED, answer
        assert error_of(clef.rpc("account_signTransaction", transfer(ADDR_A))) == DENIED, answer
    # An approved transaction must carry the transaction; a bare approval is not one.
    clef.ui.answers["ui_approveTx"] = lambda p: {"approved": True}
    assert error_of(clef.rpc("account_signTransaction", transfer(ADDR_A))) == DENIED
    for answer in ({"accounts": None}, {}, {"accounts": "all"}, "yes", None):
        clef.ui.answers["ui_approveListing"] = constant(answer)
        assert error_of(clef.rpc("account_list")) == DENIED, answer
    assert len(requests_of(clef, "ui_onInputRequired")) == prompts
    assert len([m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"]) == approved_txs
    # Every malformed answer left a warning (legitimate denials such as accounts null do not).
    for method, count in (("ui_approveSignData", len(MALFORMED_APPROVALS)),
                          ("ui_approveTx", len(MALFORMED_APPROVALS) + 1),
                          ("ui_approveListing", 3)):
        logged = len(stderr_lines(clef, f"malformed {method} answer")) - logged_before[method]
        assert logged >= count, (method, clef.stderr()[-3000:])


def test_a_ui_error_on_the_password_prompt_is_hidden_from_the_caller(hasty_clef: Clef) -> None:
    clef = hasty_clef
    secret = "keepass database /home/alice/vault.kdbx is locked"

    def refuse(params: dict[str, Any]) -> Any:
        raise UIError(secret)

    clef.ui.answers["ui_onInputRequired"] = refuse
    # As the reference: the caller learns only that no password came, not the UI's reason.
    response = sign_text(clef, ADDR_A, "no-password")
    assert error_of(response) == (-32000, "internal error")
    response = clef.rpc("account_signTransaction", transfer(ADDR_A), via="ipc")
    assert error_of(response) == (-32000, "internal error")
    assert secret in clef.stderr()  # the user can still find out why


def test_unknown_id_and_duplicate_answers_approve_nothing(hasty_clef: Clef,
                                                          pool: ThreadPoolExecutor) -> None:
    clef = hasty_clef
    clef.ui.answers["ui_approveSignData"] = lambda p: NO_ANSWER
    prompts = len(requests_of(clef, "ui_onInputRequired"))
    # An answer for an id that was never asked: logged, ignored; the request times out.
    future = pool.submit(sign_text, clef, ADDR_A, "unknown-id")
    clef.client.wait_for("ui_approveSignData",
                         lambda p: "unknown-id" in p["messages"][0]["value"])
    call_id = last_request_id(clef, "ui_approveSignData")
    answer_raw(clef, call_id + 1000, {"approved": True})
    assert error_of(future.result(15)) == TIMED_OUT
    assert stderr_lines(clef, f"UI answered id {call_id + 1000}, which is not pending")
    # A denial followed by an approval for the same id: the first answer counts, the second is
    # logged and ignored.
    future = pool.submit(sign_text, clef, ADDR_A, "duplicate")
    clef.client.wait_for("ui_approveSignData",
                         lambda p: "duplicate" in p["messages"][0]["value"])
    call_id = last_request_id(clef, "ui_approveSignData")
    answer_raw(clef, call_id, {"approved": False})
    answer_raw(clef, call_id, {"approved": True})
    assert error_of(future.result(15)) == DENIED
    wait_until(lambda: bool(stderr_lines(clef, f"UI answered id {call_id}, which is not pending")))
    assert len(requests_of(clef, "ui_onInputRequired")) == prompts


# --- the handshake's outcome --------------------------------------------------------------------

FOLLOWING_SEQUENCE = [
    ("ui_showInfo", "If you see this message, enter 'yes' to next question"),
    ("ui_onInputRequired", "Did you see the message? [yes/no]"),
    ("ui_showError", "If you see this message, enter 'yes' to the next question"),
    ("ui_onInputRequired", "Did you see the message? [yes/no]"),
    ("ui_showInfo", "Please approve the next request for signing a clique header"),
    ("ui_approveSignData", "application/x-clique-header"),
    ("ui_showError", "unknown account"),
    ("ui_showInfo", "Please approve the next request for signing EIP-712 typed data"),
    ("ui_approveSignData", "data/typed"),
    ("ui_showError", "unknown account"),
    ("ui_showInfo", "Please approve the next request for signing text"),
    ("ui_approveSignData", "text/plain"),
    ("ui_showError", "unknown account"),
    ("ui_showInfo", "Please deny the next request for signing text"),
    ("ui_approveSignData", "text/plain"),
    ("ui_showError", "request denied"),
    ("ui_showInfo", "Please reject next transaction"),
    ("ui_approveTx", RECIPIENT),
    ("ui_onInputRequired", "Did you see any warnings for the last transaction? (yes/no)"),
    ("ui_showInfo", "Please reject listing-request"),
    ("ui_approveListing", ""),
    ("ui_showInfo", "Please reject new account-request"),
    ("ui_approveNewAccount", ""),
    ("ui_showInfo", "Please check if you see the Origin in next listing (approve or deny)"),
    ("ui_approveListing", "origin.com"),
    ("ui_onInputRequired", "Did you see origin (origin.com)? [yes/no] "),
    ("ui_showInfo", "Tests completed. 0 errors:\n\n"),
]


def _key(method: str, params: dict[str, Any]) -> str:
    if method in ("ui_showInfo", "ui_showError"):
        return str(params["text"])
    if method == "ui_onInputRequired":
        assert params["title"] == "Testing" and params["isPassword"] is False
        return str(params["prompt"])
    if method == "ui_approveSignData":
        return str(params["content_type"])
    if method == "ui_approveTx":
        return str(params["transaction"]["to"])
    return str(params["meta"]["Origin"])


def test_handshake_with_a_following_ui_passes_and_exits_0(handshakes: Handshakes) -> None:
    clef = handshakes.following
    assert handshakes.exit_code(clef) == 0
    # Each request that follows an announcement comes a second after it (time to read it).
    times = [t for _, t in handshakes.follow_ui.calls]
    assert len(times) == 12
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for index in (0, 1, 2, 3, 4, 5, 7, 8, 9):  # not before the two follow-up questions
        assert gaps[index] >= 0.9, (index, gaps)
    log = [(m, p) for m, p in list(clef.client.log) if m != "ui_onSignerStartup"]
    assert [(m, _key(m, p)) for m, p in log] == FOLLOWING_SEQUENCE
    meta = in_process_meta()
    requests = [(m, p) for m, p in log if "meta" in p]
    assert len(requests) == 8
    for method, params in requests[:-1]:
        assert params["meta"] == meta, method
    assert requests[-1][1]["meta"] == in_process_meta("origin.com")
    clique, typed, text, _ = [p for m, p in requests if m == "ui_approveSignData"]
    assert clique["address"] == TEST_ADDRESS
    assert clique["messages"][0]["value"].startswith("clique header 1337 [0x")
    assert typed["messages"][0]["value"][0]["value"] == "Ether Mail"
    assert text["messages"][0]["value"] == "\x19Ethereum Signed Message:\n11hello world"
    tx = next(p for m, p in requests if m == "ui_approveTx")
    assert tx["transaction"] == {"from": RECIPIENT, "to": RECIPIENT, "gas": "0x3e8",
                                 "gasPrice": "0x5", "maxFeePerGas": None,
                                 "maxPriorityFeePerGas": None, "value": "0x6", "nonce": "0x1",
                                 "data": "0x"}
    assert tx["call_info"] is None
    assert "UI test handshake finished errors=0" in clef.stderr()


def test_handshake_with_a_wrong_ui_lists_the_errors_and_exits_nonzero(
        handshakes: Handshakes) -> None:
    clef = handshakes.wrong
    assert handshakes.exit_code(clef) != 0
    final = infos(clef)[-1]
    assert final == summary(WRONG_ERRORS)
    assert final.startswith("Tests completed. 9 errors:\nshowinfo: got no, expected yes\n")
    # The UI's approval of the test transaction signed nothing (the account has no key).
    assert not [m for m, _ in clef.client.notifications if m == "ui_onApprovedTx"]
    for error in WRONG_ERRORS:
        assert error in clef.stderr()
    assert not clef.ipc.exists()  # clef shut down cleanly after the handshake
