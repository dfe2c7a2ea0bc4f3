"""Everything that asks the UI for a decision: bounded, timed, strictly interpreted.

Invariant: only an answer of exactly the expected shape approves. Malformed, missing, late or
withdrawn answers are denials. An approval session covers the decision and its password prompt;
when its deadline passes or its caller disconnects, the session is cancelled, so nothing after
it (decryption, signing) can run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from clef.errors import ApprovalTimeout, RequestDenied, SignerError, TooManyPending
from keyd.ui.base import JSON, UI

log = logging.getLogger("keyd.approvals")


class ApprovalGate:
    """Wraps the UI with the pending bound, the approval timeout and strict answer parsing."""

    def __init__(self, ui: UI, *, timeout: float, max_pending: int) -> None:
        self.ui = ui
        self._timeout = timeout if timeout > 0 else math.inf
        self._max_pending = max_pending
        self.pending = 0

    @asynccontextmanager
    async def session(self, what: str) -> AsyncIterator[None]:
        """One request's time with the UI: refused when too many are pending, bounded in time."""
        if self.pending >= self._max_pending:
            raise TooManyPending()
        self.pending += 1
        timed_out = False
        try:
            with trio.move_on_after(self._timeout) as scope:
                try:
                    yield
                except trio.Cancelled:
                    if not scope.cancel_called:
                        # The caller went away: withdraw the prompt, tell the user.
                        with trio.CancelScope(shield=True):
                            await self._tell(f"The {what} request was withdrawn: the caller disconnected.")
                    raise
            timed_out = scope.cancelled_caught
        finally:
            self.pending -= 1
        if timed_out:
            await self._tell(f"The {what} request timed out waiting for approval and was rejected.")
            raise ApprovalTimeout()

    async def _tell(self, text: str) -> None:
        try:
            with trio.move_on_after(5):
                await self.ui.show_info(text)
        except Exception:  # noqa: BLE001 - telling the UI is best effort; the rejection stands
            log.warning("could not notify the UI: %s", text)

    async def approve_listing(self, accounts: list[JSON], meta: JSON) -> list[str]:
        """ui_approveListing; returns the approved subset of the offered addresses (lowercase)."""
        answer = await self.ui.approve_listing({"accounts": accounts, "meta": meta})
        chosen = answer.get("accounts")
        if not isinstance(chosen, list):
            if chosen is not None:
                log.warning("malformed ui_approveListing answer (accounts is not a list): a denial")
            raise RequestDenied()
        offered = {str(a["address"]).lower() for a in accounts}
        result: list[str] = []
        for item in chosen:
            address = item.get("address") if isinstance(item, dict) else None
            url = item.get("url", "") if isinstance(item, dict) else None
            if not isinstance(address, str) or not isinstance(url, str):
                log.warning("malformed account in listing answer: a denial")
                raise RequestDenied()
            if url and "://" not in url:
                log.warning("account url without scheme in listing answer: a denial")
                raise RequestDenied()
            if address.lower() not in offered:
                log.warning("UI returned an account that was not offered; dropped")
                continue
            result.append(address.lower())
        return result

    async def approve_new_account(self, meta: JSON) -> None:
        """ui_approveNewAccount; raises RequestDenied unless approved is exactly true."""
        answer = await self.ui.approve_new_account({"meta": meta})
        if not _approved(answer, "ui_approveNewAccount"):
            raise RequestDenied()

    async def approve_sign_data(self, request: JSON) -> None:
        """ui_approveSignData; raises RequestDenied unless approved is exactly true."""
        answer = await self.ui.approve_sign_data(request)
        if not _approved(answer, "ui_approveSignData"):
            raise RequestDenied()

    async def approve_tx(self, request: JSON) -> dict[str, Any]:
        """ui_approveTx; returns the transaction the UI approved (possibly modified)."""
        answer = await self.ui.approve_tx(request)
        tx = answer.get("transaction")
        if not _approved(answer, "ui_approveTx"):
            raise RequestDenied()
        if not isinstance(tx, dict):
            log.warning("malformed ui_approveTx answer (approved without a transaction): a denial")
            raise RequestDenied()
        return tx

    async def ask_password(self, title: str, prompt: str) -> str:
        """ui_onInputRequired with isPassword; a malformed answer is a denial, a UI error is
        `internal error`."""
        try:
            answer = await self.ui.on_input_required({"title": title, "prompt": prompt,
                                                      "isPassword": True})
        except SignerError as exc:
            # The UI's reason may describe the user's password store: the (untrusted) caller
            # only learns that no password came, as with the reference. The log keeps it.
            log.warning("UI failed to deliver a password: %r", exc.message)
            raise SignerError("internal error") from None
        text = answer.get("text")
        if not isinstance(text, str):
            log.warning("malformed ui_onInputRequired answer (text is not a string): a denial")
            raise RequestDenied()
        return text


def _approved(answer: JSON, method: str) -> bool:
    """True only for `approved: true`; an answer without a boolean `approved` is logged."""
    approved = answer.get("approved")
    if not isinstance(approved, bool):
        # Never guessed (a "true" string, 1, ...): a confused UI must not approve by accident.
        log.warning("malformed %s answer (approved is not a boolean): a denial", method)
        return False
    return approved
