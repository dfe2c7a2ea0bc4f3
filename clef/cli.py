"""The `clef` command: flags and subcommands, then it becomes keyd.

Flags take one or two dashes and may stand before or after the subcommand, as the reference's
CLI library allowed (`clef -keystore /my/keystore -chainid 4`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clef import __version__

BOOL, STR, INT, FLOAT = "bool", "str", "int", "float"


@dataclass(frozen=True)
class Flag:
    """One global flag: name, kind, default and the usage text shown by --help."""

    name: str
    kind: str
    default: Any
    usage: str


FLAGS: tuple[Flag, ...] = (
    Flag("loglevel", INT, 3, "log level to emit to the screen"),
    Flag("keystore", STR, "~/.ethereum/keystore", "Directory for the keystore"),
    Flag("configdir", STR, "~/.clef", "Directory for Clef configuration"),
    Flag("chainid", INT, 1, "Chain id to use for signing (1=mainnet, 17000=Holesky)"),
    Flag("lightkdf", BOOL, False,
         "Reduce key-derivation RAM & CPU usage at some expense of KDF strength"),
    Flag("pcscdpath", STR, "/run/pcscd/pcscd.comm",
         "Path to the smartcard daemon (pcscd) socket file (hardware wallets: not available yet)"),
    Flag("http.addr", STR, "localhost", "HTTP-RPC server listening interface"),
    Flag("http.vhosts", STR, "localhost",
         "Comma separated list of virtual hostnames from which to accept requests (server "
         "enforced). Accepts '*' wildcard."),
    Flag("ipcdisable", BOOL, False, "Disable the IPC-RPC server"),
    Flag("ipcpath", STR, "",
         "Filename for IPC socket/pipe within the datadir (explicit paths escape it); an existing "
         "directory gets clef.ipc inside it"),
    Flag("http", BOOL, False, "Enable the HTTP-RPC server"),
    Flag("http.port", INT, 8550, "HTTP-RPC server listening port"),
    Flag("signersecret", STR, "",
         "A file containing the (encrypted) master seed to encrypt Clef data, e.g. keystore "
         "credentials and ruleset hash"),
    Flag("4bytedb-custom", STR, "./4byte-custom.json",
         "File used for writing new 4byte-identifiers submitted via API"),
    Flag("auditlog", STR, "audit.log", 'File used to emit audit logs. Set to "" to disable'),
    Flag("rules", STR, "", "Path to the rule file to auto-authorize requests with"),
    Flag("rules-required", BOOL, False,
         "Refuse to start when --rules is given but the rules cannot be enabled"),
    Flag("stdio-ui", BOOL, False,
         "Use STDIN/STDOUT as a channel for an external UI. This means that an STDIN/STDOUT is "
         "used for RPC-communication with a e.g. a graphical user interface, and can be used when "
         "Clef is started by an external process."),
    Flag("stdio-ui-test", BOOL, False,
         "Mechanism to test interface between Clef and UI. Requires 'stdio-ui'."),
    Flag("advanced", BOOL, False,
         "If enabled, issues warnings instead of rejections for suspicious requests. Default off"),
    Flag("suppress-bootwarn", BOOL, False, "If set, does not show the warning during boot"),
    Flag("approval-timeout", FLOAT, 60.0,
         "Seconds a request may wait for the UI (incl. its password prompt); 0 = wait forever"),
    Flag("max-pending", INT, 64, "Maximum number of requests waiting for approval at once"),
    Flag("expect", STR, "",
         "With `audit verify`: the anchor SEQ:SHA256 of the last line, kept elsewhere, so that "
         "removed trailing lines are detected"),
    Flag("unlock-ttl", FLOAT, 0.0,
         "Keep a decrypted key in keyd for this many seconds after its last use (0 = decrypt for "
         "every signature, as the reference)"),
)
_BY_NAME = {f.name: f for f in FLAGS}

SUBCOMMANDS = {
    "init": "Initialize the signer, generate secret storage",
    "attest": "Attest that a js-file is to be used",
    "setpw": "Store a credential for a keystore file",
    "delpw": "Remove a credential for a keystore file",
    "migrate": "Adopt a reference configdir: add the tamper-evident manifest to its vault",
    "newaccount": "Create a new account",
    "importraw": "Import a hex-encoded private key.",
    "list-accounts": "List accounts in the keystore",
    "list-wallets": "List wallets",
    "gendoc": "Generate documentation about json-rpc format",
    "audit": "Audit-log tools: `clef audit verify FILE`",
}


class UsageError(Exception):
    """A command line the CLI cannot accept."""


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split argv into flag values and positionals (subcommand first)."""
    values: dict[str, Any] = {f.name: f.default for f in FLAGS}
    values["help"] = values["version"] = False
    positionals: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            positionals.extend(argv[index:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            values["help"] = True
            continue
        if name in ("v", "version"):
            values["version"] = True
            continue
        flag = _BY_NAME.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind == BOOL:
            if has_value:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f"invalid boolean value {value!r} for -{name}")
                values[name] = value.lower() in ("true", "1")
            else:
                values[name] = True
            continue
        if not has_value:
            if index >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[index]
            index += 1
        try:
            values[name] = int(value) if flag.kind == INT else float(value) if flag.kind == FLOAT \
                else value
        except ValueError:
            raise UsageError(f"invalid value {value!r} for flag -{name}") from None
    return values, positionals


def help_text() -> str:
    """The --help page."""
    lines = ["NAME:", "   clef - Manage Ethereum account operations", "",
             "USAGE:", "   clef [global options] [command] [command options] [arguments...]", "",
             "VERSION:", f"   {__version__}", "", "COMMANDS:"]
    lines += [f"   {name:<14} {usage}" for name, usage in SUBCOMMANDS.items()]
    lines += ["", "GLOBAL OPTIONS:"]
    for flag in FLAGS:
        default = "" if flag.kind == BOOL else f" (default: {flag.default!r})"
        lines.append(f"   --{flag.name:<20} {flag.usage}{default}")
    lines += ["   --help, -h             show help", "   --version, -v          print the version"]
    return "\n".join(lines) + "\n"


def build_config(values: dict[str, Any]) -> Any:
    """Turn flag values into a keyd Config."""
    from keyd.config import Config

    def path(text: str) -> Path:
        return Path(text).expanduser().absolute()

    if values["chainid"] < 0:
        raise UsageError("invalid chain id")
    return Config(
        keystore=path(values["keystore"]),
        configdir=path(values["configdir"]),
        chain_id=values["chainid"],
        light_kdf=values["lightkdf"],
        http=values["http"],
        http_addr=values["http.addr"],
        http_port=values["http.port"],
        http_vhosts=[v.strip().lower() for v in values["http.vhosts"].split(",") if v.strip()],
        ipc_disable=values["ipcdisable"],
        ipc_path=values["ipcpath"],
        signer_secret=path(values["signersecret"]) if values["signersecret"] else None,
        fourbyte_custom=Path(values["4bytedb-custom"]),
        audit_log=values["auditlog"],
        rules=path(values["rules"]) if values["rules"] else None,
        rules_required=values["rules-required"],
        stdio_ui=values["stdio-ui"],
        stdio_ui_test=values["stdio-ui-test"],
        advanced=values["advanced"],
        suppress_bootwarn=values["suppress-bootwarn"],
        approval_timeout=values["approval-timeout"],
        max_pending=values["max-pending"],
        unlock_ttl=values["unlock-ttl"],
        log_level=values["loglevel"],
        audit_expect=values["expect"],
    )


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                               0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF]})


class SafeFormatter(logging.Formatter):
    """Escapes control characters in log lines: a caller's text in a log message must not be able
    to move the cursor or repaint the console UI's prompt on the same terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, then escape C0/C1 controls and bidi/zero-width characters."""
        return super().format(record).translate(_CONTROL)


def setup_logging(level: int) -> None:
    """Logs go to stderr only (stdout may be the UI channel), escaped."""
    mapping = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO,
               4: logging.DEBUG, 5: logging.DEBUG}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(levelname)-5s [%(asctime)s] %(message)s",
                                       datefmt="%m-%d|%H:%M:%S"))
    logging.basicConfig(level=mapping.get(level, logging.INFO), handlers=[handler])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `clef` console script."""
    from clef.commands import run_command

    try:
        values, positionals = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"Incorrect Usage: {exc}\n", file=sys.stderr)
        print(help_text(), file=sys.stderr)
        raise SystemExit(2) from None
    if values["help"]:
        sys.stdout.write(help_text())
        return
    if values["version"]:
        print(f"clef version {__version__}")
        return
    setup_logging(values["loglevel"])
    try:
        code = run_command(values, positionals)
    except UsageError as exc:
        print(f"Fatal: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code)
