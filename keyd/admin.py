"""The storage subcommands (init, attest, setpw, delpw, migrate) as plain functions.

The CLI collects the passwords (terminal prompts, or stdin when it is not a terminal) and calls
these; each returns the reference's log or print text. Errors are SignerError/InvalidParams with
the reference's messages, for the CLI to print and exit non-zero.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clef.errors import InvalidParams
from clef.eth.address import is_hex_address, to_checksum
from keyd.keycrypto import wipe
from keyd.masterseed import create_master_seed, load_master_seed, seed_path
from keyd.passwords import validate_password_format
from keyd.vault import STORES, Vault, migrate_vault

# Prompts and texts the CLI shows around these operations (reference wording).
INIT_PROMPT = (
    "The master seed of clef will be locked with a password.\n"
    "Please specify a password. Do not forget this password!"
)
SEED_PROMPT = "Decrypt master seed of clef"
SETPW_PROMPT = "Please enter a password to store for this address:"
NEEDS_ARGUMENT = "This command requires an argument."
NEEDS_ADDRESS = "This command requires an address to be passed as an argument"
MISMATCH_TEXT = "Passwords do not match"

INIT_ADVICE = """
This is required to be able to store credentials, such as:
* Passwords for keystores (used by rule engine)
* Storage for JavaScript auto-signing rules
* Hash of JavaScript rule-file

You should treat 'masterseed.json' with utmost secrecy and make a backup of it!
* The password is necessary but not enough, you need to back up the master seed too!
* The master seed does not contain your accounts, those need to be backed up separately!

"""


@dataclass(frozen=True)
class AdminResult:
    """What an operation reports: a message and its key/value context (a log record)."""

    message: str
    fields: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """The record as one line of text: `message key=value ...`."""
        return " ".join([self.message, *(f"{key}={value}" for key, value in self.fields)])


def check_new_seed_password(password: str) -> None:
    """The rule `init` applies; InvalidParams `invalid password: <reason>` (the CLI re-prompts)."""
    try:
        validate_password_format(password)
    except ValueError as exc:
        raise InvalidParams(f"invalid password: {exc}") from None


def init(
    configdir: str | os.PathLike[str],
    password: str,
    *,
    light: bool,
    signersecret: str | None = None,
) -> AdminResult:
    """`clef init`: generate the master seed; the result's message is the reference's print-out.

    Unlike the reference, `--signersecret` is honoured (the seed is written there).
    """
    check_new_seed_password(password)
    Path(configdir).mkdir(mode=0o700, parents=True, exist_ok=True)
    location = create_master_seed(seed_path(configdir, signersecret), password, light=light)
    return AdminResult(f"A master seed has been generated into {location}\n{INIT_ADVICE}")


@contextmanager
def _open_vault(
    configdir: str | os.PathLike[str], seed_password: str, signersecret: str | None
) -> Iterator[Vault]:
    seed = load_master_seed(seed_path(configdir, signersecret), seed_password)
    try:
        vault = Vault.open(configdir, seed)
    finally:
        wipe(seed)
    with vault:
        yield vault


def checksummed_address(address: str) -> str:
    """The EIP-55 form of a hex address; InvalidParams `Invalid address specified: <a>`."""
    if not isinstance(address, str) or not is_hex_address(address):
        raise InvalidParams(f"Invalid address specified: {address}")
    hex_part = address[2:] if address[:2] in ("0x", "0X") else address
    return to_checksum(bytes.fromhex(hex_part))


def attest(
    configdir: str | os.PathLike[str],
    seed_password: str,
    sha256_hex: str,
    *,
    signersecret: str | None = None,
) -> AdminResult:
    """`clef attest <sha256>`: store the ruleset hash (validated, lowercased)."""
    if not isinstance(sha256_hex, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256_hex):
        # Refused before the seed is decrypted or the vault created.
        raise InvalidParams("invalid sha256: expected 64 hexadecimal digits")
    with _open_vault(configdir, seed_password, signersecret) as vault:
        stored = vault.attest(sha256_hex)
    return AdminResult("Ruleset attestation updated", (("sha256", stored),))


def setpw(
    configdir: str | os.PathLike[str],
    seed_password: str,
    address: str,
    password: str,
    *,
    signersecret: str | None = None,
) -> AdminResult:
    """`clef setpw <address>`: store the keystore password for the account."""
    checksummed = checksummed_address(address)
    with _open_vault(configdir, seed_password, signersecret) as vault:
        vault.set_password(checksummed, password)
    return AdminResult("Credential store updated", (("set", checksummed),))


def delpw(
    configdir: str | os.PathLike[str],
    seed_password: str,
    address: str,
    *,
    signersecret: str | None = None,
) -> AdminResult:
    """`clef delpw <address>`: remove the stored password for the account."""
    checksummed = checksummed_address(address)
    with _open_vault(configdir, seed_password, signersecret) as vault:
        vault.del_password(checksummed)
    return AdminResult("Credential store updated", (("unset", checksummed),))


def migrate(
    configdir: str | os.PathLike[str],
    seed_password: str,
    *,
    signersecret: str | None = None,
) -> AdminResult:
    """`clef migrate`: adopt a reference vault (or re-adopt files changed outside clef)."""
    seed = load_master_seed(seed_path(configdir, signersecret), seed_password)
    try:
        report = migrate_vault(configdir, seed)
    finally:
        wipe(seed)
    fields = [("vault", str(report.vault)), ("counter", str(report.counter))]
    fields += [(name.removesuffix(".json"), str(report.entries[name])) for name in STORES]
    message = "Vault manifest re-created" if report.had_manifest else "Vault migrated"
    return AdminResult(message, tuple(fields))
