"""The signing methods of the external API: approval first, account lookup after, keys last.

Order for every signing request (the reference's, hardened):
  parse (InvalidParams) -> validate (policy worker) -> approval session {ruleset or UI decision,
  account lookup, password} -> decrypt + sign (keyd only) -> notify -> audit.
The approval happens before the account is looked up, so a caller cannot enumerate accounts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from clef.errors import (
    ClefError,
    InternalError,
    InvalidParams,
    RequestDenied,
    ValidationFailed,
)
from clef.eth import secp
from clef.eth.address import MixedcaseAddress, to_checksum
from clef.eth.tx import build_transaction
from clef.eth.tx.args import SendTxArgs, check_chain_id, parse_send_tx_args
from keyd.api import SignerAPI
from keyd.config import Config
from keyd.keycrypto import wipe

log = logging.getLogger("keyd.signing")

MAX_SELECTOR = 1024


@dataclass(frozen=True)
class Validation:
    """What the policy worker says about a transaction."""

    messages: list[dict[str, str]]
    learned: tuple[str, str] | None = None

    def warnings(self) -> list[str]:
        """WARNING and CRITICAL texts, in order."""
        return [m["message"] for m in self.messages if m["type"] in ("WARNING", "CRITICAL")]


class Validator(Protocol):
    """Transaction validation (runs in the sandboxed policy worker)."""

    async def validate_tx(self, tx: dict[str, Any], selector: str | None,
                          chain_id: int) -> Validation:
        """call_info messages for tx; raises ClefError for hard errors."""
        ...


class Rules(Protocol):
    """An attested ruleset (None when rules are off)."""

    async def rule(self, fn: str, request: dict[str, Any]) -> str | None:
        """'Approve', 'Reject' or None (fall through to the UI)."""
        ...

    async def notify(self, fn: str, request: dict[str, Any]) -> bool:
        """OnApprovedTx / OnSignerStartup; False when it may not have been recorded."""
        ...


class Credentials(Protocol):
    """Stored account passwords (encrypted storage)."""

    def stored_password(self, address_eip55: str) -> str | None:
        """The stored password, or None (absent or unreadable: then the UI is asked)."""
        ...


class Signer:
    """Implements account_signTransaction, account_signData, account_signTypedData,
    account_signGnosisSafeTx and account_ecRecover on top of the SignerAPI's gate and accounts."""

    def __init__(self, api: SignerAPI, config: Config, validator: Validator,
                 rules: Rules | None = None, credentials: Credentials | None = None,
                 on_learned: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        self.api = api
        self.config = config
        self.validator = validator
        self.rules = rules
        self.credentials = credentials
        self.on_learned = on_learned
        # Rule evaluation -> signing -> OnApprovedTx, one transaction at a time (invariant 7).
        self.tx_lock = trio.Lock()

    # --- transactions ---

    async def sign_transaction(self, params: list[Any], meta: dict[str, str]) -> dict[str, Any]:
        """account_signTransaction(args, methodSelector?)."""
        args = parse_send_tx_args(params[0])
        selector = params[1]
        if selector is not None and not isinstance(selector, str):
            raise InvalidParams("invalid argument 1: method selector must be a string")
        if selector is not None and len(selector) > MAX_SELECTOR:
            raise InvalidParams(f"invalid argument 1: method selector longer than {MAX_SELECTOR} "
                                "characters")
        chain_id = self.config.chain_id
        validation = await self.validator.validate_tx(args.to_json(), selector, chain_id)
        if validation.warnings() and not self.config.advanced:
            log.warning("Signing aborted due to warnings. In order to continue despite warnings, "
                        "please use the flag '--advanced'.")
            raise ValidationFailed("validation failed: " + ",".join(validation.warnings()))
        check_chain_id(args, chain_id)
        request = {"transaction": args.to_json(), "call_info": validation.messages or None,
                   "meta": meta}
        gate = self.api.gate
        async with self.tx_lock if self.rules is not None else contextlib.nullcontext():
            decision = await self._rule("ApproveTx", request)
            async with gate.session("transaction"):
                if decision == "Approve":
                    approved = args
                else:
                    approved_json = await gate.approve_tx(request)
                    approved = await self._revalidate(approved_json, args, chain_id)
                account = await self.api.accounts.find(approved.from_.raw)
                key, password = await self._key_or_password(
                    account.address, "Account password",
                    "Please enter the password for account {account}")
            result = await self._sign_tx(approved, chain_id, account.address, key, password)
            if validation.learned is not None and self.on_learned is not None and approved == args:
                # Recorded only once a signature was made: denied callers cannot fill the file.
                await self.on_learned(*validation.learned)
            await self.api.gate.ui.on_approved_tx(result)
            if self.rules is not None:
                await self.rules.notify("OnApprovedTx", result)
        return result

    async def _revalidate(self, approved_json: dict[str, Any], original: SendTxArgs,
                          chain_id: int) -> SendTxArgs:
        """A UI-modified transaction is parsed and checked again: a UI cannot switch the chain id
        or produce an invalid transaction (the reference signed whatever came back)."""
        if approved_json == original.to_json():
            return original  # exactly what the UI was shown: parsed and validated already
        try:
            approved = parse_send_tx_args(approved_json)
            check_chain_id(approved, chain_id)
        except ClefError as exc:
            log.warning("UI returned an invalid transaction: %s", exc.message)
            raise RequestDenied(f"request denied: the UI returned an invalid transaction: "
                                f"{exc.message}") from None
        if approved != original:
            for name in ("from_", "to", "gas", "gas_price", "max_fee_per_gas",
                         "max_priority_fee_per_gas", "value", "nonce", "data"):
                if getattr(approved, name) != getattr(original, name):
                    log.info("%s changed by UI", name)
            await self.validator.validate_tx(approved.to_json(), None, chain_id)
        return approved

    async def _sign_tx(self, args: SendTxArgs, chain_id: int, address: bytes,
                       key: bytearray | None, password: str | None) -> dict[str, Any]:
        unsigned = build_transaction(args, chain_id)
        digest = unsigned.signing_hash()
        recid, r, s = await self._sign_digest(address, digest, key, password)
        signed = unsigned.sign(recid, r, s)
        return {"raw": "0x" + signed.raw.hex(), "tx": signed.to_json()}

    # --- keys ---

    async def _key_or_password(self, address: bytes, title: str,
                               prompt: str) -> tuple[bytearray | None, str | None]:
        """A cached key, a stored password, or a password from the UI (inside the session).

        prompt's "{account}" is filled in only if the UI is asked (EIP-55 costs a keccak)."""
        cached = self.api.accounts.cached_key(address)
        if cached is not None:
            return cached, None
        if self.credentials is not None:
            stored = self.credentials.stored_password(to_checksum(address))
            if stored is not None:
                return None, stored
        return None, await self.api.gate.ask_password(
            title, prompt.format(account=to_checksum(address)))

    async def _sign_digest(self, address: bytes, digest: bytes, key: bytearray | None,
                           password: str | None) -> tuple[int, int, int]:
        owned = key is None
        if key is None:
            if password is None:
                raise InternalError("no key and no password")
            try:
                key = await self.api.accounts.decrypt(address, password)
            except ClefError as exc:
                await self.api.gate.ui.show_error(exc.message)
                raise
        try:
            return secp.sign_hash(bytes(key), digest)
        finally:
            if owned:
                wipe(key)

    async def _rule(self, fn: str, request: dict[str, Any]) -> str | None:
        if self.rules is None:
            return None
        decision = await self.rules.rule(fn, request)
        if decision == "Reject":
            raise RequestDenied()
        return decision

    # --- listing ---

    async def list_accounts(self, params: list[Any], meta: dict[str, str]) -> list[str]:
        """account_list: ApproveListing decides first ("Approve" lists every account, as the
        reference); without a decision the UI chooses the subset."""
        gate = self.api.gate
        async with gate.session("listing"):
            offered = await self.api.accounts.wire_accounts()
            decision = await self._rule("ApproveListing", {"accounts": offered, "meta": meta})
            if decision == "Approve":
                return [str(account["address"]).lower() for account in offered]
            return await gate.approve_listing(offered, meta)

    # --- data ---

    async def sign_prepared(self, address: MixedcaseAddress, request: dict[str, Any],
                            digest: bytes, v_offset: int) -> str:
        """Approve request (rules, then UI), then look up the account, then sign digest."""
        gate = self.api.gate
        try:
            async with gate.session("signing"):
                decision = await self._rule("ApproveSignData", request)
                if decision != "Approve":
                    await gate.approve_sign_data(request)
                account = await self.api.accounts.find(address.raw)
                key, password = await self._key_or_password(
                    account.address, "Password for signing",
                    "Please enter password for signing data with account {account}")
        except ClefError as exc:
            # The reference reports every failure after parsing to the UI as well.
            await gate.ui.show_error(exc.message)
            raise
        # Outside the try: _sign_digest reports a decryption failure to the UI itself (once).
        recid, r, s = await self._sign_digest(account.address, digest, key, password)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid + v_offset])
        return "0x" + signature.hex()




async def register_signing(api: SignerAPI, config: Config, nursery: trio.Nursery) -> Signer:
    """Create the Signer with its collaborators (started in nursery) and register its handlers."""
    from keyd.datasign import register_data_signing
    from keyd.wiring import build_signer

    signer = await build_signer(api, config, nursery)
    api.register("account_signTransaction", signer.sign_transaction)
    api.register("account_list", signer.list_accounts)
    register_data_signing(api, signer)
    return signer


__all__ = ["Signer", "Validation", "register_signing"]
