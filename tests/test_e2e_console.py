"""End to end: the console UI of the real `clef` binary, driven through a pseudo-terminal.

clef runs as a user starts it (`clef --http ... --lightkdf`, no --stdio-ui) with a pty as its
stdin, stdout and stderr. The test plays the person at the keyboard: it reads everything the
terminal shows from the pty master (echo included, as on a real screen) and types into it,
while callers reach clef over HTTP and IPC from background threads. Assertions are made on the
text with the UI's own colour (SGR) sequences stripped, and on the raw bytes where escaping
matters. eth-account recovers the signer of what clef signed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import CLEF, PASSWORD, REPO, SHARED, free_port, ipc_call
from eth_account import Account

from clef.eth.address import to_checksum
from keyd.keystore import Keystore
from keyd.ui.identicon import ColorMode, address_blockie, render_identicon

# eth-account's documentation key; its address is 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23.
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SENDER = Account.from_key(KEY).address
TO_LOWER = "0x8a8eafb1cf62bfbeb1741769dae1a9dd47996192"
TO = to_checksum(bytes.fromhex(TO_LOWER[2:]))
SAFESEND_DATA = "0x4401a6e4" + "00" * 31 + "12"
SAFESEND_INFO = ('Transaction invokes the following method: '
                 '"safeSend(address: 0x0000000000000000000000000000000000000012)"')
BAD_CHECKSUM = "Invalid checksum on recipient address"
REQUESTS = SHARED / "conformance" / "geth" / "clef-requests"

APPROVE = "Approve? [y/N]:"
PROMPT_RAW = f"\x1b[1m{APPROVE}\x1b[0m\n> "  # colour on: the UI's prompt is bold
PROMPT_PLAIN = f"{APPROVE}\n> "
RULE = "-------------------------------------------"
WITHDRAWN = ("--- This request was withdrawn before it was answered (timed out or the caller "
             "went away). ---\n--- Anything typed for it is ignored. ---")
DENIED = {"code": -32000, "message": "request denied"}
TIMED_OUT = {"code": -32000, "message": "request timed out waiting for approval"}

SGR = re.compile(r"\x1b\[[0-9;]*m")
ANY_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|.)?")
COLUMNS = 160

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="caller")


def plain(text: str) -> str:
    """The text without the UI's colour sequences."""
    return SGR.sub("", text)


# --- the terminal -------------------------------------------------------------------------------


class Screen:
    """The pty master: what the user sees (collected by a reader thread) and their keyboard."""

    def __init__(self, master: int) -> None:
        self.master = master
        self._raw = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self.pos = 0  # a cursor into `text`: expect() searches after it
        self._thread = threading.Thread(target=self._run, name="pty-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave fd is closed (clef exited)
                data = b""
            with self._cond:
                if not data:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._raw += data
                self._cond.notify_all()

    @property
    def raw(self) -> bytes:
        """Every byte the terminal received, exactly (line endings as the pty sends them)."""
        with self._cond:
            return bytes(self._raw)

    @staticmethod
    def _decode(raw: bytes) -> str:
        # The pty turns \n into \r\n; a lone \r is kept (it would be a caller's trick).
        return raw.decode("utf-8", "replace").replace("\r\n", "\n")

    @property
    def text(self) -> str:
        """Everything shown so far, decoded, with the pty's \\r\\n as \\n (escapes kept)."""
        return self._decode(self.raw)

    def expect(self, needle: str, timeout: float = 20) -> str:
        """Wait until `needle` appears after the cursor; return the text up to its end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._decode(bytes(self._raw))
                index = text.find(needle, self.pos)
                if index >= 0:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    raise AssertionError(f"{needle!r} not shown; after the cursor the screen "
                                         f"has: {text[self.pos:][-3000:]!r}")
                self._cond.wait(remaining)
        end = index + len(needle)
        seen, self.pos = text[self.pos:end], end
        return seen

    def after_cursor(self, wait: float = 0.0) -> str:
        """What was shown after the cursor, once `wait` seconds have passed (cursor unchanged)."""
        time.sleep(wait)
        return self.text[self.pos:]

    def skip(self) -> None:
        """Move the cursor to the end of what has been shown."""
        self.pos = len(self.text)

    def type(self, keys: str) -> None:
        """Type on the keyboard."""
        os.write(self.master, keys.encode())

    def echo_on(self) -> bool:
        """Whether the terminal echoes typed keys (a pty master reports the slave's termios)."""
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)

    def wait_closed(self, timeout: float = 10) -> None:
        """Wait for the reader thread to see the end of output."""
        self._thread.join(timeout)


class ConsoleClef:
    """`clef --http --ipcpath ... --lightkdf` on a pseudo-terminal, as a user starts it."""

    def __init__(self, tmp: Path, extra: list[str], *, color: bool = True) -> None:
        self.tmp = tmp
        self.boot = ""  # the boot warning as shown (filled in by the fixture)
        self.started = ""  # the screen from the boot answer to the signer info
        self.keystore = tmp / "keystore"
        self.keystore.mkdir(exist_ok=True)
        self.ipc = tmp / "clef.ipc"
        self.audit = tmp / "audit.log"
        self.port = free_port()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, COLUMNS, 0, 0))
        env = {k: v for k, v in os.environ.items()
               if k not in ("NO_COLOR", "COLORTERM", "COLUMNS", "LINES")}
        env.update(TERM="xterm", XDG_CACHE_HOME=str(REPO / ".cache"))
        if not color:
            env["NO_COLOR"] = "1"
        argv = [CLEF, "--http", "--http.port", str(self.port), "--keystore", str(self.keystore),
                "--configdir", str(tmp / "config"), "--ipcpath", str(self.ipc), "--lightkdf",
                "--auditlog", str(self.audit), "--4bytedb-custom", str(tmp / "4byte-custom.json"),
                *extra]
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=tmp,
                                     env=env, start_new_session=True, close_fds=True)
        os.close(slave)  # only clef holds the slave now: its exit shows as EOF on the master
        self.screen = Screen(master)

    def wait_started(self) -> str:
        """Wait for the signer info banner; return the screen up to it."""
        return self.screen.expect("* intapi_version : ", timeout=60)

    @property
    def url(self) -> str:
        """The HTTP endpoint."""
        return f"http://127.0.0.1:{self.port}/"

    def http(self, method: str, *params: Any, headers: dict[str, str] | None = None) -> Any:
        """One JSON-RPC call over HTTP (blocking); returns the response object."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(self.url, data=body.encode(), headers=hdrs,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())

    def http_bg(self, method: str, *params: Any,
                headers: dict[str, str] | None = None) -> Future[Any]:
        """The same call from a background thread (a caller waiting for the user)."""
        return _POOL.submit(self.http, method, *params, headers=headers)

    def ipc_bg(self, method: str, *params: Any) -> Future[Any]:
        """One JSON-RPC call over IPC from a background thread."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        return _POOL.submit(ipc_call, self.ipc, body)

    def audit_shows(self, needle: str, timeout: float = 10) -> bool:
        """Wait until the audit log (written when keyd receives a request) contains needle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.audit.exists() and needle in self.audit.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> int | None:
        """Stop clef (SIGTERM, as a service manager would) and release the terminal."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.screen.wait_closed()
        os.close(self.screen.master)
        return self.proc.returncode


def with_key(tmp: Path) -> Path:
    """A tmp dir whose keystore holds KEY under PASSWORD."""
    (tmp / "keystore").mkdir(exist_ok=True)
    Keystore(tmp / "keystore", light=True).import_raw_key(KEY, PASSWORD)
    return tmp


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleClef]:
    """One --advanced clef with colour, started through its boot warning (answered `ok`)."""
    clef = ConsoleClef(with_key(tmp_path_factory.mktemp("console")), ["--advanced"])
    try:
        clef.boot = clef.screen.expect("Enter 'ok' to proceed:\n> ", timeout=60)
        clef.screen.type("ok\n")
        clef.started = clef.wait_started()
        yield clef
    finally:
        clef.close()


@pytest.fixture
def screen(console: ConsoleClef) -> Screen:
    """The module clef's screen, with the cursor after everything earlier tests saw."""
    console.screen.skip()
    return console.screen


def ask(clef: ConsoleClef, marker: str, prompt: str = PROMPT_RAW) -> str:
    """The request block containing `marker`, up to its Approve prompt (the cursor moves on)."""
    return clef.screen.expect(marker) + clef.screen.expect(prompt)


CONTINUATION = re.compile(r"^ *\| ")


def unwrap(lines: list[str]) -> list[str]:
    """Join the console's own wrapping back up: a line starting with `  | ` continues the last.

    Long paths (account URLs) wrap or not depending on the tmp dir; the wrapping itself is
    tested in tests/test_render.py."""
    out: list[str] = []
    for line in lines:
        match = CONTINUATION.match(line)
        if match and out:
            out[-1] += line[match.end():]
        else:
            out.append(line)
    return out


def block_for(text: str, header: str) -> list[str]:
    """Plain, unwrapped lines from the last `header` line to the end of text."""
    lines = plain(text).split("\n")
    start = max(i for i, line in enumerate(lines) if line == header)
    return unwrap(lines[start:])


# --- start-up -----------------------------------------------------------------------------------


def test_boot_warning_then_accounts_and_signer_info(console: ConsoleClef) -> None:
    boot, started = console.boot, console.started
    assert boot.startswith("\nWARNING!\n\nClef is an account management tool.")
    assert "- backup your keystore files,\n" in boot
    assert boot.endswith("PURPOSE. See the GNU General Public License for more details.\n"
                         "\nEnter 'ok' to proceed:\n> ")
    assert started.startswith("ok\n")  # the answer, echoed as typed
    lines = unwrap(plain(started).split("\n"))
    assert "Accounts known to Clef:" in lines
    account = next(line for line in lines if line.startswith("Account 0: "))
    assert account.startswith(f"Account 0: {SENDER} at keystore://{console.keystore}/UTC--")
    info = lines[lines.index("------- Signer info -------"):]
    assert info[1:4] == [f"* extapi_http : {console.url}", f"* extapi_ipc : {console.ipc}",
                         "* extapi_version : 6.1.0"]
    assert "\x1b" not in boot  # no colour in the warning: the reference prints plain text


# --- account_list -------------------------------------------------------------------------------


def test_listing_approved_over_http(console: ConsoleClef, screen: Screen) -> None:
    future = console.http_bg("account_list", headers={"User-Agent": "listing-approve",
                                                      "Origin": "https://dapp.example"})
    seen = ask(console, '"listing-approve"')
    lines = block_for(seen, "-------- List Account request--------------")
    assert lines[1:4] == ["A request has been made to list all accounts. ",
                          "You can select which accounts the caller can see",
                          "(this console reveals either all of them or none)"]
    assert lines[4] == f"  [x] {SENDER}"
    assert lines[5].startswith(f"    URL: keystore://{console.keystore}/UTC--")
    context = lines[lines.index(RULE) + 1:]
    assert context[0] == "Request context:"
    assert re.fullmatch(rf"\t127\.0\.0\.1:\d+ -> HTTP/1\.1 -> 127\.0\.0\.1:{console.port}",
                        context[1])
    assert context[2:6] == ["", "Additional HTTP header data, provided by the external caller:",
                            '\tUser-Agent: "listing-approve"', '\tOrigin: "https://dapp.example"']
    assert context[6:] == [APPROVE, "> "]
    screen.type("y\n")
    assert future.result(30) == {"jsonrpc": "2.0", "id": 1, "result": [SENDER.lower()]}
    assert screen.expect("Request approved.\n").startswith("y\n")


@pytest.mark.parametrize("answer", ["n", "N", "yes", "Y", "ok", "y y"])
def test_listing_denied_by_anything_but_y(console: ConsoleClef, screen: Screen,
                                          answer: str) -> None:
    agent = f"listing-deny-{answer}"
    future = console.http_bg("account_list", headers={"User-Agent": agent})
    ask(console, f'"{agent}"')
    screen.type(answer + "\n")
    assert future.result(30)["error"] == DENIED
    screen.expect(f"{answer}\nRequest denied.\n-----------------------\n")


def test_listing_over_ipc_shows_ipc_context_and_is_denied(console: ConsoleClef,
                                                          screen: Screen) -> None:
    future = console.ipc_bg("account_list")
    seen = screen.expect(PROMPT_RAW)
    lines = block_for(seen, "-------- List Account request--------------")
    context = lines[lines.index("Request context:"):]
    assert context[:5] == ["Request context:", "\tNA -> ipc -> NA", "",
                           "Additional HTTP header data, provided by the external caller:",
                           '\tUser-Agent: ""']
    screen.type("\n")  # an empty line asks again
    screen.expect("\n> ")
    assert not future.done()
    screen.type("n\n")
    assert future.result(30)["error"] == DENIED


def test_ctrl_d_denies_and_the_console_goes_on(console: ConsoleClef, screen: Screen) -> None:
    future = console.http_bg("account_list", headers={"User-Agent": "ctrl-d"})
    ask(console, '"ctrl-d"')
    screen.type("\x04")  # ^D: end of input on a terminal, which can go on afterwards
    assert future.result(30)["error"] == DENIED
    screen.expect("Request denied.\n")
    again = console.http_bg("account_list", headers={"User-Agent": "after-ctrl-d"})
    ask(console, '"after-ctrl-d"')
    screen.type("y\n")
    assert again.result(30)["result"] == [SENDER.lower()]


# --- transactions -------------------------------------------------------------------------------


def safesend_tx() -> dict[str, Any]:
    """The reference's bad-checksum fixture, sent from our key, with chain id 1."""
    body = json.loads((REQUESTS / "sign_bad_checksum_exp_fail.json").read_text())
    tx: dict[str, Any] = body["params"][0]
    assert tx["to"] == TO_LOWER and tx["data"] == SAFESEND_DATA
    return {**tx, "from": SENDER, "chainId": "0x1"}


def plain_tx() -> dict[str, Any]:
    """An EIP-1559 transfer of 1 ether that validation has nothing to say about."""
    return {"from": SENDER, "to": TO, "gas": "0x5208", "maxFeePerGas": "0x77359400",
            "maxPriorityFeePerGas": "0x3b9aca00", "value": "0xde0b6b3a7640000", "nonce": "0x7",
            "chainId": "0x1"}


def identicon_lines(left: str, right: str, mode: ColorMode) -> list[str]:
    """The from/to identicon rows the console must draw side by side (as the screen shows them).

    The renderer itself is pinned against independent vectors in tests/test_render.py; this
    checks that the pictures of these two addresses, in this order, reach the screen."""
    left_rows = render_identicon(address_blockie(left), mode)
    right_rows = render_identicon(address_blockie(right), mode)
    return [("   " + a + ("  -->  " if i == 3 else "       ") + b).rstrip()
            for i, (a, b) in enumerate(zip(left_rows, right_rows, strict=True))]


def test_transaction_approved_with_the_password_typed_blind(console: ConsoleClef,
                                                             screen: Screen) -> None:
    tx = safesend_tx()
    future = console.http_bg("account_signTransaction", tx,
                             headers={"User-Agent": "tx-approve/1.0",
                                      "Origin": "https://wallet.example"})
    seen = ask(console, '"tx-approve/1.0"')
    header = "--------- Transaction request-------------"
    raw_block = seen[seen.rindex(header):]
    lines = block_for(seen, header)
    assert lines[1] == "   from                   to"
    # Colour identicons: 8 rows of background-coloured cells, side by side, reset per row.
    rows = raw_block.split("\n")[2:10]
    assert rows == identicon_lines(SENDER, TO_LOWER, "256")
    assert all(row.count("\x1b[0m") == 2 and "\x1b[48;5;" in row for row in rows)
    rest = lines[10:]
    assert rest[:4] == [f"to:    {TO_LOWER}", "", "WARNING: Invalid checksum on to-address!", ""]
    assert "\x1b[1;31mWARNING: Invalid checksum on to-address!\x1b[0m" in raw_block
    assert rest[4:12] == [
        f"from:               {SENDER} [chksum ok]",
        "value:              16 wei (0.000000000000000016 ether)",
        "gas:                0x333 (819)",
        "gasprice: 291 wei (0.000000291 gwei)",
        "nonce:    0x0 (0)",
        "chainid:  0x1 (1)",
        f"data:     {SAFESEND_DATA}",
        "max cost: 238345 wei (0.000000000000238345 ether)",  # 16 + 819 * 291
    ]
    assert rest[12:17] == ["", "Transaction validation:", f"  * WARNING : {BAD_CHECKSUM}",
                           f"  * Info : {SAFESEND_INFO}", ""]
    assert f"  * \x1b[1;33mWARNING\x1b[0m : {BAD_CHECKSUM}" in raw_block
    context = rest[17:]
    assert context[0] == "Request context:"
    assert re.fullmatch(rf"\t127\.0\.0\.1:\d+ -> HTTP/1\.1 -> 127\.0\.0\.1:{console.port}",
                        context[1])
    assert context[2:] == ["", "Additional HTTP header data, provided by the external caller:",
                           '\tUser-Agent: "tx-approve/1.0"', '\tOrigin: "https://wallet.example"',
                           RULE, APPROVE, "> "]
    assert screen.echo_on()
    screen.type("y\n")
    prompt = screen.expect(f"Please enter the password for account {SENDER}\n> ")
    assert "Request approved.\n" in prompt and "## Account password\n" in prompt
    assert not screen.echo_on()  # the password prompt is visible only once echo is off
    screen.type(PASSWORD + "\n")
    response = future.result(30)
    result = response["result"]
    raw = bytes.fromhex(result["raw"][2:])
    assert Account.recover_transaction(raw) == SENDER
    assert result["tx"]["value"] == "0x10" and result["tx"]["to"] == TO_LOWER
    signed = screen.expect(result["tx"]["hash"])
    assert signed.startswith("\n-----------------------\n")  # the typed line was not echoed
    assert "Transaction signed:" in signed
    screen.expect("\n")
    assert screen.echo_on()  # restored after the password
    shown = console.screen.text
    assert PASSWORD not in shown
    assert PASSWORD.encode() not in console.screen.raw


def test_transaction_denied(console: ConsoleClef, screen: Screen) -> None:
    # `from` spelt in lower case: shown as sent, with the checksum verdict.
    future = console.http_bg("account_signTransaction", {**plain_tx(), "from": SENDER.lower()},
                             headers={"User-Agent": "tx-deny"})
    seen = ask(console, '"tx-deny"')
    lines = block_for(seen, "--------- Transaction request-------------")
    assert f"to:    {TO}" in lines
    assert "WARNING: Invalid checksum on to-address!" not in lines
    assert f"from:               {SENDER.lower()} [chksum INVALID]" in lines
    start = lines.index("value:              1000000000000000000 wei (1 ether)")
    assert lines[start:start + 7] == [
        "value:              1000000000000000000 wei (1 ether)",
        "gas:                0x5208 (21000)",
        "maxFeePerGas:          2000000000 wei (2 gwei)",
        "maxPriorityFeePerGas:  1000000000 wei (1 gwei)",
        "nonce:    0x7 (7)",
        "chainid:  0x1 (1)",
        "max cost: 1000042000000000000 wei (1.000042 ether)",
    ]
    assert "Transaction validation:" not in lines  # nothing to warn about
    screen.type("N\n")
    assert future.result(30)["error"] == DENIED
    after = screen.expect("Request denied.\n")
    assert after == "N\nRequest denied.\n"
    assert "password" not in screen.after_cursor(0.3)  # denied: no password was asked for


# --- hostile callers ----------------------------------------------------------------------------


FAKE_PROMPT = "\x1b[999D\x1b[2K" + APPROVE + "\x1b[0m"  # would redraw the line as a prompt


def test_hostile_headers_are_shown_escaped(console: ConsoleClef, screen: Screen) -> None:
    agent = "evil\x1b[2J\x1b[H" + FAKE_PROMPT
    origin = "https://o.example\x9b2J\x07\x08\x7f"
    start = len(screen.raw)
    future = console.http_bg("account_list", headers={"User-Agent": agent, "Origin": origin})
    seen = ask(console, '"evil\\x1b[2J')
    block = seen[seen.rindex("-------- List Account request"):]
    lines = block.split("\n")
    assert '\tUser-Agent: "evil\\x1b[2J\\x1b[H\\x1b[999D\\x1b[2KApprove? [y/N]:\\x1b[0m"' in lines
    assert '\tOrigin: "https://o.example\\x9b2J\\x07\\x08\\x7f"' in lines
    # Exactly one real prompt: the only line that starts with it is clef's own (bold) one.
    assert [line for line in lines if plain(line).startswith(APPROVE)] == [f"\x1b[1m{APPROVE}\x1b[0m"]
    # Every escape sequence the terminal received for this request is one of the UI's colours.
    raw = screen.raw[start:]
    escapes = [m.group(0) for m in ANY_ESCAPE.finditer(raw.decode("utf-8", "replace"))]
    assert escapes and all(SGR.fullmatch(e) for e in escapes), escapes
    for bad in (b"\x1b[2J", b"\x1b[H", b"\x1b[999D", b"\x1b[2K", b"\xc2\x9b", b"\x9b", b"\x07",
                b"\x08", b"\x7f"):
        assert bad not in raw, bad
    screen.type("y\n")  # the caller sees the accounts it asked for; its headers decided nothing
    assert future.result(30)["result"] == [SENDER.lower()]


def test_concurrent_requests_are_shown_one_after_the_other(console: ConsoleClef,
                                                           screen: Screen) -> None:
    first = console.http_bg("account_list", headers={"User-Agent": "queue-first"})
    ask(console, '"queue-first"')
    second = console.http_bg("account_signTransaction", safesend_tx(),
                             headers={"User-Agent": "queue-second"})
    assert console.audit_shows("queue-second")  # keyd has it and is waiting for the terminal
    waiting = screen.after_cursor(1.0)
    assert "queue-second" not in waiting and "Transaction request" not in waiting
    assert not second.done()
    screen.type("y\n")
    assert first.result(30)["result"] == [SENDER.lower()]
    screen.expect("Request approved.\n")
    seen = ask(console, '"queue-second"')
    assert "--------- Transaction request-------------" in seen
    assert "List Account request" not in seen  # the second block follows the first answer
    screen.type("n\n")
    assert second.result(30)["error"] == DENIED
    screen.expect("Request denied.\n")
    text = plain(console.screen.text)
    first_at = text.rindex('"queue-first"')
    answered_at = text.index("Request approved.", first_at)
    assert text.index("queue-second") > answered_at
    # Between each block's header and its prompt there is only that request.
    tx_block = text[text.rindex("--------- Transaction request"):text.rindex(APPROVE)]
    assert "queue-first" not in tx_block and tx_block.count("Request context:") == 1


def test_a_double_pressed_y_approves_only_the_request_on_screen(console: ConsoleClef,
                                                                screen: Screen) -> None:
    first = console.http_bg("account_list", headers={"User-Agent": "double-first"})
    ask(console, '"double-first"')
    second = console.http_bg("account_list", headers={"User-Agent": "double-second"})
    assert console.audit_shows("double-second")
    screen.type("y\ny\n")  # one keypress too many, typed before the second request is shown
    assert first.result(30)["result"] == [SENDER.lower()]
    ask(console, '"double-second"')
    time.sleep(0.5)
    assert not second.done()  # the extra `y` was typed ahead of this prompt: discarded
    screen.type("n\n")
    assert second.result(30)["error"] == DENIED


def test_caller_disconnect_withdraws_the_prompt(console: ConsoleClef, screen: Screen) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "account_list", "params": []})
    with socket.create_connection(("127.0.0.1", console.port), timeout=30) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\n"
                     "Content-Type: application/json\r\nUser-Agent: goes-away\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        ask(console, '"goes-away"')
    after = screen.expect("The listing request was withdrawn: the caller disconnected.\n")
    assert WITHDRAWN in after and "## Info " in after
    # Nothing typed for the withdrawn prompt counts; the console goes on with the next request.
    screen.type("y\n")
    time.sleep(0.3)
    nxt = console.http_bg("account_list", headers={"User-Agent": "after-disconnect"})
    ask(console, '"after-disconnect"')
    time.sleep(0.5)
    assert not nxt.done()
    screen.type("n\n")
    assert nxt.result(30)["error"] == DENIED


# --- start-up refusal and approval timeouts (instances of their own) ----------------------------


def test_boot_warning_answered_otherwise_aborts(tmp_path: Path) -> None:
    clef = ConsoleClef(tmp_path, [], color=False)
    try:
        clef.screen.expect("Enter 'ok' to proceed:\n> ", timeout=60)
        clef.screen.type("yes\n")
        assert clef.proc.wait(20) == 1
        clef.screen.wait_closed()
        after = clef.screen.after_cursor()
        assert after == "yes\naborted by user\n"
        assert not clef.ipc.exists()
    finally:
        clef.close()


def test_approval_timeout_withdraws_the_prompt(tmp_path: Path) -> None:
    clef = ConsoleClef(with_key(tmp_path), ["--approval-timeout", "2", "--suppress-bootwarn"],
                       color=False)
    screen = clef.screen
    try:
        started = clef.wait_started()
        assert "WARNING!" not in started and "\x1b" not in started
        began = time.monotonic()
        future = clef.http_bg("account_signTransaction", plain_tx(),
                              headers={"User-Agent": "nobody-types"})
        seen = ask(clef, '"nobody-types"', PROMPT_PLAIN)
        lines = block_for(seen, "--------- Transaction request-------------")
        # NO_COLOR: the same identicons drawn in ASCII, and no escape sequence at all.
        assert lines[2:10] == identicon_lines(SENDER, TO, "none")
        assert "\x1b" not in seen[seen.rindex("--------- Transaction request"):]
        assert future.result(30)["error"] == TIMED_OUT
        assert 1.9 < time.monotonic() - began < 15  # keyd's 2 s start after the request left
        after = screen.expect("timed out waiting for approval and was rejected.\n")
        assert WITHDRAWN in after
        assert "## Info \n  The transaction request timed out waiting for approval" in after
        # A `y` typed now is for nothing: the next request does not take it as its answer.
        screen.type("y\n")
        time.sleep(0.3)
        listing = clef.http_bg("account_list", headers={"User-Agent": "late-y"})
        ask(clef, '"late-y"', PROMPT_PLAIN)
        assert listing.result(30)["error"] == TIMED_OUT
        screen.expect(WITHDRAWN)
        # The timeout also covers the password prompt; the terminal gets its echo back.
        signing = clef.http_bg("account_signTransaction", plain_tx(),
                               headers={"User-Agent": "forgot-password"})
        ask(clef, '"forgot-password"', PROMPT_PLAIN)
        screen.type("y\n")
        screen.expect(f"Please enter the password for account {SENDER}\n> ")
        assert not screen.echo_on()
        assert signing.result(30)["error"] == TIMED_OUT
        assert WITHDRAWN in screen.expect("timed out waiting for approval and was rejected.\n")
        assert screen.echo_on()
    finally:
        clef.close()
