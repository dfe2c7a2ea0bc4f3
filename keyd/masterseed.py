"""The master seed: 256 random bytes in the reference's `masterseed.json`, locked by a password.

File format (compact JSON, as Go's json.Marshal writes it)::

    {"description":"Clef seed","version":1,"params":<Web3 Secret Storage crypto object>}

Mode 0400, checked on every use: a seed file readable or writable by anyone but the owner (or
even writable by the owner) is refused, exactly as the reference's checkFile does.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from clef import jsonrpc
from clef.errors import ClefError, SignerError
from keyd.keycrypto import decrypt_crypto_json, encrypt_crypto_json, wipe
from keyd.vault import atomic_write

SEED_BYTES = 256
SEED_FILE_NAME = "masterseed.json"
SEED_DESCRIPTION = "Clef seed"
SEED_VERSION = 1
MAX_SEED_FILE_BYTES = 64 * 1024

DECRYPT_FAILED = "failed to decrypt the master seed of clef"

_log = logging.getLogger(__name__)


def seed_path(configdir: str | os.PathLike[str], signersecret: str | None = None) -> Path:
    """`--signersecret` if given, else `<configdir>/masterseed.json`."""
    if signersecret:
        return Path(signersecret)
    return Path(configdir) / SEED_FILE_NAME


def go_file_mode(mode: int) -> str:
    """Go's os.FileMode.String() for a stat mode, e.g. `-rw-r--r--` or `drwx------`."""
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    perms = "".join(
        char if mode & (1 << (8 - index)) else "-" for index, char in enumerate("rwxrwxrwx")
    )
    return (letters or "-") + perms


def _go_error_text(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def check_seed_file(path: str | os.PathLike[str]) -> None:
    """The reference's checkFile: the seed file must exist and have perm & 0o377 == 0."""
    name = os.fspath(path)
    try:
        info = Path(name).stat()
    except OSError as exc:
        raise SignerError(f"failed stat on {name}: stat {name}: {_go_error_text(exc)}") from None
    # Threat: a seed readable by other users can be brute-forced offline (light KDF especially).
    if info.st_mode & 0o377:
        raise SignerError(
            f"file ({name}) has insecure file permissions ({go_file_mode(info.st_mode)})"
        )


def encode_seed_file(seed: bytes | bytearray, password: str, *, light: bool) -> bytes:
    """The bytes of a masterseed.json encrypting seed under password."""
    params = encrypt_crypto_json(seed, password, light=light)
    document = {"description": SEED_DESCRIPTION, "version": SEED_VERSION, "params": params}
    return json.dumps(document, separators=(",", ":")).encode()


def create_master_seed(path: str | os.PathLike[str], password: str, *, light: bool) -> Path:
    """Generate 256 random bytes and write them encrypted to path (0400, atomic, never overwrite).

    The parent directory is created 0700 if missing. Raises SignerError
    `master key <path> already exists, will not overwrite` if the file exists.
    """
    target = Path(path)
    name = os.fspath(path)
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)
    if os.path.lexists(target):
        raise SignerError(f"master key {name} already exists, will not overwrite")
    seed = bytearray(os.urandom(SEED_BYTES))
    try:
        data = encode_seed_file(seed, password, light=light)
    finally:
        wipe(seed)
    try:
        atomic_write(target, data, 0o400, overwrite=False)
    except FileExistsError:
        raise SignerError(f"master key {name} already exists, will not overwrite") from None
    return target


def _params(raw: bytes) -> Any:
    if len(raw) > MAX_SEED_FILE_BYTES:
        raise ValueError("seed file too large")
    document = jsonrpc.loads(raw)  # bounded nesting: deep JSON can crash CPython
    if not isinstance(document, dict):
        raise ValueError("masterseed.json is not a JSON object")  # noqa: TRY004
    version = document.get("version")
    if version != SEED_VERSION:
        _log.warning(
            "unsupported encryption format of seed: %r, operation will likely fail", version
        )
    return document.get("params")


def load_master_seed(path: str | os.PathLike[str], password: str) -> bytearray:
    """Check the file's permissions, decrypt it and return the seed (caller wipes it).

    Errors (SignerError, reference texts): the checkFile messages,
    `failed to decrypt the master seed of clef`,
    `master seed of insufficient length, expected >255 bytes, got <n>`.
    """
    check_seed_file(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_SEED_FILE_BYTES + 1)
    except OSError as exc:
        raise SignerError(f"open {os.fspath(path)}: {_go_error_text(exc)}") from None
    try:
        seed = decrypt_crypto_json(_params(raw), password)
    except (ValueError, TypeError, RecursionError, ClefError):
        # Any failure (bad JSON, bad parameters, wrong password) reads the same, as in geth.
        raise SignerError(DECRYPT_FAILED) from None
    if len(seed) < SEED_BYTES:
        length = len(seed)
        seed[:] = bytes(length)
        raise SignerError(
            f"master seed of insufficient length, expected >{SEED_BYTES - 1} bytes, got {length}"
        )
    return seed
