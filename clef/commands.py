"""The subcommands of `clef` (the default one runs the signer daemon)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from clef.cli import UsageError, build_config
from clef.errors import ClefError
from clef.eth.address import to_checksum
from clef.prompt import InputClosed, read_line


def run_command(values: dict[str, Any], positionals: list[str]) -> int:
    """Dispatch on the subcommand; return the exit status."""
    command = positionals[0] if positionals else None
    args = positionals[1:]
    config = build_config(values)
    handlers = {
        None: _signer, "newaccount": _newaccount, "importraw": _importraw,
        "list-accounts": _list_accounts, "list-wallets": _list_wallets, "gendoc": _gendoc,
        "init": _admin, "attest": _admin, "setpw": _admin, "delpw": _admin, "migrate": _admin,
        "audit": _audit,
    }
    handler = handlers.get(command)
    if handler is None:
        raise UsageError(f'invalid command: "{command}"')
    try:
        return handler(config, command, args)
    except InputClosed as exc:
        print(str(exc), file=sys.stderr)
        return 1


def _signer(config: Any, command: str | None, args: list[str]) -> int:
    import trio

    from keyd.daemon import run_daemon

    if args:
        raise UsageError(f'invalid command: "{args[0]}"')
    if config.stdio_ui_test and not config.stdio_ui:
        raise UsageError("--stdio-ui-test requires --stdio-ui")
    ui = None
    if not config.stdio_ui:
        from keyd.ui.console import ConsoleUI

        keystore = _keystore(config)

        async def list_accounts() -> list[tuple[str, str]]:
            accounts = await trio.to_thread.run_sync(keystore.accounts)
            return [(to_checksum(a.address), a.url) for a in accounts]

        ui = ConsoleUI(sys.stdin, sys.stdout, list_accounts=list_accounts)
        if not config.suppress_bootwarn and not trio.run(ui.boot_warning):
            print("aborted by user", file=sys.stderr)
            return 1
    elif not config.suppress_bootwarn:
        from keyd.ui.render import BOOT_WARNING

        sys.stderr.write("\n" + BOOT_WARNING)
    try:
        return trio.run(run_daemon, config, ui)
    except BaseExceptionGroup as group:
        fatal, _ = group.split((ClefError, OSError))
        if fatal is None:
            raise
        first = _first_leaf(fatal)
        print(f"Fatal: {first.message if isinstance(first, ClefError) else first}", file=sys.stderr)
        return 1
    except (ClefError, OSError) as exc:
        print(f"Fatal: {exc.message if isinstance(exc, ClefError) else exc}", file=sys.stderr)
        return 1


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _keystore(config: Any) -> Any:
    from keyd.keystore import Keystore

    return Keystore(config.keystore, light=config.light_kdf)


def _newaccount(config: Any, command: str | None, args: list[str]) -> int:
    from keyd.passwords import validate_password_format

    keystore = _keystore(config)
    for attempt in range(3):
        print("## New account password\n")
        password = read_line(
            f"Please enter a password for the new account to be created (attempt {attempt} of 3)\n> ",
            secret=True)
        try:
            validate_password_format(password)
        except ValueError as exc:
            print(f"## Error \nAccount creation attempt #{attempt + 1} failed due to password "
                  f"requirements: {exc}\n")
            continue
        account = keystore.new_account(password)
        print(f"Generated account {to_checksum(account.address)}")
        return 0
    print("account creation failed", file=sys.stderr)
    return 1


def _importraw(config: Any, command: str | None, args: list[str]) -> int:
    from keyd.keycrypto import wipe
    from keyd.passwords import validate_password_format

    if len(args) != 1:
        print("<keyfile> must be given as first argument", file=sys.stderr)
        return 1
    try:
        text = Path(args[0]).read_text().strip()
        key = bytearray(bytes.fromhex(text.removeprefix("0x")))
    except (OSError, ValueError) as exc:
        print(f"Failed to load the private key: {exc}", file=sys.stderr)
        return 1
    try:
        print("## Password\n")
        first = read_line("Please enter a password for the imported account\n> ", secret=True)
        print("## Password\n")
        second = read_line("Please repeat the password you just entered\n> ", secret=True)
        if first != second:
            print("Passwords do not match", file=sys.stderr)
            return 1
        try:
            validate_password_format(first)
        except ValueError as exc:
            print(f"password requirements not met: {exc}", file=sys.stderr)
            return 1
        try:
            account = _keystore(config).import_raw_key(bytes(key), first)
        except Exception as exc:  # noqa: BLE001 - report any keystore failure as a CLI message
            print(str(exc), file=sys.stderr)
            return 1
    finally:
        wipe(key)
    print(f"## Info \nKey imported:\n  Address {to_checksum(account.address)}\n  Keystore file: "
          f"{account.path}\n\nThe key is now encrypted; losing the password will result in "
          "permanently losing\naccess to the key and all associated funds!\n\nMake sure to backup "
          "keystore and passwords in a safe location.\n")
    return 0


def _list_accounts(config: Any, command: str | None, args: list[str]) -> int:
    accounts = _keystore(config).accounts()
    if not accounts:
        print("\nThe keystore is empty.")
    for account in accounts:
        print(f"{to_checksum(account.address)} ({account.url})")
    return 0


def _list_wallets(config: Any, command: str | None, args: list[str]) -> int:
    accounts = _keystore(config).accounts()
    if not accounts:
        print("\nThere are no wallets.")
    for index, account in enumerate(accounts):
        print(f"- Wallet {index} at {account.url} (Locked )")
        print(f"  -Account 0: {to_checksum(account.address)} ({account.url})")
    return 0


def _gendoc(config: Any, command: str | None, args: list[str]) -> int:
    from clef.gendoc import render

    sys.stdout.write(render())
    return 0


def _admin(config: Any, command: str | None, args: list[str]) -> int:
    from clef.admin_cli import run_admin

    return run_admin(config, command or "", args)


def _audit(config: Any, command: str | None, args: list[str]) -> int:
    if len(args) != 2 or args[0] != "verify":
        raise UsageError("usage: clef audit verify FILE [--expect SEQ:SHA256]")
    from keyd.auditlog import main_verify

    return main_verify(Path(args[1]), expect=config.audit_expect or None)
