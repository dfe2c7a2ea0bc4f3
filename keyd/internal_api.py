"""The internal API (`clef_*`) served to the UI on the trusted stdio channel, never externally."""

from __future__ import annotations

from typing import Any

import trio

from clef.errors import InvalidParams, MethodNotFound, SignerError
from clef.eth.address import parse_address, to_checksum
from keyd.accounts import AccountManager
from keyd.api import SignerAPI
from keyd.config import Config
from keyd.keycrypto import wipe
from keyd.passwords import validate_password_format


class InternalAPI:
    """clef_* methods: account administration for the (trusted) UI."""

    def __init__(self, config: Config, accounts: AccountManager, api: SignerAPI) -> None:
        self.config = config
        self.accounts = accounts
        self.api = api

    async def dispatch(self, method: str, params: list[Any]) -> Any:
        """Route one clef_* call."""
        handler = {
            "clef_listAccounts": self.list_accounts,
            "clef_listWallets": self.list_wallets,
            "clef_deriveAccount": self.derive_account,
            "clef_importRawKey": self.import_raw_key,
            "clef_openWallet": self.open_wallet,
            "clef_chainId": self.chain_id,
            "clef_setChainId": self.set_chain_id,
            "clef_export": self.export,
            "clef_import": self.import_key,
            "clef_new": self.new,
        }.get(method)
        if handler is None:
            raise MethodNotFound(f"the method {method} does not exist/is not available")
        return await handler(params)

    async def list_accounts(self, params: list[Any]) -> list[dict[str, str]] | None:
        """clef_listAccounts: [{address, url}] (null when there are none, as the reference)."""
        accounts = await self.accounts.wire_accounts()
        return accounts or None

    async def list_wallets(self, params: list[Any]) -> list[dict[str, Any]]:
        """clef_listWallets: one keystore wallet per account file."""
        return [{"url": a["url"], "status": "Locked", "accounts": [a]}
                for a in await self.accounts.wire_accounts()]

    async def derive_account(self, params: list[Any]) -> Any:
        """clef_deriveAccount: only hardware wallets derive; none are open."""
        raise SignerError("unknown wallet")

    async def open_wallet(self, params: list[Any]) -> Any:
        """clef_openWallet: keystore wallets need no opening; others are unknown."""
        url = params[0] if params else None
        if isinstance(url, str) and url.startswith("keystore://"):
            for account in await self.accounts.wire_accounts():
                if account["url"] == url:
                    return None
        raise SignerError("unknown wallet")

    async def import_raw_key(self, params: list[Any]) -> dict[str, str]:
        """clef_importRawKey(hexkey, password)."""
        if len(params) != 2 or not all(isinstance(p, str) for p in params):
            raise InvalidParams("want [hexkey, password]")
        try:
            validate_password_format(params[1])
        except ValueError as exc:
            raise SignerError(f"password requirements not met: {exc}") from None
        text = params[0][2:] if params[0].startswith(("0x", "0X")) else params[0]
        try:
            key = bytearray(bytes.fromhex(text))
        except ValueError:
            raise InvalidParams("invalid hex private key") from None
        try:
            account = await trio.to_thread.run_sync(self.accounts.keystore.import_raw_key,
                                                    bytes(key), params[1])
        finally:
            wipe(key)
        return {"address": to_checksum(account.address), "url": account.url}

    async def chain_id(self, params: list[Any]) -> str:
        """clef_chainId."""
        return hex(self.config.chain_id)

    async def set_chain_id(self, params: list[Any]) -> str:
        """clef_setChainId(id): hex or decimal, string or number."""
        value = params[0] if params else None
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                new = value
            elif isinstance(value, str):
                new = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
            else:
                raise ValueError  # noqa: TRY004 - one error path for every bad input
        except ValueError:
            raise InvalidParams("invalid chain id") from None
        if not 0 <= new < 2**64:
            raise InvalidParams("invalid chain id")
        self.config.chain_id = new
        return hex(new)

    async def export(self, params: list[Any]) -> Any:
        """clef_export(address): the keystore file's JSON."""
        if len(params) != 1:
            raise InvalidParams("want [address]")
        address = parse_address(params[0], "address")
        import json

        text = await trio.to_thread.run_sync(self.accounts.keystore.export, address)
        return json.loads(text)

    async def import_key(self, params: list[Any]) -> dict[str, str]:
        """clef_import(keyJSON, oldPassphrase, newPassphrase)."""
        if len(params) != 3 or not isinstance(params[0], dict) or not isinstance(params[1], str) \
                or not isinstance(params[2], str):
            raise InvalidParams("want [keyJSON, oldPassphrase, newPassphrase]")
        try:
            validate_password_format(params[2])
        except ValueError as exc:
            raise SignerError(f"password requirements not met: {exc}") from None
        account = await trio.to_thread.run_sync(self.accounts.keystore.import_key_json,
                                                params[0], params[1], params[2])
        return {"address": to_checksum(account.address), "url": account.url}

    async def new(self, params: list[Any]) -> str:
        """clef_new: no approval (the UI is asking), password prompts as account_new."""
        password = await self.api.ask_new_password()
        account = await self.api.create_account(password)
        return "0x" + account.address.hex()

