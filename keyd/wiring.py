"""Start-up of the signing machinery: master seed and vault, rules attestation, the policy
worker (validation and rules), the audit log, and the Signer that ties them together.

Order as the reference: the master password is the first UI request (before
ui_onSignerStartup); any failure to open the seed leaves clef running without rules or stored
credentials, unless --rules-required was given and rules cannot be enabled.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import trio

from clef.errors import ClefError, SignerError, StorageTampered
from keyd.api import SignerAPI
from keyd.audited import audit_wrapper
from keyd.auditlog import AuditLog
from keyd.config import Config
from keyd.keycrypto import wipe
from keyd.masterseed import load_master_seed
from keyd.policy_client import PolicyClient
from keyd.signing import Signer, Validation
from keyd.vault import Vault
from policy.fourbyte import (
    CustomDB,
    FourByteDB,
    default_cache_path,
    read_custom_db,
    write_custom_db,
)
from policy.rules import MemoryStorage
from sandbox.spawn import spawn_worker

log = logging.getLogger("keyd")


class StartupError(ClefError):
    """clef cannot start as configured (e.g. --rules-required but rules cannot be enabled)."""


class PolicyValidator:
    """Adapts the policy worker's validate_result to the Signer; fails closed."""

    def __init__(self, client: PolicyClient) -> None:
        self.client = client

    async def validate_tx(self, tx: dict[str, Any], selector: str | None,
                          chain_id: int) -> Validation:
        """Validate in the sandbox; a hard error or an unavailable worker refuses the request."""
        result = await self.client.validate_tx(tx, selector, chain_id)
        if result.error is not None:
            raise SignerError(result.error)
        learned = result.learned[0] if result.learned else None
        return Validation([m.to_wire() for m in result.messages], learned)


class VaultCredentials:
    """Stored passwords; a tampered entry means "ask the UI", never "no password"."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def stored_password(self, address_eip55: str) -> str | None:
        """The stored password for an account, or None."""
        try:
            return self.vault.stored_password(address_eip55)
        except StorageTampered as exc:
            log.warning("Failed to decrypt key (stored credential unusable): %s", exc)
            return None


class CustomSelectors:
    """The --4bytedb-custom file, extended with verified selectors after a successful signing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: CustomDB = read_custom_db(path)

    def learn(self, selector_hex: str, signature: str) -> bool:
        """Record a caller-supplied selector that verified against signed calldata."""
        try:
            if self.db.learn(bytes.fromhex(selector_hex.removeprefix("0x")), signature):
                write_custom_db(self.path, self.db.serialise())
                return True
        except (ValueError, OSError) as exc:  # the reference ignored write errors too
            log.warning("could not record 4byte selector: %s", exc)
        return False


async def _open_vault(api: SignerAPI, config: Config) -> Vault | None:
    seed_file = config.master_seed_path
    if not seed_file.exists():
        return None
    try:
        password = await api.gate.ask_password(
            "Master Password", "Please enter the password to decrypt the master seed")
        seed = await trio.to_thread.run_sync(load_master_seed, seed_file, password)
        try:
            return await trio.to_thread.run_sync(Vault.open, config.configdir, seed)
        finally:
            wipe(seed)
    except (ClefError, StorageTampered, OSError) as exc:
        message = exc.message if isinstance(exc, ClefError) else str(exc)
        log.warning("Failed to open master, rules disabled err=%s", message)
        return None


def _attested_ruleset(config: Config, vault: Vault | None) -> str | None:
    if config.rules is None:
        return None
    try:
        text = config.rules.read_bytes()
    except OSError as exc:
        _rules_off(config, f"Could not load rules, disabling: {exc}")
        return None
    if vault is None:
        _rules_off(config, "Rules need an unlocked master seed (clef init), disabling")
        return None
    digest = hashlib.sha256(text).hexdigest()
    try:
        attested = vault.attested_ruleset()
    except StorageTampered as exc:
        _rules_off(config, f"Ruleset attestation unreadable, disabling: {exc}")
        return None
    if attested != digest:
        _rules_off(config, f"Rule hash not attested, disabling hash={digest} "
                                  f"attested={attested}")
        return None
    try:
        ruleset = text.decode("utf-8")
    except UnicodeDecodeError:
        _rules_off(config, "Rules file is not UTF-8, disabling")
        return None
    log.info("Rule engine configured")
    return ruleset


def _rules_off(config: Config, reason: str) -> None:
    log.warning(reason)
    if config.rules_required:
        raise StartupError(f"--rules-required: {reason}")
    return None


async def build_signer(api: SignerAPI, config: Config, nursery: trio.Nursery) -> Signer:
    """Open storage, start the policy worker and audit log, and return the Signer."""
    vault = await _open_vault(api, config)
    ruleset = _attested_ruleset(config, vault)
    # One cache per user, shared by every configdir: built once (~1 s), then only mapped.
    cache = default_cache_path()
    await trio.to_thread.run_sync(lambda: FourByteDB.open(cache).close())
    custom_path = config.fourbyte_custom.absolute()
    custom = CustomSelectors(custom_path)
    log.info("Loaded 4byte database local=%s", custom_path)
    extra = ["--fourbyte", str(cache), "--custom", str(custom_path)]
    storage = vault.rule_storage() if vault is not None else MemoryStorage()
    client = PolicyClient(ruleset=ruleset, storage=storage,
                          spawn=lambda: spawn_worker("policy", "policy.worker", extra_args=extra))
    await nursery.start(client.run)
    if config.audit_log:
        audit = AuditLog(config.audit_log)
        await nursery.start(audit.run)
        api.add_middleware(audit_wrapper(audit))
        log.info("Audit logs configured file=%s", config.audit_log)
    async def learned(selector: str, signature: str) -> None:
        if await trio.to_thread.run_sync(custom.learn, selector, signature):
            await client.learn(selector, signature)

    return Signer(api, config, PolicyValidator(client),
                  rules=client if ruleset is not None else None,
                  credentials=VaultCredentials(vault) if vault is not None else None,
                  on_learned=learned)
