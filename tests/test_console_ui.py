"""The console UI driven through a real pseudo-terminal (and through pipes, for unattended use).

The test plays the human: it reads what the terminal shows from the pty master (echo included,
as on a real screen) and types into it.
"""

from __future__ import annotations

import codecs
import fcntl
import io
import os
import re
import struct
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from clef.errors import InvalidParams, SignerError
from clef.eth.address import to_checksum
from keyd.ui import render
from keyd.ui.base import UI
from keyd.ui.console import ConsoleUI, detect_style

ADDR = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
OTHER = "0xdeadbeef00000000000000000000000000000000"
PROMPT = "[y/N]:\x1b[0m\n> "  # colour on: the prompt is bold
PLAIN_ENV = {"TERM": "xterm", "NO_COLOR": "1"}
COLOR_ENV = {"TERM": "xterm-256color"}


class Screen:
    """The pty master: what the user sees, and their keyboard."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.text = ""
        self.pos = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        os.set_blocking(fd, False)

    def _pump(self) -> bool:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.text += self._decoder.decode(data).replace("\r\n", "\n")
        return bool(data)

    async def expect(self, needle: str, timeout: float = 5) -> str:
        """Wait until `needle` appears after the cursor; return the text up to its end."""
        with trio.fail_after(timeout):
            while needle not in self.text[self.pos :]:
                await trio.lowlevel.wait_readable(self.fd)
                self._pump()
        end = self.text.index(needle, self.pos) + len(needle)
        seen, self.pos = self.text[self.pos : end], end
        return seen

    async def settle(self, seconds: float = 0.2) -> str:
        """Collect output for a moment; return everything after the cursor (cursor unchanged)."""
        with trio.move_on_after(seconds):
            while True:
                await trio.lowlevel.wait_readable(self.fd)
                self._pump()
        return self.text[self.pos :]

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())


@dataclass
class Terminal:
    screen: Screen
    slave: int
    stdin: io.TextIOWrapper
    stdout: io.TextIOWrapper

    def ui(self, env: dict[str, str] | None = None, **kw: Any) -> ConsoleUI:
        return ConsoleUI(self.stdin, self.stdout, env=PLAIN_ENV if env is None else env, **kw)

    def echo_enabled(self) -> bool:
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)


@pytest.fixture
def term() -> Iterator[Terminal]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    stdin = open(slave, encoding="utf-8", closefd=False)  # noqa: SIM115
    stdout = open(os.dup(slave), "w", encoding="utf-8")  # noqa: SIM115
    yield Terminal(Screen(master), slave, stdin, stdout)
    # Master first: a reader thread still blocked on the slave then gets EIO and finishes.
    os.close(master)
    stdout.close()
    os.close(slave)


def tx_request(**meta: str) -> dict[str, Any]:
    return {
        "transaction": {"from": ADDR, "to": OTHER, "gas": "0x5208", "gasPrice": "0x3b9aca00",
                        "maxFeePerGas": None, "maxPriorityFeePerGas": None,
                        "value": "0xde0b6b3a7640000", "nonce": "0x1"},
        "call_info": None,
        "meta": {"remote": "127.0.0.1:4242", "local": "localhost:8550", "scheme": "HTTP/1.1",
                 "User-Agent": "curl/8.0", "Origin": "", **meta},
    }


LISTING = {"accounts": [{"address": ADDR.lower(), "url": "keystore:///ks/UTC--a"},
                        {"address": OTHER, "url": "keystore:///ks/UTC--b"}],
           "meta": {"remote": "NA", "local": "NA", "scheme": "ipc", "User-Agent": "", "Origin": ""}}


def test_console_ui_satisfies_protocol(term: Terminal) -> None:
    ui: UI = term.ui()
    assert ui is not None


# ------------------------------------------------------------------ listing


@pytest.mark.parametrize(("answer", "approved"), [("y", True), ("n", False), ("", False),
                                                  ("yes", False), ("Y", False), (" y ", True)])
async def test_listing_approve_and_deny(term: Terminal, answer: str, approved: bool) -> None:
    ui = term.ui()
    result: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_listing(LISTING))
        seen = await term.screen.expect("Approve? [y/N]:\n> ")
        assert "-------- List Account request--------------" in seen
        assert f"  [x] {ADDR}\n    URL: keystore:///ks/UTC--a" in seen
        assert f"  [x] {to_checksum(bytes.fromhex(OTHER[2:]))}" in seen
        assert "Request context:\n\tNA -> ipc -> NA" in seen
        if answer == "":
            term.screen.type("\n")  # a blank line asks again
            await term.screen.expect("\n> ")
            answer = "n"
        term.screen.type(answer + "\n")
    if approved:
        assert result == [{"accounts": LISTING["accounts"]}]  # all, unchanged
        await term.screen.expect("Request approved.")
    else:
        assert result == [{"accounts": None}]
        await term.screen.expect("Request denied.\n-----------------------")


async def _collect(into: list[Any], awaitable: Any) -> None:
    into.append(await awaitable)


# ------------------------------------------------------------------ transactions


async def test_transaction_approve_shows_reference_layout(term: Terminal) -> None:
    ui = term.ui()
    request = tx_request()
    result: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_tx(request))
        seen = await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("y\n")
    assert result == [{"approved": True, "transaction": request["transaction"]}]
    lines = seen.split("\n")
    assert "--------- Transaction request-------------" in lines
    assert f"to:    {OTHER}" in lines
    assert "WARNING: Invalid checksum on to-address!" in lines
    assert f"from:               {ADDR} [chksum ok]" in lines
    assert "value:              1000000000000000000 wei (1 ether)" in lines
    assert "gas:                0x5208 (21000)" in lines
    assert "gasprice: 1000000000 wei (1 gwei)" in lines
    assert "nonce:    0x1 (1)" in lines
    assert "\t127.0.0.1:4242 -> HTTP/1.1 -> localhost:8550" in lines
    assert '\tUser-Agent: "curl/8.0"' in lines
    # the identicons (ASCII, colour is off) are drawn side by side
    assert lines[lines.index("--------- Transaction request-------------") + 1].split() == [
        "from", "to"]
    assert sum(1 for ln in lines if re.fullmatch(r"   [.#o]{16}( {7}|  -->  )[.#o]{16}", ln)) == 8
    assert "\x1b" not in seen


async def test_transaction_deny(term: Terminal) -> None:
    ui = term.ui()
    request = tx_request()
    result: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_tx(request))
        await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("n\n")
    assert result == [{"approved": False, "transaction": request["transaction"]}]


async def test_malformed_request_is_denied_without_a_prompt(term: Terminal) -> None:
    ui = term.ui()
    result = await ui.approve_tx({"transaction": {"from": "0xnothex"}, "meta": None})
    assert result["approved"] is False
    seen = await term.screen.expect("-------------------------------------------")
    assert "## Error " in seen and "transaction.from" in seen
    deep: Any = 0
    for _ in range(100_000):
        deep = [deep]
    request = {"address": ADDR, "messages": [{"name": "n", "type": "t", "value": deep}]}
    assert await ui.approve_sign_data(request) == {"approved": False}
    assert await ui.approve_listing({"accounts": "all"}) == {"accounts": None}
    assert "Approve?" not in await term.screen.settle(0.1)


# ------------------------------------------------------------------ passwords and input


async def test_password_is_read_without_echo(term: Terminal) -> None:
    ui = term.ui()
    secret = "correct horse battery staple"
    result: list[dict[str, Any]] = []
    request = {"title": "Account password",
               "prompt": f"Please enter the password for account {ADDR}", "isPassword": True}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.on_input_required(request))
        seen = await term.screen.expect("\n> ")
        assert seen.endswith(f"## Account password\n\nPlease enter the password for account {ADDR}\n> ")
        assert not term.echo_enabled()
        term.screen.type(secret + "\n")
        await term.screen.expect("-----------------------")
    assert result == [{"text": secret}]
    assert secret not in term.screen.text
    assert term.echo_enabled()  # restored

    # A non-secret answer is echoed (so the check above is meaningful) and trimmed.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.on_input_required(
            {"title": "Testing", "prompt": "Did you see the message? [yes/no]", "isPassword": False}))
        await term.screen.expect("]\n> ")
        term.screen.type("  yes \n")
        await term.screen.expect("  yes \n")
    assert result[-1] == {"text": "yes"}


async def test_cancelled_password_prompt_restores_echo(term: Terminal) -> None:
    ui = term.ui()
    with trio.move_on_after(0.3):
        await ui.on_input_required({"title": "t", "prompt": "p", "isPassword": True})
    assert term.echo_enabled()
    await term.screen.expect("withdrawn")


async def test_closed_output_fails_cleanly() -> None:
    stdin = piped("y\nsecret\n")
    stdout = io.StringIO()
    ui = ConsoleUI(stdin, stdout, env={})
    stdout.close()
    assert await ui.approve_new_account({"meta": None}) == {"approved": False}
    with pytest.raises(SignerError, match="console unusable"):
        await ui.on_input_required({"title": "t", "prompt": "p", "isPassword": True})
    await ui.show_info("nobody sees this")  # notifications never raise
    stdin.close()


async def test_input_request_malformed_raises(term: Terminal) -> None:
    ui = term.ui()
    with pytest.raises(InvalidParams):
        await ui.on_input_required({"title": "t", "prompt": "p", "isPassword": "yes"})


# ------------------------------------------------------------------ piped (non-tty) use


def piped(text: str) -> io.TextIOWrapper:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, text.encode())
    os.close(write_fd)
    return open(read_fd, encoding="utf-8")


async def test_piped_secrets_line_by_line() -> None:
    stdin = piped("ok\nfirst-password-1\nsecond password 2\ny\n")
    stdout = io.StringIO()
    ui = ConsoleUI(stdin, stdout, env={})
    # The reference read the boot confirmation through its own buffer and lost the rest: EOF.
    assert await ui.boot_warning() is True
    prompt = {"title": "New account password", "prompt": "Please enter a password",
              "isPassword": True}
    assert await ui.on_input_required(prompt) == {"text": "first-password-1"}
    assert await ui.on_input_required(prompt) == {"text": "second password 2"}
    assert await ui.approve_new_account({"meta": None}) == {"approved": True}
    with pytest.raises(SignerError, match="standard input is closed"):
        await ui.on_input_required(prompt)
    assert await ui.approve_listing(LISTING) == {"accounts": None}  # EOF denies
    shown = stdout.getvalue()
    assert "first-password-1" not in shown and "second password 2" not in shown
    assert "\x1b" not in shown  # not a terminal: no colour
    stdin.close()


def test_same_console_across_two_trio_runs() -> None:
    """clef's CLI confirms the boot warning in one trio.run and serves in the next."""
    stdin = piped("ok\nsecret-password-1\n")
    ui = ConsoleUI(stdin, io.StringIO(), env={})
    assert trio.run(ui.boot_warning) is True
    request = {"title": "t", "prompt": "p", "isPassword": True}
    assert trio.run(ui.on_input_required, request) == {"text": "secret-password-1"}
    stdin.close()


async def test_piped_overlong_line_cannot_answer_the_next_prompt() -> None:
    stdin = piped("y" * 10000 + "\nn\n")
    ui = ConsoleUI(stdin, io.StringIO(), env={})
    assert await ui.approve_new_account({"meta": None}) == {"approved": False}
    stdin.close()


async def test_overlong_password_is_an_error() -> None:
    stdin = piped("p" * 5000 + "\n")
    ui = ConsoleUI(stdin, io.StringIO(), env={})
    with pytest.raises(SignerError, match="longer than"):
        await ui.on_input_required({"title": "t", "prompt": "p", "isPassword": True})
    stdin.close()


# ------------------------------------------------------------------ boot warning


@pytest.mark.parametrize(("typed", "expected"), [("ok\n", True), (" ok \n", True),
                                                 ("no\n", False), ("\n", False), ("\x04", False)])
async def test_boot_warning(term: Terminal, typed: str, expected: bool) -> None:
    ui = term.ui()
    result: list[bool] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.boot_warning())
        seen = await term.screen.expect("Enter 'ok' to proceed:\n> ")
        assert seen.startswith("\n" + render.BOOT_WARNING + "\n")
        term.screen.type(typed)
    assert result == [expected]
    assert render.ABORTED_BY_USER == "aborted by user"


# ------------------------------------------------------------------ colour


async def test_no_color_disables_escapes(term: Terminal) -> None:
    ui = term.ui(env={"TERM": "xterm-256color", "NO_COLOR": "1"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ui.approve_tx, tx_request())
        seen = await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("n\n")
    assert "\x1b" not in seen
    assert "##" in seen  # the ASCII identicon fallback


@pytest.mark.parametrize(("env", "marker"), [(COLOR_ENV, "\x1b[48;5;"),
                                             ({**COLOR_ENV, "COLORTERM": "truecolor"},
                                              "\x1b[48;2;")])
async def test_colour_identicons_on_a_terminal(term: Terminal, env: dict[str, str],
                                               marker: str) -> None:
    ui = term.ui(env=env)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ui.approve_sign_data, {
            "content_type": "text/plain", "address": ADDR, "raw_data": "aGk=",
            "messages": [{"name": "message", "type": "text/plain", "value": "hi"}],
            "call_info": None, "hash": "0x" + "00" * 32, "meta": None})
        seen = await term.screen.expect(PROMPT)
        term.screen.type("n\n")
    assert marker in seen
    # every escape on screen is one of the UI's own SGR sequences
    assert re.sub(r"\x1b\[[0-9;]*m", "", seen).count("\x1b") == 0


def test_detect_style() -> None:
    assert detect_style(io.StringIO(), env={"TERM": "xterm"}).color == "none"
    assert detect_style(io.StringIO(), color=True, env={}).color == "256"
    assert detect_style(io.StringIO(), color=True, env={"COLORTERM": "24bit"}).color == "truecolor"
    latin = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    assert detect_style(latin, env={}).ascii_only is True
    assert detect_style(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), env={}).ascii_only is False
    assert detect_style(io.StringIO(), env={}, width=5).width == render.MIN_WIDTH


async def test_terminal_width_and_dumb_terminal(term: Terminal) -> None:
    assert detect_style(term.stdout, env=COLOR_ENV).color == "256"
    assert detect_style(term.stdout, env=COLOR_ENV).width == 80
    assert detect_style(term.stdout, env={"TERM": "dumb"}).color == "none"
    assert detect_style(term.stdout, env={"NO_COLOR": ""}).color == "none"


# ------------------------------------------------------------------ hostile strings


async def test_hostile_strings_are_rendered_escaped(term: Terminal) -> None:
    ui = term.ui()
    request = tx_request(**{"User-Agent": "Mozilla\x1b[2J\x1b[HApprove? [y/N]:\n> ",
                            "Origin": "https://\u202eexample.com\x1b]0;owned\x07",
                            "X-Forwarded-For": "10.0.0.1\r\x1b[1A"})
    request["call_info"] = [{"type": "WARNING", "message": "transfer(\x1b[32mOK\x1b[0m)\n\rfake"}]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ui.approve_tx, request)
        seen = await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("n\n")
    assert "\x1b" not in seen and "\u202e" not in seen and "\x07" not in seen
    assert "\r" not in seen.replace("\r\n", "\n")
    assert '\tUser-Agent: "Mozilla\\x1b[2J\\x1b[HApprove? [y/N]:\\n> "' in seen
    assert '\tOrigin: "https://\\u202eexample.com\\x1b]0;owned\\x07"' in seen
    assert '\tX-Forwarded-For: "10.0.0.1\\r\\x1b[1A"' in seen
    assert "  * WARNING : transfer(\\x1b[32mOK\\x1b[0m)\\n\\rfake" in seen
    assert seen.count("\nApprove? [y/N]:") == 1  # only the real prompt starts a line


async def test_hostile_text_to_sign(term: Terminal) -> None:
    ui = term.ui(env=COLOR_ENV)
    text = "Sign in\x1b[8m hidden \x1b[28m\n\n" + "\x1b[2K\rApprove? [y/N]:\n> y\n" * 3
    request = {"content_type": "text/plain", "address": ADDR, "raw_data": "aGk=",
               "messages": [{"name": "message", "type": "text/plain", "value": text}],
               "call_info": None, "hash": "0x" + "11" * 32,
               "meta": {"Origin": "\x9b2J", "User-Agent": "\u2067x\u2069"}}
    result: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_sign_data(request))
        seen = await term.screen.expect("\x1b[1mApprove? [y/N]:\x1b[0m\n> ")
        term.screen.type("n\n")
    assert result == [{"approved": False}]
    own = re.sub(r"\x1b\[[0-9;]*m", "", seen)
    assert "\x1b" not in own and "\x9b" not in own and "\u2067" not in own
    assert '  message [text/plain]: "Sign in\\x1b[8m hidden \\x1b[28m\\n\\n\\x1b[2K\\rApprove?' in seen
    assert render.strip_sgr(seen).count("\nApprove? [y/N]:") == 1
    assert '\tOrigin: "\\x9b2J"' in seen and '\tUser-Agent: "\\u2067x\\u2069"' in seen


# ------------------------------------------------------------------ one prompt at a time


async def test_concurrent_requests_are_queued_not_interleaved(term: Terminal) -> None:
    ui = term.ui()
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, results, ui.approve_listing(LISTING))
        await term.screen.expect("Approve? [y/N]:\n> ")
        nursery.start_soon(_collect, results, ui.approve_new_account({"meta": None}))
        nursery.start_soon(ui.show_info, "background message")
        pending = await term.screen.settle(0.3)
        assert "New Account request" not in pending and "background message" not in pending
        term.screen.type("y\n")
        seen = await term.screen.expect("Approve? [y/N]:\n> ")
        # the held-back notice comes out between the two requests, never inside one
        assert seen.index("## Info \n  background message") < seen.index("New Account request")
        term.screen.type("n\n")
    assert results == [{"accounts": LISTING["accounts"]}, {"approved": False}]


async def test_withdrawn_prompt_and_typeahead_never_approve(term: Terminal) -> None:
    ui = term.ui()
    with trio.move_on_after(0.3):
        await ui.approve_tx(tx_request())
    await term.screen.expect("This request was withdrawn")
    term.screen.type("y\n")  # meant for the withdrawn request: too late
    await term.screen.expect("y\n")
    await trio.sleep(0.2)
    result: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_new_account({"meta": None}))
        await term.screen.expect("Approve? [y/N]:\n> ")
        await term.screen.settle(0.2)
        assert not result  # the stale "y" did not answer it
        term.screen.type("y\n")  # an answer typed after the prompt appeared counts
    assert result == [{"approved": True}]
    # A line typed before a prompt appears is discarded, not taken as its answer.
    term.screen.type("y\n")
    await term.screen.expect("y\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_new_account({"meta": None}))
        await term.screen.expect("Approve? [y/N]:\n> ")
        await term.screen.settle(0.2)
        assert len(result) == 1
        term.screen.type("n\n")
    assert result[-1] == {"approved": False}


async def test_ctrl_d_denies_and_the_console_keeps_working(term: Terminal) -> None:
    ui = term.ui()
    result: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_new_account({"meta": None}))
        await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("\x04")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, result, ui.approve_new_account({"meta": None}))
        await term.screen.expect("Approve? [y/N]:\n> ")
        term.screen.type("y\n")
    assert result == [{"approved": False}, {"approved": True}]


# ------------------------------------------------------------------ notifications


async def test_notifications(term: Terminal) -> None:
    ui = term.ui()
    await ui.show_info("Key imported:\n  Address 0x1")
    await term.screen.expect("## Info \n  Key imported:\n    Address 0x1\n")
    await ui.show_error("request denied\x1b[2J")
    await term.screen.expect("## Error \n  request denied\\x1b[2J\n"
                             "-------------------------------------------\n")
    await ui.on_signer_startup({"info": {"extapi_version": "6.1.0", "intapi_version": "7.0.1",
                                         "extapi_http": "n/a", "extapi_ipc": "/tmp/c.ipc"}})
    seen = await term.screen.expect("* intapi_version : 7.0.1\n")
    assert "No accounts known to Clef\n------- Signer info -------\n" in seen
    assert "* extapi_http : n/a\n* extapi_ipc : /tmp/c.ipc\n* extapi_version : 6.1.0\n" in seen
    await ui.on_approved_tx({"raw": "0x02f8", "tx": {"type": "0x2", "hash": "0x" + "ab" * 32}})
    seen = await term.screen.expect("}\n")
    assert seen.startswith("Transaction signed:\n  hash: 0x" + "ab" * 32)
    await ui.on_approved_tx({"raw": "0x", "tx": {"bad": {1, 2}}})
    await term.screen.expect("signed transaction could not be displayed")


async def test_startup_lists_accounts_when_given_a_lister(term: Terminal) -> None:
    async def accounts() -> list[tuple[str, str]]:
        return [(ADDR, "keystore:///ks/a")]

    ui = term.ui(list_accounts=accounts)
    await ui.on_signer_startup({"info": {"extapi_version": "6.1.0"}})
    seen = await term.screen.expect("* extapi_version : 6.1.0\n")
    assert f"Accounts known to Clef:\nAccount 0: {ADDR} at keystore:///ks/a\n" in seen


async def test_deferred_notifications_are_bounded(term: Terminal) -> None:
    ui = term.ui()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ui.approve_new_account, {"meta": None})
        await term.screen.expect("Approve? [y/N]:\n> ")
        for i in range(200):
            await ui.show_info(f"note {i}")  # returns at once while the prompt is open
        term.screen.type("n\n")
    seen = await term.screen.expect("note 199\n")
    assert "[136 earlier messages were dropped]" in seen
    assert "note 135\n" not in seen and "note 136\n" in seen
