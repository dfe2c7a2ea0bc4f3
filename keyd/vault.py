"""Encrypted storage: the reference's vault and AES-256-GCM stores, plus an authenticated manifest.

Reference-compatible part (inventory §9): the vault directory is
`<configdir>/<hex(keccak256("vault" ‖ seed)[:10])>` (0700) and holds `credentials.json`,
`jsstorage.json` and `config.json`, each `{"<key>":{"iv":"<b64 nonce>","c":"<b64 ct‖tag>"}}`
(compact, sorted keys, padded standard base64), encrypted with AES-256-GCM under
keccak256(<store name> ‖ seed), a fresh 12-byte nonce per value and the entry key as associated
data. Each write rewrites the whole file atomically (temp file, fsync, rename, fsync dir), 0600.

Beyond the reference: `manifest.json` in the vault, authenticated with HMAC-SHA256 under
keccak256("manifest" ‖ seed), records a monotonic write counter and, per store, the counter of its
last write and the SHA-256 of its file. A store whose file does not match (rolled back, truncated,
entries deleted, swapped in from elsewhere, deleted) is refused with StorageTampered. A write is
two-phase so a crash at any point is recoverable: (1) the manifest records the intent (store, next
counter, new digest), (2) the store file is replaced, (3) the manifest commits. At the next access
an intent is rolled forward if the store holds the new content, or dropped if it holds the old
content; anything else is tampering. docs/storage.md explains the design and its limits (a whole
configdir rolled back at once cannot be detected without state kept elsewhere).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from Cryptodome.Cipher import AES

from clef.errors import InvalidParams, StorageTampered
from clef.eth.address import is_hex_address, to_checksum
from clef.eth.hashing import keccak256
from clef.jsonrpc import loads_bounded

CREDENTIALS = "credentials.json"
JSSTORAGE = "jsstorage.json"
CONFIG = "config.json"
STORES = (CREDENTIALS, JSSTORAGE, CONFIG)
MANIFEST = "manifest.json"
LOCK_FILE = ".lock"
RULESET_KEY = "ruleset_sha256"

MIN_SEED_BYTES = 256
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_BYTES = 4096
MAX_VALUE_BYTES = 4 * 1024 * 1024
MAX_STORE_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024
MAX_COUNTER = 2**63 - 1
MAX_JSON_DEPTH = 8  # the formats nest 3 levels at most

_log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ANY_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class VaultNeedsMigration(StorageTampered):
    """The vault has stores but no manifest: a reference configdir, or a deleted manifest."""


# ---------------------------------------------------------------------------------------------
# Files


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or create inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True) -> None:
    """Replace path with data: temp file, fsync, rename, fsync dir; a crash leaves old or new.

    With overwrite=False the new file is linked into place, failing with FileExistsError if path
    exists (no check-then-write race).
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            tmp.replace(path)
        else:
            os.link(tmp, path)
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def _read_file(path: Path, limit: int, label: str) -> bytes | None:
    """Read a vault file without following symlinks; None if absent, StorageTampered if unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            # Threat: a symlink planted in the vault redirecting reads or the rename target.
            raise StorageTampered(f"{label} in the vault is a symbolic link") from None
        raise StorageTampered(f"{label} is unreadable: {exc.strerror}") from None
    try:
        return _read_fd(fd, limit, label)
    except OSError as exc:
        raise StorageTampered(f"{label} is unreadable: {exc.strerror}") from None
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int, label: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StorageTampered(f"{label} is not a regular file")
    if info.st_size > limit:
        raise StorageTampered(f"{label} is larger than {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, 1 << 20):
        total += len(chunk)
        if total > limit:
            raise StorageTampered(f"{label} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Key derivation and the reference's store format


def vault_dir_name(seed: bytes | bytearray) -> str:
    """The vault directory's name: hex(keccak256("vault" ‖ seed)[:10])."""
    return keccak256(b"vault" + bytes(seed))[:10].hex()


def store_key(store: str, seed: bytes | bytearray) -> bytes:
    """The AES-256 key of a store: keccak256("credentials" | "jsstorage" | "config" ‖ seed)."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    return keccak256(store.removesuffix(".json").encode() + bytes(seed))


def manifest_key(seed: bytes | bytearray) -> bytes:
    """The manifest's HMAC key: keccak256("manifest" ‖ seed) (not a reference key)."""
    return keccak256(b"manifest" + bytes(seed))


def go_json_string(text: str) -> str:
    """A JSON string exactly as Go's encoding/json writes it (HTML-safe escapes included)."""
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@dataclass(frozen=True)
class StoredEntry:
    """One encrypted value as stored: the GCM nonce and ciphertext‖tag."""

    iv: bytes
    c: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.iv, bytes) or len(self.iv) != NONCE_BYTES:
            raise ValueError(f"invalid iv: must be {NONCE_BYTES} bytes")
        if not isinstance(self.c, bytes) or len(self.c) < TAG_BYTES:
            raise ValueError(f"invalid c: must be at least {TAG_BYTES} bytes")


def encode_store(entries: Mapping[str, StoredEntry]) -> bytes:
    """Serialise a store as Go's json.Marshal of map[string]storedCredential (sorted, compact)."""
    parts = []
    for key in sorted(entries):
        entry = entries[key]
        iv = base64.b64encode(entry.iv).decode()
        c = base64.b64encode(entry.c).decode()
        parts.append(f'{go_json_string(key)}:{{"iv":"{iv}","c":"{c}"}}')
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def _bounded_json(raw: bytes) -> Any:
    """Strict, depth-bounded JSON (deeply nested JSON can overflow CPython's C stack)."""
    return loads_bounded(raw, max_depth=MAX_JSON_DEPTH, error=ValueError)


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a string")  # noqa: TRY004 - one error type for parsing
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{field} is not valid base64") from None


def _parse_store(raw: bytes) -> dict[str, StoredEntry]:
    parsed = _bounded_json(raw)
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - one error type for parsing
    entries: dict[str, StoredEntry] = {}
    for key, value in parsed.items():
        if not isinstance(value, dict) or set(value) != {"iv", "c"}:
            raise ValueError(f"entry {key!r} is not an {{iv, c}} object")
        entries[key] = StoredEntry(
            _b64(value["iv"], f"entry {key!r} iv"), _b64(value["c"], f"entry {key!r} c")
        )
    return entries


def decode_store(raw: bytes, label: str) -> dict[str, StoredEntry]:
    """Parse a store file strictly; anything malformed raises StorageTampered naming the file."""
    try:
        return _parse_store(raw)
    except (ValueError, RecursionError) as exc:
        raise StorageTampered(f"{label} is malformed: {exc}") from None


def encrypt_entry(key: bytes, value: str, aad: str) -> StoredEntry:
    """AES-256-GCM with a fresh random nonce; the entry key is the associated data."""
    nonce = os.urandom(NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
    cipher.update(aad.encode("utf-8"))
    ciphertext, tag = cipher.encrypt_and_digest(value.encode("utf-8"))
    return StoredEntry(nonce, ciphertext + tag)


def decrypt_entry(key: bytes, entry: StoredEntry, aad: str, label: str) -> str:
    """Open one entry; a failed tag (modified value, nonce or key name) raises StorageTampered."""
    cipher = AES.new(key, AES.MODE_GCM, nonce=entry.iv, mac_len=TAG_BYTES)
    try:
        # Go writes invalid UTF-8 keys as U+FFFD, so a lone surrogate can only be a forgery.
        cipher.update(aad.encode("utf-8"))
    except UnicodeEncodeError:
        raise StorageTampered(f"{label}: entry key {aad!r} is not valid UTF-8") from None
    try:
        plaintext = cipher.decrypt_and_verify(entry.c[:-TAG_BYTES], entry.c[-TAG_BYTES:])
    except ValueError:
        raise StorageTampered(
            f"{label}: entry {aad!r} failed authentication (cipher: message authentication failed)"
        ) from None
    # Go stores arbitrary bytes as a string; surrogateescape keeps any non-UTF-8 byte intact.
    return bytes(plaintext).decode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class StoreState:
    """What the manifest knows of one store: its last write's counter and its file's SHA-256."""

    counter: int
    sha256: str | None  # None: the file must not exist

    def __post_init__(self) -> None:
        _check_counter(self.counter, "counter")
        if self.sha256 is not None and not _is_sha256(self.sha256):
            raise ValueError("invalid sha256: must be 64 lowercase hex digits")


@dataclass(frozen=True)
class Pending:
    """A write in progress: the store, the counter it will get and the digest of its new file."""

    store: str
    counter: int
    sha256: str

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ValueError("invalid store")
        _check_counter(self.counter, "counter")
        if not _is_sha256(self.sha256):
            raise ValueError("invalid sha256: must be 64 lowercase hex digits")


@dataclass(frozen=True)
class Manifest:
    """The authenticated state of the vault: write counter, per-store state, pending intent."""

    counter: int
    stores: Mapping[str, StoreState]
    pending: Pending | None = None

    def __post_init__(self) -> None:
        _check_counter(self.counter, "counter")
        if set(self.stores) != set(STORES):
            raise ValueError("invalid stores: must list exactly " + ", ".join(STORES))
        if any(state.counter > self.counter for state in self.stores.values()):
            raise ValueError("invalid stores: a store is newer than the manifest")
        if self.pending is not None and self.pending.counter != self.counter + 1:
            raise ValueError("invalid pending: counter must be the next one")

    def to_body(self) -> dict[str, Any]:
        """The JSON body that is authenticated."""
        pending = None
        if self.pending is not None:
            pending = {
                "store": self.pending.store,
                "counter": self.pending.counter,
                "sha256": self.pending.sha256,
            }
        return {
            "version": 1,
            "counter": self.counter,
            "stores": {
                name: {"counter": state.counter, "sha256": state.sha256}
                for name, state in sorted(self.stores.items())
            },
            "pending": pending,
        }

    @classmethod
    def from_body(cls, body: object) -> Manifest:
        """Validate an authenticated body; ValueError on any deviation from the schema."""
        if not isinstance(body, dict) or set(body) != {"version", "counter", "stores", "pending"}:
            raise ValueError("unexpected fields")
        if body["version"] != 1 or isinstance(body["version"], bool):
            raise ValueError("unsupported version")
        raw_stores = body["stores"]
        if not isinstance(raw_stores, dict):
            raise ValueError("stores is not an object")  # noqa: TRY004
        stores: dict[str, StoreState] = {}
        for name, state in raw_stores.items():
            if not isinstance(state, dict) or set(state) != {"counter", "sha256"}:
                raise ValueError(f"store {name!r} is malformed")
            stores[name] = StoreState(state["counter"], state["sha256"])
        pending = body["pending"]
        parsed_pending = None
        if pending is not None:
            if not isinstance(pending, dict) or set(pending) != {"store", "counter", "sha256"}:
                raise ValueError("pending is malformed")
            parsed_pending = Pending(pending["store"], pending["counter"], pending["sha256"])
        return cls(body["counter"], stores, parsed_pending)


def _check_counter(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNTER:
        raise ValueError(f"invalid {field}: must be an integer in 0..2**63-1")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256_HEX.fullmatch(value))


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_manifest(manifest: Manifest, key: bytes) -> bytes:
    """The manifest file: {"mac": HMAC-SHA256(key, canonical body), "manifest": body}."""
    body = manifest.to_body()
    mac = hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()
    return _canonical({"mac": mac, "manifest": body})


def _parse_manifest(raw: bytes, key: bytes) -> Manifest:
    outer = _bounded_json(raw)
    if not isinstance(outer, dict) or set(outer) != {"mac", "manifest"}:
        raise ValueError("unexpected fields")
    mac = outer["mac"]
    if not _is_sha256(mac):
        raise ValueError("mac is not 64 hex digits")
    expected = hmac.new(key, _canonical(outer["manifest"]), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise _BadMac
    return Manifest.from_body(outer["manifest"])


class _BadMac(Exception):
    pass


def decode_manifest(raw: bytes, key: bytes) -> Manifest:
    """Authenticate and parse a manifest file; StorageTampered on any failure."""
    try:
        return _parse_manifest(raw, key)
    except _BadMac:
        raise StorageTampered(
            f"{MANIFEST} failed authentication (modified, or from another seed)"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise StorageTampered(f"{MANIFEST} is malformed: {exc}") from None


# ---------------------------------------------------------------------------------------------
# The vault


@dataclass(frozen=True)
class _Keys:
    stores: Mapping[str, bytes]
    manifest: bytes


def _check_seed(seed: object) -> bytes:
    if not isinstance(seed, bytes | bytearray):
        raise TypeError("seed must be bytes")
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(
            f"master seed of insufficient length, expected >{MIN_SEED_BYTES - 1} bytes, "
            f"got {len(seed)}"
        )
    return bytes(seed)


def _derive_keys(seed: bytes) -> _Keys:
    return _Keys({name: store_key(name, seed) for name in STORES}, manifest_key(seed))


def _tampered(store: str, state: StoreState, directory: Path) -> StorageTampered:
    if state.sha256 is None:
        what = "exists but the manifest records no such file"
    else:
        what = f"does not match the manifest (last written at write #{state.counter})"
    return StorageTampered(
        f"{store} in vault {directory} {what}: it was modified, rolled back, truncated or "
        "deleted outside clef; refusing to use it"
    )


def _needs_migration(directory: Path) -> VaultNeedsMigration:
    return VaultNeedsMigration(
        f"vault {directory} has no {MANIFEST} (a configdir written by the reference clef, or the "
        "manifest was deleted): refusing to use it; if this configdir is yours, run `clef migrate`"
    )


class Vault:
    """An open vault: three encrypted stores under one authenticated manifest. Thread-safe."""

    def __init__(self, directory: Path, keys: _Keys, lock_fd: int, counter: int) -> None:
        """Use Vault.open()."""
        self._dir = directory
        self._keys = keys
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        self._seen = counter
        self.credentials = EncryptedStore(self, CREDENTIALS)
        self.jsstorage = EncryptedStore(self, JSSTORAGE)
        self.config = EncryptedStore(self, CONFIG)

    @classmethod
    def open(
        cls, configdir: str | os.PathLike[str], seed: bytes | bytearray, *, min_counter: int = 0
    ) -> Vault:
        """Open (creating if absent, like the reference) and verify the vault of this seed.

        Raises VaultNeedsMigration for a vault with stores but no manifest, StorageTampered if
        any store does not match the manifest or the manifest's counter is below min_counter
        (an anchor kept outside the configdir).
        """
        vault = _bare_vault(configdir, seed)
        try:
            with vault._locked():
                vault._initialise(min_counter)
        except BaseException:
            vault.close()
            raise
        return vault

    @property
    def path(self) -> Path:
        """The vault directory."""
        return self._dir

    @property
    def counter(self) -> int:
        """The highest manifest write counter seen: export it as an anchor against rollback."""
        return self._seen

    def close(self) -> None:
        """Release the lock file descriptor and forget the keys."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._keys = _Keys({}, b"")

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for the CLI and keyd ------------------------------------------------------

    def stored_password(self, address: str) -> str | None:
        """The stored keystore password for an address (any case), None if none is stored."""
        return self.credentials.get(_eip55(address))

    def set_password(self, address: str, password: str) -> None:
        """Store the keystore password for an address (keyed by its EIP-55 form, as geth)."""
        self.credentials.put(_eip55(address), password)

    def del_password(self, address: str) -> None:
        """Remove the stored password for an address (no-op if none)."""
        self.credentials.delete(_eip55(address))

    def attested_ruleset(self) -> str | None:
        """The attested ruleset SHA-256, lowercased (the reference stored it verbatim)."""
        value = self.config.get(RULESET_KEY)
        if value is not None and _ANY_HEX64.fullmatch(value):
            return value.lower()
        return value

    def attest(self, sha256_hex: str) -> str:
        """Record the ruleset hash (64 hex digits, stored lowercase); returns what was stored."""
        if not isinstance(sha256_hex, str) or not _ANY_HEX64.fullmatch(sha256_hex):
            raise InvalidParams("invalid sha256: expected 64 hexadecimal digits")
        normalised = sha256_hex.lower()
        self.config.put(RULESET_KEY, normalised)
        return normalised

    def rule_storage(self) -> RuleStorage:
        """The JS rules' storage (jsstorage.json) with the reference's put/get semantics."""
        return RuleStorage(self.jsstorage)

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd < 0:
            raise StorageTampered("vault is closed")
        with self._mutex:
            # flock: `clef setpw` may run while the daemon is up; both follow the same protocol.
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _initialise(self, min_counter: int) -> None:
        directory = self._dir
        manifest = self._read_manifest_or_none()
        if manifest is None:
            # Only an empty vault may get a fresh manifest: stores without one are adopted
            # solely by `clef migrate` (threat: deleting the manifest to reset rate limits).
            if any(os.path.lexists(directory / name) for name in STORES):
                raise _needs_migration(directory)
            manifest = Manifest(0, {name: StoreState(0, None) for name in STORES})
            self._write_manifest(manifest)
            _log.info("Initialised an empty vault %s", directory)
        manifest = self._recover(manifest)
        if manifest.counter < min_counter:
            raise StorageTampered(
                f"vault {directory} is at write #{manifest.counter}, older than the expected "
                f"#{min_counter}: the configdir was rolled back"
            )
        for name in STORES:
            self._read_store(name, manifest)
        self._seen = manifest.counter

    def _read_manifest(self) -> Manifest:
        manifest = self._read_manifest_or_none()
        if manifest is None:
            raise _needs_migration(self._dir)
        return manifest

    def _read_manifest_or_none(self) -> Manifest | None:
        raw = _read_file(self._dir / MANIFEST, MAX_MANIFEST_BYTES, MANIFEST)
        if raw is None:
            return None
        manifest = decode_manifest(raw, self._keys.manifest)
        if manifest.counter < self._seen:
            # Threat: an older manifest+store pair restored while keyd runs (rate-limit reset).
            raise StorageTampered(
                f"{MANIFEST} in vault {self._dir} went back from write #{self._seen} to "
                f"#{manifest.counter}: the vault was rolled back"
            )
        return manifest

    def _write_manifest(self, manifest: Manifest) -> None:
        atomic_write(self._dir / MANIFEST, encode_manifest(manifest, self._keys.manifest))

    def _recover(self, manifest: Manifest) -> Manifest:
        """Finish or drop a write interrupted by a crash (the store rename is atomic)."""
        pending = manifest.pending
        if pending is None:
            return manifest
        digest = _digest(_read_file(self._dir / pending.store, MAX_STORE_BYTES, pending.store))
        if digest == pending.sha256:
            recovered = _commit(manifest, pending)
        elif digest == manifest.stores[pending.store].sha256:
            recovered = replace(manifest, counter=pending.counter, pending=None)
        else:
            raise _tampered(pending.store, manifest.stores[pending.store], self._dir)
        self._write_manifest(recovered)
        return recovered

    def _read_store(self, name: str, manifest: Manifest) -> dict[str, StoredEntry]:
        raw = _read_file(self._dir / name, MAX_STORE_BYTES, name)
        state = manifest.stores[name]
        if _digest(raw) != state.sha256:
            raise _tampered(name, state, self._dir)
        return {} if raw is None else decode_store(raw, name)

    def _current(self, name: str) -> tuple[Manifest, dict[str, StoredEntry]]:
        manifest = self._recover(self._read_manifest())
        entries = self._read_store(name, manifest)
        self._seen = manifest.counter
        return manifest, entries

    def _get(self, name: str, key: str) -> str | None:
        with self._locked():
            _, entries = self._current(name)
            store_key_bytes = self._keys.stores[name]
        entry = entries.get(key)
        if entry is None:
            return None
        return decrypt_entry(store_key_bytes, entry, key, name)

    def _update(self, name: str, key: str, value: str | None) -> None:
        with self._locked():
            manifest, entries = self._current(name)
            if value is None:
                if key not in entries:
                    return
                del entries[key]
            else:
                entries[key] = encrypt_entry(self._keys.stores[name], value, key)
            data = encode_store(entries)
            if len(data) > MAX_STORE_BYTES:
                raise InvalidParams(f"invalid value: {name} would exceed {MAX_STORE_BYTES} bytes")
            pending = Pending(name, manifest.counter + 1, hashlib.sha256(data).hexdigest())
            self._write_manifest(replace(manifest, pending=pending))
            atomic_write(self._dir / name, data, 0o600)
            committed = _commit(manifest, pending)
            self._write_manifest(committed)
            self._seen = committed.counter

    def _keys_of(self, name: str) -> list[str]:
        with self._locked():
            _, entries = self._current(name)
        return sorted(entries)


def _bare_vault(configdir: str | os.PathLike[str], seed: bytes | bytearray) -> Vault:
    """Create the vault directory (0700, like the reference) and its lock file; no checks yet."""
    keys = _derive_keys(_check_seed(seed))
    directory = Path(configdir) / vault_dir_name(seed)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return Vault(directory, keys, lock_fd, 0)


def _commit(manifest: Manifest, pending: Pending) -> Manifest:
    stores = dict(manifest.stores)
    stores[pending.store] = StoreState(pending.counter, pending.sha256)
    return Manifest(pending.counter, stores, None)


def _eip55(address: str) -> str:
    if not isinstance(address, str) or not is_hex_address(address):
        raise InvalidParams(f"Invalid address specified: {address}")
    hex_part = address[2:] if address[:2] in ("0x", "0X") else address
    return to_checksum(bytes.fromhex(hex_part))


def _check_text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"invalid {field}: must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidParams(f"invalid {field}: not valid unicode") from None
    if size > limit:
        raise InvalidParams(f"invalid {field}: longer than {limit} bytes")
    return value


class EncryptedStore:
    """One store of the vault; every call re-reads and re-verifies the file under the lock."""

    def __init__(self, vault: Vault, name: str) -> None:
        """Obtained from Vault.credentials / .jsstorage / .config."""
        self._vault = vault
        self.name = name

    def get(self, key: str) -> str | None:
        """The value, or None only when the key is truly absent; StorageTampered otherwise."""
        return self._vault._get(self.name, _check_text(key, "key", MAX_KEY_BYTES) or _empty())

    def put(self, key: str, value: str) -> None:
        """Encrypt value under a fresh nonce and rewrite the store atomically."""
        key = _check_text(key, "key", MAX_KEY_BYTES) or _empty()
        self._vault._update(self.name, key, _check_text(value, "value", MAX_VALUE_BYTES))

    def delete(self, key: str) -> None:
        """Remove the entry if present."""
        self._vault._update(self.name, _check_text(key, "key", MAX_KEY_BYTES) or _empty(), None)

    def keys(self) -> list[str]:
        """The stored keys (in clear in the file), sorted."""
        return self._vault._keys_of(self.name)


def _empty() -> str:
    raise InvalidParams("invalid key: must not be empty")


class RuleStorage:
    """storage.put/get for JS rules: "" for missing, value "" deletes, key "" ignored.

    Unlike the reference, a tampered or unreadable store raises StorageTampered instead of
    answering "": a rate-limit rule must not see an empty history and approve.
    """

    def __init__(self, store: EncryptedStore) -> None:
        """Wrap the jsstorage store."""
        self._store = store

    def get(self, key: str) -> str:
        """The stored string, or "" when absent (or for the empty key)."""
        if not isinstance(key, str):
            raise InvalidParams("invalid key: must be a string")
        if key == "":
            return ""
        value = self._store.get(key)
        return "" if value is None else value

    def put(self, key: str, value: str) -> None:
        """Store value under key; "" deletes; an empty key is ignored."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParams("invalid storage.put arguments: must be strings")
        if key == "":
            return
        if value == "":
            self._store.delete(key)
        else:
            self._store.put(key, value)


# ---------------------------------------------------------------------------------------------
# Migration of a reference configdir


@dataclass(frozen=True)
class MigrationReport:
    """What `migrate_vault` adopted: the vault path, the new counter and entries per store."""

    vault: Path
    counter: int
    entries: Mapping[str, int]
    had_manifest: bool


def migrate_vault(configdir: str | os.PathLike[str], seed: bytes | bytearray) -> MigrationReport:
    """Adopt the vault's current files under a new manifest, after checking every entry decrypts.

    This is the only way a vault without a manifest is accepted: an attacker who deletes the
    manifest must not get the stores adopted silently at start. Any entry that fails
    authentication aborts the migration with StorageTampered.
    """
    vault = _bare_vault(configdir, seed)
    directory, keys = vault.path, vault._keys
    try:
        with vault._locked():
            previous = 0
            had_manifest = False
            raw_manifest = _read_file(directory / MANIFEST, MAX_MANIFEST_BYTES, MANIFEST)
            if raw_manifest is not None:
                had_manifest = True
                with contextlib.suppress(StorageTampered):
                    previous = decode_manifest(raw_manifest, keys.manifest).counter
            counter = previous + 1
            stores: dict[str, StoreState] = {}
            counts: dict[str, int] = {}
            for name in STORES:
                raw = _read_file(directory / name, MAX_STORE_BYTES, name)
                entries = {} if raw is None else decode_store(raw, name)
                for key, entry in entries.items():
                    decrypt_entry(keys.stores[name], entry, key, name)
                counts[name] = len(entries)
                stores[name] = StoreState(counter if raw is not None else 0, _digest(raw))
            vault._write_manifest(Manifest(counter, stores))
    finally:
        vault.close()
    return MigrationReport(directory, counter, counts, had_manifest)
