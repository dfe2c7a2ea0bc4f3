"""The `clef` command line as a real process: flags, --help/--version and the account subcommands.

The importraw / list-accounts / list-wallets cases and their exact texts come from
expected.json → clef_cli (geth's cmd/clef/consolecmd_test.go).
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLEF, CONFORMANCE
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json

from clef import __version__
from clef.cli import FLAGS, SUBCOMMANDS

CLI_CASES: dict[str, Any] = json.loads((CONFORMANCE / "expected.json").read_text())["clef_cli"]
KEY_HEX: str = CLI_CASES["private_key_file_content"]
KEY_ADDRESS = "0x9160DC9105f7De5dC5E7f3d97ef11DA47269BdA6"
GOOD_PASSWORD = "myverylongpassword"

# The reference's global flags (inventory §1.1), written out independently of clef/cli.py.
REFERENCE_FLAGS = [
    "loglevel", "keystore", "configdir", "chainid", "lightkdf", "pcscdpath", "http.addr",
    "http.vhosts", "ipcdisable", "ipcpath", "http", "http.port", "signersecret",
    "4bytedb-custom", "auditlog", "rules", "stdio-ui", "stdio-ui-test", "advanced",
    "suppress-bootwarn",
]
REFERENCE_COMMANDS = ["init", "attest", "setpw", "delpw", "newaccount", "importraw", "gendoc",
                      "list-accounts", "list-wallets"]


def clef(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run clef with piped stdin; capture text output."""
    return subprocess.run([CLEF, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False)


def geth_test_args(keystore: Path) -> list[str]:
    """The flags geth's consolecmd_test.go runs clef with."""
    return ["--suppress-bootwarn", "--lightkdf", "--keystore", str(keystore)]


def write_key(keystore: Path, key: bytes, password: str = GOOD_PASSWORD) -> str:
    """A cheap V3 key file written by eth-keyfile; returns the lowercase 0x address."""
    keystore.mkdir(parents=True, exist_ok=True)
    obj = create_keyfile_json(key, password.encode(), kdf="pbkdf2", iterations=2)
    address = str(obj["address"]).lower().removeprefix("0x")
    obj["address"] = address
    (keystore / f"UTC--2021-01-01T00-00-00.000000000Z--{address}").write_text(json.dumps(obj))
    return "0x" + address


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    """The hex private key file of geth's TestImportRaw."""
    path = tmp_path / "key.txt"
    path.write_text(KEY_HEX + "\n")
    return path


# --- --version, --help, bad usage ---------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-version", "-v", "--v"])
def test_version(flag: str) -> None:
    result = clef(flag)
    assert result.returncode == 0
    assert result.stdout == f"clef version {__version__}\n"


@pytest.mark.parametrize("flag", ["--help", "-h", "-help"])
def test_help_lists_every_flag_and_command(flag: str) -> None:
    result = clef(flag)
    assert result.returncode == 0
    text = result.stdout
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("   --")}
    for name in REFERENCE_FLAGS + [f.name for f in FLAGS]:
        assert f"--{name}" in listed, name
    for command in REFERENCE_COMMANDS + list(SUBCOMMANDS):
        assert f"   {command} " in text, command
    assert "--version" in text and "--help" in text


def test_later_issue_flags_say_they_are_not_available_yet() -> None:
    help_text = clef("--help").stdout
    pcscd = next(line for line in help_text.splitlines() if line.startswith("   --pcscdpath"))
    assert "not available yet" in pcscd


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "flag provided but not defined: -bogus"),
    (["-bogus=1", "list-accounts"], "flag provided but not defined: -bogus"),
    (["list-accounts", "--nope"], "flag provided but not defined: -nope"),
    # Not registered in the reference either (CORS is always off).
    (["--http.corsdomain", "*"], "flag provided but not defined: -http.corsdomain"),
    (["--keystore"], "flag needs an argument: -keystore"),
    (["--chainid", "mainnet"], "invalid value 'mainnet' for flag -chainid"),
    (["--lightkdf=maybe"], "invalid boolean value 'maybe' for -lightkdf"),
])
def test_bad_flags_fail_with_a_message(args: list[str], message: str, tmp_path: Path) -> None:
    result = clef(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_unknown_command(tmp_path: Path) -> None:
    result = clef("--keystore", str(tmp_path), "frobnicate", cwd=tmp_path)
    assert result.returncode != 0
    assert 'invalid command: "frobnicate"' in result.stderr


def test_stdio_ui_test_requires_stdio_ui(tmp_path: Path) -> None:
    result = clef("--stdio-ui-test", "--suppress-bootwarn", "--keystore", str(tmp_path / "ks"),
                  "--configdir", str(tmp_path / "cfg"), "--ipcdisable", cwd=tmp_path)
    assert result.returncode != 0
    assert "--stdio-ui-test requires --stdio-ui" in result.stderr


# --- flag syntax: one or two dashes, before or after the subcommand -----------------------------


@pytest.mark.parametrize("layout", [
    ["--keystore", "{ks}", "list-accounts"],
    ["-keystore", "{ks}", "list-accounts"],
    ["--keystore={ks}", "list-accounts"],
    ["-keystore={ks}", "list-accounts"],
    ["list-accounts", "--keystore", "{ks}"],
    ["list-accounts", "-keystore", "{ks}"],
    ["list-accounts", "-keystore={ks}"],
    ["-lightkdf", "list-accounts", "--keystore", "{ks}", "-suppress-bootwarn"],
    ["--lightkdf=true", "-loglevel", "1", "list-accounts", "-keystore", "{ks}"],
    ["list-accounts", "-chainid", "5", "--keystore", "{ks}", "--lightkdf=false"],
])
def test_flags_take_one_or_two_dashes_anywhere(layout: list[str], tmp_path: Path) -> None:
    keystore = tmp_path / "ks"
    address = write_key(keystore, b"\x42" * 32)
    result = clef(*[a.replace("{ks}", str(keystore)) for a in layout], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lower().startswith(address + " (keystore://" + str(keystore).lower())


def test_the_last_value_of_a_repeated_flag_wins(tmp_path: Path) -> None:
    write_key(tmp_path / "a", b"\x42" * 32)
    result = clef("--keystore", str(tmp_path / "a"), "list-accounts", "--keystore",
                  str(tmp_path / "b"), cwd=tmp_path)
    assert result.returncode == 0
    assert "The keystore is empty." in result.stdout


# --- geth's clef_cli cases ----------------------------------------------------------------------


def _case(args: list[str], keystore: str | None = None) -> dict[str, Any]:
    for case in CLI_CASES["cases"]:
        if case["args"] == args and case.get("keystore") == keystore:
            return dict(case)
    raise LookupError(args)


def test_importraw_cases(tmp_path: Path, keyfile: Path) -> None:
    importraw = [c for c in CLI_CASES["cases"] if c["args"][0] == "importraw"]
    assert len(importraw) == 3
    for index, case in enumerate(importraw):
        keystore = tmp_path / f"ks{index}"
        args = [str(keyfile) if a == "<keyfile>" else a for a in case["args"]]
        result = clef(*geth_test_args(keystore), *args, stdin="\n".join(case["stdin"]) + "\n",
                      cwd=tmp_path)
        if "stdout_contains" in case:
            assert result.returncode == 0, result.stderr
            assert case["stdout_contains"] in result.stdout
            [path] = list(keystore.iterdir())
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert f"  Keystore file: {path}\n" in result.stdout
            content = json.loads(path.read_text())
            assert decode_keyfile_json(content, case["stdin"][0].encode()).hex() == KEY_HEX
        else:
            assert result.returncode != 0
            assert result.stderr == case["stderr_equals"]
            assert not keystore.exists() or not list(keystore.iterdir())


def test_list_accounts_and_wallets_cases(tmp_path: Path, keyfile: Path) -> None:
    keystore = tmp_path / "ks"
    for command in ("list-accounts", "list-wallets"):
        case = _case([command], "empty")
        result = clef(*geth_test_args(keystore), command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert case["stdout_contains"] in result.stdout
    imported = clef(*geth_test_args(keystore), "importraw", str(keyfile),
                    stdin=f"{GOOD_PASSWORD}\n{GOOD_PASSWORD}\n", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    [path] = list(keystore.iterdir())
    for command in ("list-accounts", "list-wallets"):
        case = _case([command], "after the import above")
        result = clef(*geth_test_args(keystore), command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert case["stdout_contains"] in result.stdout
    accounts = clef(*geth_test_args(keystore), "list-accounts", cwd=tmp_path).stdout
    assert accounts == f"{KEY_ADDRESS} (keystore://{path})\n"
    wallets = clef(*geth_test_args(keystore), "list-wallets", cwd=tmp_path).stdout
    assert wallets.splitlines() == [f"- Wallet 0 at keystore://{path} (Locked )",
                                    f"  -Account 0: {KEY_ADDRESS} (keystore://{path})"]
    # Importing the same key again is refused.
    again = clef(*geth_test_args(keystore), "importraw", str(keyfile),
                 stdin=f"{GOOD_PASSWORD}\n{GOOD_PASSWORD}\n", cwd=tmp_path)
    assert again.returncode != 0
    assert "account already exists" in again.stderr


def test_importraw_needs_exactly_one_argument(tmp_path: Path, keyfile: Path) -> None:
    for args in ([], [str(keyfile), str(keyfile)]):
        result = clef(*geth_test_args(tmp_path / "ks"), "importraw", *args, cwd=tmp_path)
        assert result.returncode != 0
        assert result.stderr == "<keyfile> must be given as first argument\n"


@pytest.mark.parametrize("content", ["zz" * 32, "01" * 31, "00" * 32, ""])
def test_importraw_rejects_bad_keys(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    result = clef(*geth_test_args(tmp_path / "ks"), "importraw", str(bad),
                  stdin=f"{GOOD_PASSWORD}\n{GOOD_PASSWORD}\n", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip()
    assert content not in result.stderr or not content  # never echo key material


def test_newaccount_with_piped_passwords(tmp_path: Path) -> None:
    keystore = tmp_path / "ks"
    result = clef(*geth_test_args(keystore), "newaccount",
                  stdin=f"short\n{GOOD_PASSWORD}\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "attempt 0 of 3" in result.stdout and "attempt 1 of 3" in result.stdout
    assert ("Account creation attempt #1 failed due to password requirements: password too short "
            "(<10 characters)") in result.stdout
    [path] = list(keystore.iterdir())
    content = json.loads(path.read_text())
    assert f"Generated account 0x{content['address']}".lower() in result.stdout.lower()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o700
    assert len(decode_keyfile_json(content, GOOD_PASSWORD.encode())) == 32


def test_newaccount_three_bad_passwords(tmp_path: Path) -> None:
    keystore = tmp_path / "ks"
    result = clef(*geth_test_args(keystore), "newaccount", stdin="a\nbb\nccc\n", cwd=tmp_path)
    assert result.returncode != 0
    assert "account creation failed" in result.stderr
    assert not keystore.exists() or not list(keystore.iterdir())


def test_newaccount_with_stdin_closed(tmp_path: Path) -> None:
    result = clef(*geth_test_args(tmp_path / "ks"), "newaccount", stdin="", cwd=tmp_path)
    assert result.returncode != 0
    assert "standard input closed" in result.stderr
