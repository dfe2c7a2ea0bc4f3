"""The `--stdio-ui-test` handshake: the reference's scripted check of a UI program, in its order.

After the announcements and questions of the reference (inventory §3.4) every request goes through
the real in-process API path (`SignerAPI.dispatch`: audit log, validation, rules, approval gate),
with the in-process request context, so the UI sees exactly what a caller's request produces.
The account used (0x0011…8899) is normally not in the keystore: an approved request then ends in
`unknown account`, which counts as success. Differences from the reference: the origin step
delivers its Origin in `meta` (the reference's never reached the UI), the questions go through
the approval gate (so `--approval-timeout` bounds them too), and clef exits afterwards with
status 0 only when there were no errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from clef.errors import ClefError
from clef.eth.clique import CliqueHeader
from keyd.api import SignerAPI, run_call

log = logging.getLogger("keyd.uitest")

# Not in the keystore (unless a user put it there): approved requests end in `unknown account`.
TEST_ADDRESS = "0x0011223344556677889900112233445566778899"
TX_ADDRESS = "0xDEADbEeF000000000000000000000000DeaDbeEf"
ORIGIN = "origin.com"
DELAY = 1.0  # after each announcement, so a human reads it before the request arrives
MAX_SHOWN = 200  # a UI answer quoted in an error line is cut here

DENIED = "request denied"
UNKNOWN_ACCOUNT = "unknown account"

SEEN_QUESTION = "Did you see the message? [yes/no]"
WARNINGS_QUESTION = "Did you see any warnings for the last transaction? (yes/no)"
ORIGIN_QUESTION = f"Did you see origin ({ORIGIN})? [yes/no] "  # trailing space as the reference


def in_process_meta(origin: str = "") -> dict[str, str]:
    """The request context of an in-process request (the reference's defaults), with an Origin."""
    return {"remote": "NA", "local": "NA", "scheme": "NA", "User-Agent": "", "Origin": origin}


def clique_test_header() -> str:
    """0x-hex RLP of the reference's test header (number 1337, seal not included)."""
    zero32 = bytes(32)
    items = (
        zero32, zero32, bytes(20), zero32, zero32, zero32,  # hashes and coinbase: all zero
        bytes(256),  # logs bloom
        (1337).to_bytes(2, "big"),  # difficulty
        (1337).to_bytes(2, "big"),  # number
        (1338).to_bytes(2, "big"),  # gas limit
        (1338).to_bytes(2, "big"),  # gas used
        (1338).to_bytes(2, "big"),  # time
        b"Extra data Extra data Extra data  Extra data  Extra data  Extra data  Extra data "
        b"Extra data",
        zero32,  # mix digest
        bytes(8),  # nonce
    )
    return "0x" + CliqueHeader(items).clique_rlp().hex()


def typed_data_example() -> dict[str, Any]:
    """The reference's EIP-712 test document (Ether Mail with a `Person.test uint8`)."""
    person = [{"name": "name", "type": "string"}, {"name": "test", "type": "uint8"},
              {"name": "wallet", "type": "address"}]
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Person": person,
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": "1",
                   "verifyingContract": "0xCCCcccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {
            "from": {"name": "Cow", "test": "3",
                     "wallet": "0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
                   "test": "2"},
            "contents": "Hello, Bob!",
        },
    }


def rejected_transaction() -> dict[str, Any]:
    """The transaction the UI is asked to reject (valid, no validation warnings)."""
    return {"from": TX_ADDRESS, "to": TX_ADDRESS, "gas": "0x3e8", "gasPrice": "0x5",
            "value": "0x6", "nonce": "0x1", "data": "0x"}


# --- the checks (pure: an error line, or None) ---------------------------------------------------


def _shown(value: str) -> str:
    return value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…(truncated)"


def check_response(case: str, got: str, expected: str) -> str | None:
    """An answer to a question must be exactly the expected text."""
    if got == expected:
        return None
    return f"{case}: got {_shown(got)}, expected {expected}"


def check_approved(case: str, error: str | None) -> str | None:
    """Success, or `unknown account` (approved, but the test account has no key)."""
    if error is None or error == UNKNOWN_ACCOUNT:
        return None
    return f"{case}: expected no error, got {error}"


def check_denied(case: str, error: str | None) -> str | None:
    """The request must have failed with exactly `request denied`."""
    if error == DENIED:
        return None
    return f"{case}: expected ErrRequestDenied, got {'<nil>' if error is None else error}"


def summary(errors: list[str]) -> str:
    """The final ui_showInfo text, as the reference formats it."""
    return f"Tests completed. {len(errors)} errors:\n" + "\n".join(errors) + "\n"


# --- the handshake -------------------------------------------------------------------------------


@dataclass
class UIHandshake:
    """Runs the handshake once against the API's UI; `exit_status` is 0 only for a clean pass."""

    api: SignerAPI
    delay: float = DELAY
    errors: list[str] = field(default_factory=list)
    completed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.api, SignerAPI):
            raise TypeError("api must be a SignerAPI")
        if not 0 <= self.delay <= 60:
            raise ValueError("delay must be between 0 and 60 seconds")

    @property
    def exit_status(self) -> int:
        """0 when the handshake completed without errors; 1 otherwise (also when interrupted)."""
        return 0 if self.completed and not self.errors else 1

    def _add(self, error: str | None) -> None:
        if error is not None:
            log.info("Test error err=%s", _escaped(error))
            self.errors.append(error)

    async def _announce(self, text: str, *, error: bool = False) -> None:
        ui = self.api.gate.ui
        await (ui.show_error(text) if error else ui.show_info(text))
        await trio.sleep(self.delay)

    async def _query(self, question: str) -> str:
        """Ask a non-password question; a failure is recorded and reads as an empty answer."""
        try:
            async with self.api.gate.session("test question"):
                answer = await self.api.gate.ui.on_input_required(
                    {"title": "Testing", "prompt": question, "isPassword": False})
        except ClefError as exc:
            self._add(exc.message)
            return ""
        text = answer.get("text") if isinstance(answer, dict) else None
        return text if isinstance(text, str) else ""

    async def _expect_response(self, case: str, question: str, expected: str) -> None:
        self._add(check_response(case, await self._query(question), expected))

    async def _call(self, method: str, params: list[Any], origin: str = "") -> str | None:
        """Run one external-API request in process; its error message, or None on success."""
        reply = await run_call(self.api, method, params, in_process_meta(origin))
        error = reply.get("error")
        if error is None:
            return None
        message = error.get("message") if isinstance(error, dict) else None
        return message if isinstance(message, str) else "error"

    async def run(self) -> list[str]:
        """Run every step in the reference's order; return the error lines."""
        await self._announce("If you see this message, enter 'yes' to next question")
        await self._expect_response("showinfo", SEEN_QUESTION, "yes")
        await self._announce("If you see this message, enter 'yes' to the next question",
                             error=True)
        await self._expect_response("showerror", SEEN_QUESTION, "yes")

        await self._announce("Please approve the next request for signing a clique header")
        self._add(check_approved("signdata - clique header", await self._call(
            "account_signData",
            ["application/x-clique-header", TEST_ADDRESS, clique_test_header()])))

        await self._announce("Please approve the next request for signing EIP-712 typed data")
        self._add(check_approved("sign 712 typed data", await self._call(
            "account_signTypedData", [TEST_ADDRESS, typed_data_example()])))

        hello = "0x" + b"hello world".hex()
        await self._announce("Please approve the next request for signing text")
        self._add(check_approved("signdata - text", await self._call(
            "account_signData", ["text/plain", TEST_ADDRESS, hello])))

        await self._announce("Please deny the next request for signing text")
        self._add(check_denied("signdata - text", await self._call(
            "account_signData", ["text/plain", TEST_ADDRESS, hello])))

        await self._announce("Please reject next transaction")
        self._add(check_denied("signtransaction [1]", await self._call(
            "account_signTransaction", [rejected_transaction(), None])))
        await self._expect_response("signtransaction [2]", WARNINGS_QUESTION, "no")

        await self._announce("Please reject listing-request")
        self._add(check_denied("list", await self._call("account_list", [])))

        await self._announce("Please reject new account-request")
        self._add(check_denied("newaccount", await self._call("account_new", [])))

        await self._announce("Please check if you see the Origin in next listing (approve or deny)")
        # The reference put the Origin where its metadata reader never looked; here it is sent.
        await self._call("account_list", [], origin=ORIGIN)
        await self._expect_response("metadata - origin", ORIGIN_QUESTION, "yes")

        for error in self.errors:
            log.error("%s", _escaped(error))
        await self.api.gate.ui.show_info(summary(self.errors))
        self.completed = True
        return self.errors

    async def run_then_stop(self, stop: Callable[[], None]) -> None:
        """Run the handshake, then call stop (the daemon exits with `exit_status`)."""
        await self.run()
        log.info("UI test handshake finished errors=%d; exiting", len(self.errors))
        stop()


def _escaped(text: str) -> str:
    # Error lines quote the UI's answers: keep control characters out of the terminal log.
    return text.encode("unicode_escape").decode("ascii")


__all__ = [
    "ORIGIN",
    "TEST_ADDRESS",
    "UIHandshake",
    "check_approved",
    "check_denied",
    "check_response",
    "clique_test_header",
    "in_process_meta",
    "summary",
    "typed_data_example",
]
