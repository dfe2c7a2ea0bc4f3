"""The keystore directory: Web3 Secret Storage key files, as geth's accounts/keystore lays them out.

Synchronous and CPU-heavy (each encrypt or decrypt runs scrypt, ~0.8 s at the standard setting);
keyd calls it from a worker thread. All methods are thread-safe: one lock guards the account cache
and the directory scan, another serialises writes (so two imports of one key cannot both succeed);
the KDF itself runs outside the cache lock so listing never waits for a decryption.

Password *format* is not checked here (as in geth's keystore): callers that create secrets
(account_new, importraw, the UI import) apply keyd.passwords.validate_password_format first.

Key hygiene: decrypted keys are returned as bytearrays the caller owns and must wipe; the buffers
this module creates are zeroed after use. Python cannot guarantee more: `bytes` copies handed to
coincurve (address derivation), the password `str`, and intermediate objects inside the crypto
libraries are immutable and are freed, not wiped, by the garbage collector.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PublicKey

from clef.errors import ClefError, DecryptError, InvalidParams, SignerError, UnknownAccount
from clef.eth.hashing import keccak256
from clef.jsonrpc import nesting_depth
from keyd.keycrypto import decrypt_crypto_json, decrypt_crypto_v1, encrypt_crypto_json, wipe

log = logging.getLogger(__name__)

KEYSTORE_SCHEME = "keystore"
MAX_KEY_FILE_BYTES = 1 << 20
MAX_JSON_DEPTH = 16
RESCAN_INTERVAL = 1.0

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ADDRESS_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]{40})")
_ZERO_ADDRESS = bytes(20)


@dataclass(frozen=True)
class Account:
    """One key file: its address, its URL (`keystore://<abs path>`) and its path."""

    address: bytes
    url: str
    path: Path = field(compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.address, bytes) or len(self.address) != 20:
            raise ValueError("address must be 20 bytes")
        if not isinstance(self.url, str) or not self.url.startswith(KEYSTORE_SCHEME + "://"):
            raise ValueError("url must use the keystore:// scheme")
        if not isinstance(self.path, Path):
            raise TypeError("path must be a Path")


@dataclass(frozen=True)
class _FileStat:
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


class Keystore:
    """A directory of key files: listing (rescanned while running), decryption and atomic writes."""

    def __init__(
        self, directory: Path, *, light: bool, rescan_interval: float = RESCAN_INTERVAL
    ) -> None:
        # Like Go's filepath.Abs: absolute and cleaned, symlinks not resolved (URLs stay stable).
        self.directory = Path(os.path.abspath(directory))  # noqa: PTH100
        self.light = light
        self._rescan_interval = rescan_interval
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._files: dict[str, tuple[_FileStat, Account | None]] = {}
        self._accounts: list[Account] = []
        self._last_scan: float | None = None

    # -- listing ---------------------------------------------------------------------------

    def accounts(self) -> list[Account]:
        """All loadable accounts sorted by URL; rescans the directory at most every ~1 s."""
        with self._lock:
            now = time.monotonic()
            if self._last_scan is None or now - self._last_scan >= self._rescan_interval:
                self._scan()
                self._last_scan = now
            return list(self._accounts)

    def refresh(self) -> list[Account]:
        """Rescan the directory now and return the accounts."""
        with self._lock:
            self._scan()
            self._last_scan = time.monotonic()
            return list(self._accounts)

    def has_address(self, address: bytes) -> bool:
        """True when some key file holds address."""
        return any(a.address == address for a in self.refresh())

    def find(self, address: bytes) -> Account:
        """The single account for address; UnknownAccount, or SignerError if several files match."""
        matches = [a for a in self.accounts() if a.address == address]
        if not matches:
            # A file created since the last scan should not look unknown.
            matches = [a for a in self.refresh() if a.address == address]
        if not matches:
            raise UnknownAccount()
        if len(matches) > 1:
            files = ", ".join(str(a.path) for a in matches)
            raise SignerError(f"multiple keys match address ({files})")
        return matches[0]

    def _scan(self) -> None:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            log.warning("cannot read keystore directory %s: %s", self.directory, exc.strerror)
            entries = []
        seen: dict[str, tuple[_FileStat, Account | None]] = {}
        for entry in entries:
            name = entry.name
            # Hidden names include our own in-flight temp files; `~` are editor backups.
            if name.startswith(".") or name.endswith("~"):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            # Symlinks and special files are refused: a link may point anywhere, a FIFO would hang.
            if not stat.S_ISREG(st.st_mode):
                continue
            signature = _FileStat(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            previous = self._files.get(name)
            if previous is not None and previous[0] == signature:
                seen[name] = previous
                continue
            seen[name] = (signature, self._read_account(self.directory / name))
        self._files = seen
        self._accounts = _sorted_accounts(seen)

    def _read_account(self, path: Path) -> Account | None:
        try:
            obj = _loads_bounded(_read_bounded(path))
        except (OSError, ValueError, RecursionError, SignerError) as exc:
            log.debug("ignoring keystore file %s: %s", path, type(exc).__name__)
            return None
        address = _file_address(obj)
        if address is None or address == _ZERO_ADDRESS:
            log.debug("ignoring keystore file %s: missing or zero address", path)
            return None
        return Account(address, _url(path), path)

    def _add_to_cache(self, account: Account) -> None:
        with self._lock:
            try:
                st = account.path.lstat()
            except OSError:
                self._last_scan = None
                return
            signature = _FileStat(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            # Rebuilt from _files, not appended: a concurrent scan may already have seen the file.
            self._files[account.path.name] = (signature, account)
            self._accounts = _sorted_accounts(self._files)

    # -- reading keys ----------------------------------------------------------------------

    def decrypt_key(self, address: bytes, password: str) -> bytearray:
        """The 32-byte private key for address (caller wipes it); UnknownAccount or DecryptError."""
        account = self.find(address)
        try:
            content = _read_bounded(account.path)
        except FileNotFoundError:
            raise UnknownAccount() from None
        except OSError as exc:
            raise SignerError(f"cannot read key file: {exc.strerror}") from None
        derived, key = decrypt_key_json(_parse_json(content), password)
        if derived != address:
            wipe(key)
            raise SignerError(
                f"key content mismatch: have account {derived.hex()}, want {address.hex()}"
            )
        return key

    def export(self, address: bytes) -> str:
        """The key file's content (still encrypted) for address."""
        account = self.find(address)
        try:
            return _read_bounded(account.path).decode("utf-8")
        except FileNotFoundError:
            raise UnknownAccount() from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SignerError(f"cannot read key file: {type(exc).__name__}") from None

    # -- writing keys ----------------------------------------------------------------------

    def new_account(self, password: str) -> Account:
        """Create a random key, store it encrypted under password and return its account."""
        while True:
            key = bytearray(os.urandom(32))
            if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
                break
            wipe(key)  # pragma: no cover - probability ~2**-128
        try:
            return self._store(key, password)
        finally:
            wipe(key)

    def import_raw_key(self, key: bytes | bytearray, password: str) -> Account:
        """Store a raw 32-byte private key; SignerError `account already exists` for a known one."""
        buf = bytearray(key)
        try:
            _check_private_key(buf)
            return self._store(buf, password, refuse_existing=True)
        finally:
            wipe(buf)

    def import_key_json(self, key_json: dict[str, Any], old_pw: str, new_pw: str) -> Account:
        """Decrypt a key file's JSON with old_pw and store it re-encrypted under new_pw."""
        if not isinstance(key_json, dict):
            raise InvalidParams("invalid keyJSON: must be a JSON object")
        derived, key = decrypt_key_json(key_json, old_pw)
        try:
            # The file's address claim is untrusted; a key that disagrees with it is refused.
            claimed = _file_address(key_json)
            if claimed is not None and claimed not in (derived, _ZERO_ADDRESS):
                raise SignerError(
                    f"key content mismatch: have account {derived.hex()}, want {claimed.hex()}"
                )
            return self._store(key, new_pw, refuse_existing=True)
        finally:
            wipe(key)

    def _store(self, key: bytearray, password: str, *, refuse_existing: bool = False) -> Account:
        address = private_key_to_address(key)
        if refuse_existing and self.has_address(address):
            raise SignerError("account already exists")
        content = encode_key_file(key, address, password, light=self.light)
        with self._write_lock:
            if refuse_existing and self.has_address(address):
                raise SignerError("account already exists")
            path = self.directory / key_file_name(address, time.time_ns())
            _write_atomic(path, content, lambda raw: _verify_key_file(raw, key, address, password))
            account = Account(address, _url(path), path)
            self._add_to_cache(account)
        return account


def _sorted_accounts(files: dict[str, tuple[_FileStat, Account | None]]) -> list[Account]:
    return sorted((a for _, a in files.values() if a is not None), key=lambda a: a.url)


# -- key files (pure) ----------------------------------------------------------------------


def key_file_name(address: bytes, time_ns: int) -> str:
    """`UTC--<YYYY-MM-DDTHH-MM-SS.nnnnnnnnnZ>--<address lowercase hex>` as geth names key files."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(seconds))
    return f"UTC--{stamp}.{nanos:09d}Z--{address.hex()}"


def encode_key_file(key: bytearray, address: bytes, password: str, *, light: bool) -> bytes:
    """The V3 key file for key, byte-for-byte in geth's layout (compact JSON, uuid4 id)."""
    crypto = encrypt_crypto_json(key, password, light=light)
    document = {"address": address.hex(), "crypto": crypto, "id": str(uuid.uuid4()), "version": 3}
    return json.dumps(document, separators=(",", ":")).encode()


def decrypt_key_json(key_json: dict[str, Any], password: str) -> tuple[bytes, bytearray]:
    """Decrypt a V3 or V1 key document; returns (address derived from the key, key)."""
    if not isinstance(key_json, dict):
        raise SignerError("invalid keystore file: not a JSON object")
    version = key_json.get("version", 0)
    if version == "1" and isinstance(version, str):
        key = decrypt_crypto_v1(_crypto_of(key_json, "Crypto", "crypto"), password)
    else:
        if isinstance(version, bool) or not isinstance(version, int) or version != 3:
            raise SignerError(f"version not supported: {_go_value(version)}")
        key = decrypt_crypto_json(_crypto_of(key_json, "crypto", "Crypto"), password)
    try:
        _check_private_key(key)
        return private_key_to_address(key), key
    except ClefError:
        wipe(key)
        raise


def private_key_to_address(key: bytes | bytearray) -> bytes:
    """The 20-byte address of a valid 32-byte secp256k1 private key."""
    _check_private_key(key)
    public = PublicKey.from_valid_secret(bytes(key)).format(compressed=False)
    return keccak256(public[1:])[12:]


def _check_private_key(key: bytes | bytearray) -> None:
    if len(key) != 32:
        raise SignerError("invalid length, need 256 bits")
    number = int.from_bytes(key, "big")
    if number >= _SECP256K1_N:
        raise SignerError("invalid private key, >=N")
    if number == 0:
        raise SignerError("invalid private key, zero or negative")


def _crypto_of(key_json: dict[str, Any], first: str, second: str) -> dict[str, Any]:
    # Go's JSON decoder matches field names case-insensitively; old wallets wrote "Crypto".
    crypto = key_json.get(first, key_json.get(second))
    if not isinstance(crypto, dict):
        raise SignerError("invalid keystore field crypto: must be a JSON object")
    return crypto


def _file_address(obj: object) -> bytes | None:
    if not isinstance(obj, dict):
        return None
    text = obj.get("address")
    if not isinstance(text, str):
        return None
    match = _ADDRESS_HEX.fullmatch(text)
    return bytes.fromhex(match.group(1)) if match else None


def _go_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value) if abs(value) < 10**20 else "(out of range)"
    # Bounded: a hostile version value must not turn into a megabyte error message.
    return json.dumps(value)[:64] if isinstance(value, bool | None) else type(value).__name__


def _url(path: Path) -> str:
    return f"{KEYSTORE_SCHEME}://{path}"


def _parse_json(content: bytes) -> dict[str, Any]:
    try:
        obj = _loads_bounded(content)
    except (ValueError, RecursionError):
        raise SignerError("invalid keystore file: not JSON") from None
    if not isinstance(obj, dict):
        raise SignerError("invalid keystore file: not a JSON object")
    return obj


def _loads_bounded(content: bytes) -> Any:
    # Threat: deeply nested JSON overflows the C stack inside json.loads (a segfault, not a
    # RecursionError, once anything raises the recursion limit - py_ecc sets it to 100000).
    if nesting_depth(content.decode("latin-1")) > MAX_JSON_DEPTH:
        raise ValueError("JSON nested too deeply")
    return json.loads(content)


def _read_bounded(path: Path) -> bytes:
    # O_NOFOLLOW/O_NONBLOCK and fstat: the name may have been swapped for a link or FIFO since
    # the scan (TOCTOU); the size cap keeps a planted huge file from being slurped into memory.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SignerError("invalid keystore file: not a regular file")
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise SignerError("invalid keystore file: too large")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 65536):
            total += len(chunk)
            if total > MAX_KEY_FILE_BYTES:
                raise SignerError("invalid keystore file: too large")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _verify_key_file(raw: bytes, key: bytearray, address: bytes, password: str) -> None:
    derived, decrypted = decrypt_key_json(_parse_json(raw), password)
    try:
        if derived != address or not hmac.compare_digest(decrypted, key):
            raise DecryptError("keystore file verification failed")
    finally:
        wipe(decrypted)


def _write_atomic(path: Path, content: bytes, verify: Callable[[bytes], None]) -> None:
    """Write content to path through a hidden 0600 temp file, verified before the rename.

    Threat answered: a crash or a failed encryption must never leave a torn or undecryptable
    key file behind (funds would be lost); any failure removes the temp file.
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.path.lexists(path):
        raise SignerError("key file already exists")
    tmp = directory / f".{path.name}.tmp{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        verify(_read_bounded(tmp))
        tmp.rename(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

