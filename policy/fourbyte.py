"""The 4-byte selector database: the shipped one (compact, memory-mapped) and the custom one.

The shipped database (`policy/data/4byte.json.xz`, about 540,000 entries) would cost ~150 MB
and seconds per start as a Python dict. It is instead converted once into a compact cache
file and memory-mapped read-only; the policy worker maps it before it sandboxes itself and a
lookup is a binary search over the mapping (no allocation beyond the result, no I/O).

Cache layout (little-endian integers), checked on every open and rebuilt when stale or corrupt:

    0   magic  b"CLEF4BYT"
    8   u32    format version
    12  u32    entry count n
    16  u64    length of the names blob
    24  32     SHA-256 of the source file it was built from
    56  32     SHA-256 of everything after the header
    88  ...    zero padding up to 128
    128 n*4    u32 selectors (the 4 bytes read as a big-endian number), sorted ascending
        (n+1)*4 u32 offsets into the names blob (entry i is names[off[i]:off[i+1]])
        ...    names blob (ASCII signatures, concatenated)

The custom database (`--4bytedb-custom`) is a small in-memory model here: the policy worker has
no file access, so it hands `serialise()` bytes to keyd, which calls `write_custom_db`. Names
from the custom file (or from a caller) are *unverified*: a 4-byte collision costs a few
minutes of hashing, so such a name must never be presented as authoritative.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import lzma
import mmap
import os
import re
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

from clef.jsonrpc import MAX_DEPTH, loads_bounded
from policy.abi import MAX_SIGNATURE_LENGTH, AbiError, parse_signature

log = logging.getLogger(__name__)

SHIPPED_SOURCE: Final = Path(__file__).resolve().parent / "data" / "4byte.json.xz"
"""The database shipped with the package (go-ethereum's 4byte.json format, xz-compressed)."""

MAGIC: Final = b"CLEF4BYT"
FORMAT_VERSION: Final = 1
HEADER_SIZE: Final = 128
_HEADER: Final = struct.Struct("<8sIIQ32s32s")

MAX_SOURCE_BYTES: Final = 256 * 1024 * 1024
"""Refuse to decompress a source larger than this (a corrupt or hostile source file)."""

CUSTOM_MAX_ENTRIES: Final = 10_000
CUSTOM_MAX_BYTES: Final = 1024 * 1024

_SELECTOR_HEX: Final = re.compile(r"[0-9a-f]{8}")
# Canonical signatures contain only identifier characters, parentheses, commas and brackets.
_NAME_CHARS: Final = re.compile(r"[A-Za-z0-9$_(),\[\]]+")
_LINE: Final = re.compile(
    rb'"([0-9a-f]{8})":"([A-Za-z0-9$_(),\[\]]{1,%d})",?\n' % MAX_SIGNATURE_LENGTH
)


class FourByteError(Exception):
    """The selector database source or a custom database file is malformed."""


# --- building ---------------------------------------------------------------------------


def _read_source(source: Path) -> tuple[bytes, bytes]:
    """(raw file bytes, decompressed JSON text)."""
    raw = source.read_bytes()
    if source.suffix != ".xz":
        return raw, raw
    decompressor = lzma.LZMADecompressor()
    try:
        text = decompressor.decompress(raw, max_length=MAX_SOURCE_BYTES)
    except lzma.LZMAError as exc:
        raise FourByteError(f"{source}: corrupt xz data: {exc}") from None
    if not decompressor.eof:
        raise FourByteError(f"{source}: truncated, or larger than {MAX_SOURCE_BYTES} bytes")
    return raw, text


def _check_entry(selector: object, name: object) -> tuple[str, str]:
    if not isinstance(selector, str) or not _SELECTOR_HEX.fullmatch(selector):
        raise FourByteError(f"invalid selector {selector!r}: want 8 lower-case hex digits")
    if not isinstance(name, str) or len(name) > MAX_SIGNATURE_LENGTH:
        raise FourByteError(f"selector {selector}: signature is not a string of at most "
                            f"{MAX_SIGNATURE_LENGTH} characters")
    if not _NAME_CHARS.fullmatch(name):
        raise FourByteError(f"selector {selector}: signature {name!r} is not canonical")
    return selector, name


def _parse_lines(text: bytes) -> tuple[bytes, list[bytes]] | None:
    """Fast path for the reference layout (sorted, one entry per line); None if not in it."""
    if not text.startswith(b"{\n") or not text.endswith(b"}\n"):
        return None
    selectors: list[bytes] = []
    names: list[bytes] = []
    pos = 2
    end = len(text) - 2
    previous = b""
    comma = True
    for match in _LINE.finditer(text, pos, end):
        key = match.group(1)
        if match.start() != pos or key <= previous or not comma:
            return None
        previous = key
        comma = text[match.end() - 2] == ord(",")
        selectors.append(key)
        names.append(match.group(2))
        pos = match.end()
    if pos != end or (names and comma):
        return None
    return bytes.fromhex(b"".join(selectors).decode()), names


def _parse_json(text: bytes) -> tuple[bytes, list[bytes]]:
    """Any JSON object of selector -> signature (slower, builds a dict)."""
    document = loads_bounded(
        text,
        max_depth=MAX_DEPTH,
        error=lambda detail: FourByteError(f"invalid JSON: {detail}"),
        duplicate=lambda key: FourByteError(f"duplicate selector {key!r}"),
    )
    if not isinstance(document, dict):
        raise FourByteError("the database must be one JSON object")
    entries = sorted(_check_entry(k, v) for k, v in document.items())
    selectors = bytes.fromhex("".join(k for k, _ in entries))
    return selectors, [v.encode("ascii") for _, v in entries]


def _compact(selectors: bytes, names: list[bytes], source_digest: bytes) -> bytes:
    offsets = array("I", [0])
    total = 0
    for name in names:
        total += len(name)
        offsets.append(total)
    if total >= 1 << 32:
        raise FourByteError("names do not fit 32-bit offsets")
    numbers = array("I", struct.unpack(f">{len(names)}I", selectors))
    if sys.byteorder != "little":
        offsets.byteswap()
        numbers.byteswap()
    body = numbers.tobytes() + offsets.tobytes() + b"".join(names)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, len(names), total, source_digest, hashlib.sha256(body).digest()
    )
    return header.ljust(HEADER_SIZE, b"\x00") + body


def build_compact(source: Path) -> bytes:
    """Convert a 4byte.json (optionally .xz) into the compact, mappable form."""
    raw, text = _read_source(source)
    parsed = _parse_lines(text) or _parse_json(text)
    return _compact(*parsed, source_digest=hashlib.sha256(raw).digest())


def compact_from_mapping(entries: Mapping[str, str]) -> bytes:
    """The compact form of a small in-memory database (tests, hand-made databases)."""
    checked = sorted(_check_entry(k, v) for k, v in entries.items())
    selectors = bytes.fromhex("".join(k for k, _ in checked))
    return _compact(selectors, [v.encode("ascii") for _, v in checked], b"\x00" * 32)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so a crash leaves the old or the new content, never a torn one.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    _fsync_dir(directory)


def build_cache(cache: Path, source: Path = SHIPPED_SOURCE) -> None:
    """Build the compact cache file from the source database (atomically)."""
    data = build_compact(source)
    cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(cache, data, 0o644)


def default_cache_path(configdir: Path | None = None) -> Path:
    """Where the cache lives: `<configdir>/4byte.cache`, else `$XDG_CACHE_HOME/clef/4byte.cache`."""
    if configdir is not None:
        return configdir / "4byte.cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clef" / "4byte.cache"


# --- the mapped database ----------------------------------------------------------------


def _source_digest(source: Path) -> bytes:
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _cache_is_valid(cache: Path, source_digest: bytes) -> bool:
    """True if the cache file is complete, uncorrupted and built from this source."""
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        header = handle.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE:
            return False
        magic, version, count, names_len, built_from, body_digest = _HEADER.unpack_from(header)
        if magic != MAGIC or version != FORMAT_VERSION or built_from != source_digest:
            return False
        expected = HEADER_SIZE + 4 * count + 4 * (count + 1) + names_len
        if os.fstat(handle.fileno()).st_size != expected:
            return False
        # Read through the file (not the mapping) so checking does not add to our RSS.
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
        return bool(digest.digest() == body_digest)


class FourByteDB:
    """The shipped selector -> signature database in compact form (mapped or in memory)."""

    def __init__(self, buffer: bytes | mmap.mmap) -> None:
        if len(buffer) < HEADER_SIZE:
            raise FourByteError("4byte database: truncated header")
        magic, version, count, names_len, _, _ = _HEADER.unpack_from(buffer, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise FourByteError("4byte database: bad magic or version")
        if len(buffer) != HEADER_SIZE + 8 * count + 4 + names_len:
            raise FourByteError("4byte database: size does not match its header")
        self._buffer = buffer
        self._count: int = count
        self._names_len: int = names_len
        self._sel_start = HEADER_SIZE
        self._off_start = HEADER_SIZE + 4 * count
        self._names_start = self._off_start + 4 * (count + 1)
        self._view = memoryview(buffer)
        # Typed views let bisect search the selectors in C; on a big-endian host the
        # little-endian numbers are read one by one instead.
        native = sys.byteorder == "little"
        self._numbers: memoryview | None = (
            self._view[self._sel_start : self._off_start].cast("I") if native else None
        )
        self._offsets: memoryview | None = (
            self._view[self._off_start : self._names_start].cast("I") if native else None
        )

    @classmethod
    def open(cls, cache: Path, source: Path = SHIPPED_SOURCE) -> FourByteDB:
        """Map the cache read-only, building or rebuilding it from source when needed.

        If the cache cannot be written (read-only file system), the compact form is kept in
        memory instead (slower start, ~20 MB private memory) and a warning is logged.
        """
        digest = _source_digest(source)
        if not _cache_is_valid(cache, digest):
            log.info("building the 4byte selector cache %s from %s", cache, source)
            data = build_compact(source)
            try:
                cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(cache, data, 0o644)
            except OSError as exc:
                log.warning("cannot write the 4byte cache %s (%s); keeping it in memory",
                            cache, exc)
                return cls(data)
        try:
            fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
            db = cls(mapping)
        except (OSError, ValueError, FourByteError) as exc:
            # Replaced or removed between the check and the mapping (another process).
            log.warning("cannot map the 4byte cache %s (%s); keeping it in memory", cache, exc)
            return cls(build_compact(source))
        if mapping[24:56] != digest:
            db.close()
            log.warning("the 4byte cache %s changed while opening; keeping it in memory", cache)
            return cls(build_compact(source))
        return db

    @classmethod
    def from_mapping(cls, entries: Mapping[str, str]) -> FourByteDB:
        """An in-memory database from `{"a9059cbb": "transfer(address,uint256)"}` (tests)."""
        return cls(compact_from_mapping(entries))

    @classmethod
    def empty(cls) -> FourByteDB:
        """A database with no entries."""
        return cls.from_mapping({})

    def __len__(self) -> int:
        return self._count

    def __enter__(self) -> FourByteDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the mapping (lookups afterwards raise ValueError)."""
        for view in (self._numbers, self._offsets):
            if view is not None:
                view.release()
        self._numbers = self._offsets = None
        self._view.release()
        if isinstance(self._buffer, mmap.mmap):
            self._buffer.close()

    def _u32(self, typed: memoryview | None, start: int, index: int) -> int:
        if typed is not None:
            return int(typed[index])
        at = start + 4 * index
        return int.from_bytes(self._view[at : at + 4], "little")

    def _offset(self, index: int) -> int:
        return self._u32(self._offsets, self._off_start, index)

    def _selector(self, index: int) -> int:
        return self._u32(self._numbers, self._sel_start, index)

    def _name(self, index: int) -> str | None:
        start, end = self._offset(index), self._offset(index + 1)
        if not 0 <= start <= end <= self._names_len or end - start > MAX_SIGNATURE_LENGTH:
            log.error("4byte database entry %d is corrupt", index)
            return None
        raw = bytes(self._view[self._names_start + start : self._names_start + end])
        if not raw.isascii():
            log.error("4byte database entry %d is corrupt", index)
            return None
        return raw.decode("ascii")

    def lookup(self, selector: bytes) -> str | None:
        """The signature for a 4-byte selector, or None. Raises ValueError for another length."""
        if not isinstance(selector, bytes | bytearray) or len(selector) != 4:
            got = len(selector) if isinstance(selector, bytes | bytearray) else "non-bytes"
            raise ValueError(f"expected 4-byte id, got {got}")
        key = int.from_bytes(selector, "big")
        if self._numbers is not None:
            index = bisect.bisect_left(self._numbers, key)
        else:
            index = bisect.bisect_left(range(self._count), key, key=self._selector)
        if index < self._count and self._selector(index) == key:
            return self._name(index)
        return None

    def items(self) -> Iterator[tuple[bytes, str | None]]:
        """Every (selector, signature) pair in selector order."""
        for index in range(self._count):
            yield self._selector(index).to_bytes(4, "big"), self._name(index)


# --- the custom database ----------------------------------------------------------------


def _entry_size(selector: str, name: str) -> int:
    """Bytes the entry adds to the serialised JSON (`"k":"v",`), upper bound."""
    return len(json.dumps(selector)) + len(json.dumps(name, ensure_ascii=False).encode()) + 2


class CustomDB:
    """The `--4bytedb-custom` database: selectors learnt from callers. Names are unverified."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._entries: dict[str, str] = {}
        self._size = 2
        for selector, name in (entries or {}).items():
            self._add(*self._check(selector, name))

    @staticmethod
    def _check(selector: object, name: object) -> tuple[str, str]:
        if not isinstance(selector, str) or not _SELECTOR_HEX.fullmatch(selector):
            raise FourByteError(
                f"invalid 4byte custom database: key {str(selector)[:20]!r} "
                "is not 8 lower-case hex digits"
            )
        if not isinstance(name, str) or len(name) > MAX_SIGNATURE_LENGTH:
            raise FourByteError(
                f"invalid 4byte custom database: value for {selector} is not a string of at "
                f"most {MAX_SIGNATURE_LENGTH} characters"
            )
        return selector, name

    def _add(self, selector: str, name: str) -> None:
        size = _entry_size(selector, name)
        if len(self._entries) >= CUSTOM_MAX_ENTRIES or self._size + size > CUSTOM_MAX_BYTES:
            raise FourByteError(
                f"invalid 4byte custom database: more than {CUSTOM_MAX_ENTRIES} entries "
                f"or {CUSTOM_MAX_BYTES} bytes"
            )
        self._entries[selector] = name
        self._size += size

    @classmethod
    def load(cls, data: bytes) -> CustomDB:
        """Parse the custom file's bytes (`{"a52c101e":"send(uint256)"}`).

        Raises FourByteError on invalid JSON, a non-object, bad keys or values, or a file
        over the caps (the reference refuses to start on invalid JSON too).
        """
        if len(data) > CUSTOM_MAX_BYTES:
            raise FourByteError(
                f"invalid 4byte custom database: larger than {CUSTOM_MAX_BYTES} bytes"
            )
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise FourByteError(f"invalid 4byte custom database: {exc}") from None
        if not isinstance(document, dict):
            raise FourByteError("invalid 4byte custom database: not a JSON object")
        return cls(document)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, selector: object) -> bool:
        return isinstance(selector, bytes | bytearray) and bytes(selector).hex() in self._entries

    def lookup(self, selector: bytes) -> str | None:
        """The (unverified) signature learnt for a selector, or None."""
        if not isinstance(selector, bytes | bytearray) or len(selector) != 4:
            raise ValueError("expected 4-byte id")
        return self._entries.get(bytes(selector).hex())

    def learn(self, selector: bytes, signature: str, *, shipped: FourByteDB | None = None) -> bool:
        """Add a selector a caller supplied and the calldata verified; True if it was added.

        Only canonical signatures that hash to the selector are accepted, only for selectors
        that neither this nor the shipped database knows, and only within the size caps.
        """
        if not isinstance(selector, bytes | bytearray) or len(selector) != 4:
            raise ValueError("expected 4-byte id")
        try:
            parsed = parse_signature(signature)
        except AbiError:
            return False
        if parsed.canonical != signature or parsed.selector != bytes(selector):
            return False
        key = bytes(selector).hex()
        if key in self._entries or (shipped is not None and shipped.lookup(bytes(selector))):
            return False
        try:
            self._add(key, signature)
        except FourByteError:
            log.warning("4byte custom database is full; not adding %s", key)
            return False
        return True

    def items(self) -> Iterable[tuple[str, str]]:
        """(selector hex, signature) pairs, sorted."""
        return sorted(self._entries.items())

    def serialise(self) -> bytes:
        """Compact JSON with sorted keys, byte-identical to what the reference writes."""
        text = json.dumps(dict(self.items()), separators=(",", ":"), ensure_ascii=False)
        # Go's json.Marshal escapes these for safe embedding in HTML/JS.
        for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                              ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(char, escaped)
        return text.encode()


def read_custom_db(path: Path) -> CustomDB:
    """Load the custom database file for keyd; a missing file is an empty database."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return CustomDB()
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(CUSTOM_MAX_BYTES + 1)
    return CustomDB.load(data)


def write_custom_db(path: Path, data: bytes) -> None:
    """keyd's side: atomically replace the custom database with `serialise()` output (0600)."""
    if len(data) > CUSTOM_MAX_BYTES:
        raise FourByteError(f"custom 4byte database over {CUSTOM_MAX_BYTES} bytes")
    CustomDB.load(data)  # never persist something we could not load again
    atomic_write(path, data, 0o600)
