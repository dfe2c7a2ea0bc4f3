"""The external API as keyd implements it (`account_*`), behind the net worker.

Every handler receives params exactly as the worker forwarded them (already arity-checked there,
re-validated here: the worker is untrusted) plus the request context `meta`. Handlers raise
ClefError subclasses; the supervisor turns them into JSON-RPC errors.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from clef import EXTERNAL_API_VERSION
from clef.errors import ClefError, InternalError, MethodNotFound, SignerError
from clef.external_api import check_call
from keyd.accounts import AccountManager
from keyd.approvals import ApprovalGate
from keyd.config import Config
from keyd.keystore import Account
from keyd.passwords import validate_password_format

log = logging.getLogger("keyd.api")

Handler = Callable[[list[Any], dict[str, str]], Awaitable[Any]]


class SignerAPI:
    """account_* methods: approvals first, then keys."""

    def __init__(self, config: Config, accounts: AccountManager, gate: ApprovalGate) -> None:
        self.config = config
        self.accounts = accounts
        self.gate = gate
        self._handlers: dict[str, Handler] = {
            "account_version": self.version,
            "rpc_modules": self.rpc_modules,
            "account_list": self.list_accounts,
            "account_new": self.new,
        }

        self._chain: Callable[[str, list[Any], dict[str, str]], Awaitable[Any]] = self._dispatch

    def add_middleware(self, wrap: Callable[..., Any]) -> None:
        """Wrap dispatch (e.g. with audit logging); the last added runs first."""
        self._chain = wrap(self._chain)

    def register(self, method: str, handler: Handler) -> None:
        """Add a handler for a method of the external API table."""
        self._handlers[method] = handler

    async def dispatch(self, method: str, params: list[Any], meta: dict[str, str]) -> Any:
        """Run one call through the middleware; unknown methods (incl. ui_*/clef_*) are -32601."""
        return await self._chain(method, params, meta)

    async def _dispatch(self, method: str, params: list[Any], meta: dict[str, str]) -> Any:
        handler = self._handlers.get(method)
        if handler is None:
            raise MethodNotFound(f"the method {method} does not exist/is not available")
        params = check_call(method, params)
        return await handler(params, meta)

    async def version(self, params: list[Any], meta: dict[str, str]) -> str:
        """account_version."""
        return EXTERNAL_API_VERSION

    async def rpc_modules(self, params: list[Any], meta: dict[str, str]) -> dict[str, str]:
        """rpc_modules."""
        return {"account": "1.0", "rpc": "1.0"}

    async def list_accounts(self, params: list[Any], meta: dict[str, str]) -> list[str]:
        """account_list: the UI chooses which accounts the caller may see."""
        async with self.gate.session("listing"):
            offered = await self.accounts.wire_accounts()
            return await self.gate.approve_listing(offered, meta)

    async def new(self, params: list[Any], meta: dict[str, str]) -> str:
        """account_new: approval, then up to three password attempts."""
        async with self.gate.session("new account"):
            await self.gate.approve_new_account(meta)
            password = await self.ask_new_password()
        account = await self.create_account(password)
        return "0x" + account.address.hex()

    async def ask_new_password(self) -> str:
        """Prompt up to three times for a password that meets the format rule."""
        for attempt in range(3):
            password = await self.gate.ask_password(
                "New account password",
                "Please enter a password for the new account to be created "
                f"(attempt {attempt} of 3)",
            )
            try:
                validate_password_format(password)
            except ValueError as exc:
                await self.gate.ui.show_error(f"Account creation attempt #{attempt + 1} failed "
                                              f"due to password requirements: {exc}")
                continue
            return password
        raise SignerError("account creation failed")

    async def create_account(self, password: str) -> Account:
        """Create a keystore account (KDF in a thread)."""
        return await trio.to_thread.run_sync(self.accounts.keystore.new_account, password)


async def run_call(api: SignerAPI, method: str, params: list[Any],
                   meta: dict[str, str]) -> dict[str, Any]:
    """Run a call and return a reply payload: {"result": ...} or {"error": {...}}."""
    try:
        return {"result": await api.dispatch(method, params, meta)}
    except ClefError as exc:
        return {"error": exc.to_jsonrpc()}
    except Exception:
        # A handler bug (or e.g. an unwritable keystore) must answer this caller only: escaping,
        # it would kill the worker and every other caller's connection with it (or keyd itself).
        log.exception("handler for %s failed", method)
        return {"error": InternalError("method handler crashed").to_jsonrpc()}

