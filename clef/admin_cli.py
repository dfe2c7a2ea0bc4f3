"""Prompting for `clef init | attest | setpw | delpw | migrate`; the work is in keyd.admin."""

from __future__ import annotations

import sys
from typing import Any

from clef.errors import ClefError
from clef.prompt import read_line
from keyd import admin


def _new_password(intro: str, retry_on_invalid: bool) -> str:
    print(intro)
    while True:
        first = read_line("Password: ", secret=True)
        second = read_line("Repeat password: ", secret=True)
        if first != second:
            raise ClefError(admin.MISMATCH_TEXT)
        if not retry_on_invalid:
            return first
        try:
            admin.check_new_seed_password(first)
        except ClefError as exc:
            print(exc.message)
            if not sys.stdin.isatty():
                raise
            continue
        return first


def _seed_password() -> str:
    print(admin.SEED_PROMPT)
    return read_line("Password: ", secret=True)


def run_admin(config: Any, command: str, args: list[str]) -> int:
    """Run one admin subcommand; messages as the reference prints or logs them."""
    secret = str(config.signer_secret) if config.signer_secret else None
    try:
        if command == "init":
            result = admin.init(config.configdir, _new_password(admin.INIT_PROMPT, True),
                                light=config.light_kdf, signersecret=secret)
            print(result.message)
            return 0
        if command == "migrate":
            result = admin.migrate(config.configdir, _seed_password(), signersecret=secret)
        else:
            if len(args) != 1:
                print(admin.NEEDS_ARGUMENT, file=sys.stderr)
                return 1
            if command == "attest":
                result = admin.attest(config.configdir, _seed_password(), args[0],
                                      signersecret=secret)
            elif command == "setpw":
                admin.checksummed_address(args[0])  # fail before asking for anything
                print(admin.SETPW_PROMPT)
                password = read_line("Password: ", secret=True)
                repeat = read_line("Repeat password: ", secret=True)
                if password != repeat:
                    print(admin.MISMATCH_TEXT, file=sys.stderr)
                    return 1
                result = admin.setpw(config.configdir, _seed_password(), args[0], password,
                                     signersecret=secret)
            else:
                result = admin.delpw(config.configdir, _seed_password(), args[0],
                                     signersecret=secret)
    except ClefError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(result.text(), file=sys.stderr)
    return 0
