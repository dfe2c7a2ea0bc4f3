"""The interface keyd uses to talk to the human (or program) that approves requests.

Every method takes and returns the wire JSON objects of the UI API (`ui_*` params and results),
exactly as the stdio UI sends them, so the console UI renders the same data a stdio UI sees.
Implementations must treat anything malformed in an answer as a denial.
"""

from __future__ import annotations

from typing import Any, Protocol

JSON = dict[str, Any]


class UI(Protocol):
    """What keyd needs from a UI; each call may block until the user answers."""

    async def approve_tx(self, request: JSON) -> JSON:
        """ui_approveTx: returns {"approved": bool, "transaction": {...}}."""
        ...

    async def approve_sign_data(self, request: JSON) -> JSON:
        """ui_approveSignData: returns {"approved": bool}."""
        ...

    async def approve_listing(self, request: JSON) -> JSON:
        """ui_approveListing: returns {"accounts": [...] | None}."""
        ...

    async def approve_new_account(self, request: JSON) -> JSON:
        """ui_approveNewAccount: returns {"approved": bool}."""
        ...

    async def on_input_required(self, request: JSON) -> JSON:
        """ui_onInputRequired ({title, prompt, isPassword}): returns {"text": str}."""
        ...

    async def show_info(self, text: str) -> None:
        """ui_showInfo notification."""
        ...

    async def show_error(self, text: str) -> None:
        """ui_showError notification."""
        ...

    async def on_approved_tx(self, result: JSON) -> None:
        """ui_onApprovedTx notification with {raw, tx}."""
        ...

    async def on_signer_startup(self, info: JSON) -> None:
        """ui_onSignerStartup notification with {info: {...}}."""
        ...
