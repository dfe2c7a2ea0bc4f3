"""The audit log: the reference's logfmt lines plus a hash chain, made durable by group commit.

Line format (Go slog TextHandler, as the reference wrote it), with two fields appended::

    time=2026-06-03T10:00:00.123Z level=INFO msg=Version api=signer type=request ... seq=7 prev=..

- `seq` counts lines from 1 and never repeats within a chain; `prev` is the hex SHA-256 of the
  previous line's bytes including its newline (the first line of a chain uses `GENESIS`, 64
  zeros). Editing, deleting or reordering any line therefore breaks the `prev` of the line after
  it, and deleting lines also leaves a gap in `seq`.
- What the chain cannot show on its own: removal of whole trailing lines (the tail simply ends
  earlier) and an edit of the very last line, and (being unkeyed) a suffix rewritten consistently
  by someone with write access. `AuditLog.head` gives the (seq, sha256) anchor of the last durable
  line; keep it outside the host and pass it to `verify` to close that gap.
- Durability: `append` returns only after its line has been written and fsync'ed. A single writer
  task batches every line queued while the previous fsync ran (group commit), so concurrent
  requests share one fsync instead of queueing behind each other.
- Restart: an existing log is continued from its last complete line. A torn last line (a crash
  mid-write, never acknowledged) is closed with a newline, left in place as evidence, and a marker
  line carrying its SHA-256 resumes the chain from the last good line. A tail that is not chained
  (a reference log) starts a new chain at `GENESIS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

import trio

from clef.errors import InternalError
from clef.eth.address import MixedcaseAddress

AuditValue = str | int | bool | bytes | None
Fields = tuple[tuple[str, AuditValue], ...]

GENESIS = "0" * 64
LEVEL = "INFO"
API_FIELD = ("api", "signer")
CONFIGURED_MSG = "Configured"
RESUMED_MSG = "Audit log resumed after a torn line"
CHAIN_START_MSG = "Audit chain start"
REDACTED = "<redacted>"

MAX_FIELDS = 64
MAX_KEY_CHARS = 128
# Only the tail is scanned at start and verify reads line by line: a hostile multi-gigabyte line
# must not be pulled into memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
_TAIL_CHUNK = 64 * 1024

_log = logging.getLogger(__name__)

_CHAIN_TAIL = re.compile(rb" seq=(0|[1-9][0-9]{0,18}) prev=([0-9a-f]{64})\n\Z")
_SENSITIVE_EXACT = frozenset(
    {"password", "passphrase", "key", "privatekey", "private_key", "secret", "seed", "pin", "puk"}
)
_SENSITIVE_PARTS = ("password", "passphrase", "privatekey", "private_key", "secret")


class AuditLogError(InternalError):
    """The audit line could not be made durable; the response must not be sent."""

    def __init__(self, message: str = "audit log write failed") -> None:
        super().__init__(message)


def default_redact(key: str, value: AuditValue) -> AuditValue:
    """Replace the value of any field whose name suggests a secret (password, passphrase, key…)."""
    lowered = key.lower()
    if lowered in _SENSITIVE_EXACT or any(part in lowered for part in _SENSITIVE_PARTS):
        return REDACTED
    return value


# ---------------------------------------------------------------------------------------------
# Go slog TextHandler encoding


def _needs_quoting(text: str) -> bool:
    """Go slog needsQuoting: empty, space, '=', '"', control characters, non-printable runes."""
    if not text:
        return True
    if text.isascii() and text.isprintable():
        # The common case, decided in C: printable ASCII needs quotes only for these three.
        return " " in text or "=" in text or '"' in text
    for char in text:
        code = ord(char)
        if code < 0x80:
            if char != "\\" and (char in ' ="' or code < 0x20 or code == 0x7F):
                return True
        elif char == "\ufffd" or not char.isprintable() or 0xDC80 <= code <= 0xDCFF:
            return True
    return False


_SHORT_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
    "\r": "\\r", "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"',
}  # fmt: skip


def go_quote(text: str) -> str:
    """strconv.Quote: a double-quoted Go string literal (printable runes kept, others escaped)."""
    if text.isascii() and text.isprintable():
        # The common case, done in C: of printable ASCII only the backslash and quote change.
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")  # a raw byte carried by surrogateescape
        elif code < 0x80:
            out.append(char if 0x20 <= code < 0x7F else f"\\x{code:02x}")
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _encode_value(value: AuditValue) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        # slog prints []byte always quoted (strconv.Quote of the bytes as a string).
        return go_quote(value.decode("utf-8", "surrogateescape"))
    return go_quote(value) if _needs_quoting(value) else value


def _encode_key(key: str) -> str:
    return go_quote(key) if _needs_quoting(key) else key


def format_time(moment: datetime) -> str:
    """Go slog's time: RFC 3339 truncated to milliseconds, `Z` for UTC."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
    text = moment.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_line(moment: datetime, msg: str, fields: Fields, seq: int, prev: str) -> bytes:
    """One complete audit line (with newline): time, level, msg, api=signer, fields, seq, prev."""
    parts = [f"time={format_time(moment)}", f"level={LEVEL}", f"msg={_encode_value(msg)}"]
    for key, value in (API_FIELD, *fields):
        parts.append(f"{_encode_key(key)}={_encode_value(value)}")
    parts.append(f"seq={seq}")
    parts.append(f"prev={prev}")
    return (" ".join(parts) + "\n").encode("utf-8", "surrogateescape")


def line_hash(line: bytes) -> str:
    """The chain hash of a line: hex SHA-256 of its bytes including the newline."""
    return hashlib.sha256(line).hexdigest()


_UNQUOTE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """Split a logfmt line into (key, value) pairs, undoing Go quoting; ValueError if malformed."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    end = len(line.rstrip("\n"))
    while pos < end:
        key, pos = _parse_token(line, pos, end, stop="=")
        if pos >= end or line[pos] != "=":
            raise ValueError(f"missing '=' after key at offset {pos}")
        value, pos = _parse_token(line, pos + 1, end, stop=" ")
        pairs.append((key, value))
        if pos < end:
            if line[pos] != " ":
                raise ValueError(f"expected a space at offset {pos}")
            pos += 1
    return pairs


def _parse_token(line: str, pos: int, end: int, stop: str) -> tuple[str, int]:
    if pos < end and line[pos] == '"':
        return _parse_quoted(line, pos + 1, end)
    start = pos
    while pos < end and line[pos] != stop and line[pos] != " ":
        pos += 1
    return line[start:pos], pos


def _parse_quoted(line: str, pos: int, end: int) -> tuple[str, int]:
    out: list[str] = []
    while pos < end:
        char = line[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char != "\\":
            out.append(char)
            pos += 1
            continue
        if pos + 1 >= end:
            break
        esc = line[pos + 1]
        if esc in _UNQUOTE:
            out.append(_UNQUOTE[esc])
            pos += 2
        elif esc in "\\\"'":
            out.append(esc)
            pos += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = line[pos + 2 : pos + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError(f"bad \\{esc} escape at offset {pos}")
            code = int(digits, 16)
            if esc == "x" and code >= 0x80:
                out.append(chr(0xDC00 + code))
            elif code > 0x10FFFF:
                raise ValueError(f"escape out of range at offset {pos}")
            else:
                out.append(chr(code))
            pos += 2 + width
        else:
            raise ValueError(f"unknown escape \\{esc} at offset {pos}")
    raise ValueError("unterminated quoted string")


# ---------------------------------------------------------------------------------------------
# Entries: what callers hand to append()


@dataclass(frozen=True)
class AuditEntry:
    """One line's message and its fields, in order (time, level, api, seq, prev are added)."""

    msg: str
    fields: Fields = ()

    def __post_init__(self) -> None:
        if not isinstance(self.msg, str) or not self.msg:
            raise ValueError("invalid msg: must be a non-empty string")
        if not isinstance(self.fields, tuple) or len(self.fields) > MAX_FIELDS:
            raise ValueError(f"invalid fields: must be a tuple of at most {MAX_FIELDS} pairs")
        for index, pair in enumerate(self.fields):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValueError(f"invalid fields[{index}]: must be a (key, value) pair")
            key, value = pair
            if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
                raise ValueError(f"invalid fields[{index}] key: 1..{MAX_KEY_CHARS} characters")
            if key in ("seq", "prev", "time", "level", "msg"):
                raise ValueError(f"invalid fields[{index}] key: {key!r} is reserved")
            if value is not None and not isinstance(value, str | int | bool | bytes):
                raise ValueError(f"invalid fields[{index}] value: unsupported type")


def _addr_display(addr: MixedcaseAddress) -> str:
    mark = "[chksum ok]" if addr.valid_checksum() else "[chksum INVALID]"
    return f"{addr.original} {mark}"


def list_request(metadata: str) -> AuditEntry:
    """`List type=request metadata=<meta JSON>`."""
    return AuditEntry("List", (("type", "request"), ("metadata", metadata)))


def list_response(addresses: Sequence[str]) -> AuditEntry:
    """`List type=response data=[0xA.. 0xB..]` (Go %+v of the EIP-55 addresses)."""
    return AuditEntry("List", (("type", "response"), ("data", "[" + " ".join(addresses) + "]")))


def sign_transaction_request(
    metadata: str, tx_json: str, method_selector: str | None
) -> AuditEntry:
    """`SignTransaction type=request metadata=.. tx=<SendTxArgs JSON> methodSelector=..`."""
    return AuditEntry(
        "SignTransaction",
        (
            ("type", "request"),
            ("metadata", metadata),
            ("tx", tx_json),
            ("methodSelector", "<nil>" if method_selector is None else method_selector),
        ),
    )


def sign_transaction_response(raw: bytes | None, error: str | None) -> AuditEntry:
    """`SignTransaction type=response data=<raw hex without 0x>|<nil> error=..`."""
    data = None if raw is None else raw.hex()
    return AuditEntry(
        "SignTransaction", (("type", "response"), ("data", data), ("error", error))
    )


def sign_data_request(
    metadata: str, addr: MixedcaseAddress, data_json: bytes, content_type: str
) -> AuditEntry:
    """`SignData type=request metadata=.. addr="<orig> [chksum ..]" data=<JSON> content-type=..`."""
    return AuditEntry(
        "SignData",
        (
            ("type", "request"),
            ("metadata", metadata),
            ("addr", _addr_display(addr)),
            ("data", data_json),
            ("content-type", content_type),
        ),
    )


def signature_response(msg: str, signature: bytes | None, error: str | None) -> AuditEntry:
    """`<SignData|SignTypedData> type=response data=<sig hex, "" on error> error=..`."""
    data = "" if signature is None else signature.hex()
    return AuditEntry(msg, (("type", "response"), ("data", data), ("error", error)))


def sign_gnosis_safe_request(
    metadata: str, addr: MixedcaseAddress, tx_json: str, selector: str | None
) -> AuditEntry:
    """`SignGnosisSafeTx type=request metadata=.. addr=.. data=<tx JSON> selector=..`."""
    return AuditEntry(
        "SignGnosisSafeTx",
        (
            ("type", "request"),
            ("metadata", metadata),
            ("addr", _addr_display(addr)),
            ("data", tx_json),
            ("selector", "<nil>" if selector is None else selector),
        ),
    )


def sign_gnosis_safe_response(result_json: str | None, error: str | None) -> AuditEntry:
    """`SignGnosisSafeTx type=response data=<result JSON>|<nil> error=..`."""
    return AuditEntry(
        "SignGnosisSafeTx",
        (("type", "response"), ("data", result_json), ("error", error)),
    )


def sign_typed_data_request(metadata: str, addr: MixedcaseAddress, typed_json: str) -> AuditEntry:
    """`SignTypedData type=request ... data=<typed data JSON>` (the reference printed Go %+v)."""
    return AuditEntry(
        "SignTypedData",
        (
            ("type", "request"),
            ("metadata", metadata),
            ("addr", _addr_display(addr)),
            ("data", typed_json),
        ),
    )


def ec_recover_request(metadata: str, data: bytes, sig: bytes) -> AuditEntry:
    """`EcRecover type=request metadata=.. data=<hex> sig=<hex>` (hex without 0x)."""
    return AuditEntry(
        "EcRecover",
        (("type", "request"), ("metadata", metadata), ("data", data.hex()), ("sig", sig.hex())),
    )


def ec_recover_response(address: str, error: str | None) -> AuditEntry:
    """`EcRecover type=response address=<0xEIP55> error=..`."""
    return AuditEntry(
        "EcRecover", (("type", "response"), ("address", address), ("error", error))
    )


def version_request(metadata: str) -> AuditEntry:
    """`Version type=request metadata=..`."""
    return AuditEntry("Version", (("type", "request"), ("metadata", metadata)))


def version_response(version: str, error: str | None = None) -> AuditEntry:
    """`Version type=response data=6.1.0 error=<nil>`."""
    return AuditEntry(
        "Version", (("type", "response"), ("data", version), ("error", error))
    )


# ---------------------------------------------------------------------------------------------
# Reading the tail of an existing log


@dataclass(frozen=True)
class Head:
    """The anchor of a chain: the seq and SHA-256 of its last line."""

    seq: int
    sha256: str

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError("invalid seq: must be a non-negative integer")
        if not isinstance(self.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError("invalid sha256: must be 64 lowercase hex digits")

    @classmethod
    def parse(cls, text: str) -> Head:
        """Parse `SEQ:SHA256` (as printed by `clef audit verify`)."""
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit():
            raise ValueError("invalid anchor: expected SEQ:SHA256")
        return cls(int(seq), digest.lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.sha256}"


@dataclass(frozen=True)
class _Tail:
    """What start-up needs to know about the existing file's end."""

    head: Head | None  # the chain to continue, or None for a new chain
    torn: bytes | None  # the incomplete last line, if any
    reason: str | None  # why a new chain starts, when head is None and the file is not empty


def _chain_fields(line: bytes) -> tuple[int, str] | None:
    match = _CHAIN_TAIL.search(line)
    if match is None:
        return None
    return int(match.group(1)), match.group(2).decode()


def _after_last_newline(fd: int, limit: int) -> int | None:
    """Offset just after the last newline in [0, limit) (0 if none); None past the line cap."""
    pos = limit
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        cut = os.pread(fd, pos - start, start).rfind(b"\n")
        if cut >= 0:
            found = start + cut + 1
            return found if limit - found <= MAX_LINE_BYTES else None
        if limit - start > MAX_LINE_BYTES:
            return None
        pos = start
    return 0


def _scan_tail(fd: int) -> _Tail:
    size = os.fstat(fd).st_size
    if size == 0:
        return _Tail(None, None, None)
    too_long = "the last line is too long to resume the chain"
    torn: bytes | None = None
    end = size  # the last complete line ends here (just after its newline)
    if os.pread(fd, 1, size - 1) != b"\n":
        start = _after_last_newline(fd, size)
        if start is None:
            return _Tail(None, None, too_long)
        torn = os.pread(fd, size - start, start)
        end = start
    if end == 0:
        return _Tail(None, torn, "no complete line before the torn line")
    begin = _after_last_newline(fd, end - 1)
    if begin is None:
        return _Tail(None, torn, too_long)
    last = os.pread(fd, end - begin, begin)
    chained = _chain_fields(last)
    if chained is None:
        return _Tail(None, torn, "the last complete line is not chained")
    return _Tail(Head(chained[0], line_hash(last)), torn, None)


# ---------------------------------------------------------------------------------------------
# The writer


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


def _now() -> datetime:
    return datetime.now().astimezone()


class AuditLog:
    """An append-only, hash-chained audit log with group-committed fsync; run it in a nursery."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        redact: Callable[[str, AuditValue], AuditValue] = default_redact,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._path = os.fspath(path)
        self._redact = redact
        self._clock = clock
        self._fd: int | None = None
        self._seq = 0
        self._prev = GENESIS
        self._pending = _Batch()
        self._wakeup = trio.Event()
        self._closing = False
        self._stopped = trio.Event()
        self._failure: BaseException | None = None
        self.torn_line: bytes | None = None
        self.fsyncs = 0

    @property
    def path(self) -> str:
        """The log file's path as configured."""
        return self._path

    @property
    def head(self) -> Head:
        """The anchor of the last line handed to the writer (durable once its append returned)."""
        return Head(self._seq, self._prev)

    async def start(self) -> None:
        """Open the file and write the start lines durably (AuditLogError/OSError on failure)."""
        if self._fd is not None:
            return
        lines = await trio.to_thread.run_sync(self._open_and_start)
        try:
            await trio.to_thread.run_sync(self._write_and_sync, b"".join(lines))
        except BaseException:
            self._close_fd()
            raise

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """start(), then commit batches until aclose(); for `nursery.start(log.run)`."""
        try:
            await self.start()
            task_status.started()
            await self._write_loop()
        finally:
            self._closing = True
            self._fail_pending(AuditLogError("audit log closed"))
            self._close_fd()
            self._stopped.set()

    async def append(self, entry: AuditEntry) -> None:
        """Chain and queue one line; return once it is on disk (AuditLogError if it cannot be)."""
        batch = self._queue(entry)
        await batch.done.wait()
        if batch.error is not None:
            raise AuditLogError() from batch.error

    def queue(self, entry: AuditEntry) -> None:
        """Chain one line and hand it to the writer without waiting for it to be on disk.

        The line is written and fsync'ed with the next group commit. Lines reach the disk in
        chain order, so once a later line's append() has returned this one is durable too;
        a failed commit fails every later append() (AuditLogError), never silently.
        """
        self._queue(entry)

    def _queue(self, entry: AuditEntry) -> _Batch:
        if self._failure is not None:
            raise AuditLogError() from self._failure
        if self._closing or self._fd is None:
            raise AuditLogError("audit log is not running")
        fields = tuple((key, self._redact(key, value)) for key, value in entry.fields)
        # Chaining happens here, synchronously, so the chain order is the write order.
        batch = self._pending
        batch.lines.append(self._chain(entry.msg, fields))
        self._wakeup.set()
        return batch

    async def aclose(self) -> None:
        """Flush what is queued, then stop the writer task and close the file."""
        self._closing = True
        self._wakeup.set()
        await self._stopped.wait()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _chain(self, msg: str, fields: Fields) -> bytes:
        line = format_line(self._clock(), msg, fields, self._seq + 1, self._prev)
        self._seq += 1
        self._prev = line_hash(line)
        return line

    def _open_and_start(self) -> list[bytes]:
        # Read access only for scanning the tail at start; every write is an O_APPEND write.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        existed = Path(self._path).exists()
        fd = os.open(self._path, flags, 0o600)
        try:
            info = os.fstat(fd)
            _require_regular(info, self._path)
            if info.st_mode & 0o077:
                # Older logs were 0644 (the reference's mode); request metadata is not public.
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o600)
            tail = _scan_tail(fd)
            if not existed:
                _fsync_dir(str(Path(self._path).absolute().parent))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        lines: list[bytes] = []
        if tail.torn is not None:
            # Close the torn line so the next line starts cleanly; it stays as evidence.
            lines.append(b"\n")
            self.torn_line = tail.torn
            _log.warning(
                "Audit log %s ended with a torn line (%d bytes, a crash mid-write); resuming",
                self._path,
                len(tail.torn),
            )
        if tail.head is not None:
            self._seq, self._prev = tail.head.seq, tail.head.sha256
        if tail.torn is not None and tail.head is not None:
            lines.append(
                self._chain(
                    RESUMED_MSG,
                    (("torn_sha256", line_hash(tail.torn + b"\n")), ("torn_bytes", len(tail.torn))),
                )
            )
        elif tail.reason is not None:
            _log.warning("Audit log %s: starting a new hash chain: %s", self._path, tail.reason)
            lines.append(self._chain(CHAIN_START_MSG, (("reason", tail.reason),)))
        lines.append(self._chain(CONFIGURED_MSG, (("audit log", self._path),)))
        return lines

    async def _write_loop(self) -> None:
        while True:
            if not self._pending.lines:
                if self._closing:
                    return
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            batch, self._pending = self._pending, _Batch()
            await self._commit(batch)
            if self._failure is not None:
                self._fail_pending(AuditLogError())
                return

    async def _commit(self, batch: _Batch) -> None:
        data = b"".join(batch.lines)
        try:
            await trio.to_thread.run_sync(self._write_and_sync, data)
        except OSError as exc:
            # Fail closed: the chain state on disk is unknown, so nothing more is accepted.
            self._failure = exc
            batch.error = exc
        except BaseException as exc:
            self._failure = exc
            batch.error = exc
            raise
        finally:
            batch.done.set()

    def _write_and_sync(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise OSError("audit log is closed")
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        _fdatasync(fd)
        self.fsyncs += 1

    def _fail_pending(self, error: BaseException) -> None:
        if self._pending.lines:
            self._pending.error = error
            self._pending.done.set()
            self._pending = _Batch()


def _require_regular(info: os.stat_result, path: str) -> None:
    # A FIFO or device in place of the log would block or swallow the durable writes.
    if not stat.S_ISREG(info.st_mode):
        raise AuditLogError(f"audit log {path} is not a regular file")


def _fdatasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@asynccontextmanager
async def open_audit_log(
    path: str | os.PathLike[str],
    *,
    redact: Callable[[str, AuditValue], AuditValue] = default_redact,
    clock: Callable[[], datetime] = _now,
) -> AsyncIterator[AuditLog]:
    """Run an AuditLog for the duration of the block (writer task in its own nursery)."""
    log = AuditLog(path, redact=redact, clock=clock)
    await log.start()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.run)
            try:
                yield log
            finally:
                await log.aclose()
    except BaseExceptionGroup as group:
        # The nursery is an implementation detail: let the body's own exception through as is.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify`: ok is False when any error (tampering or truncation) was found."""

    ok: bool
    lines: int
    chained_lines: int
    segments: int
    head: Head | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def _iter_lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, too_long); an over-long line is skipped to its newline, not held in memory."""
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield b"", True
            continue
        yield line, False


def _marker_torn_hash(line: bytes) -> str | None:
    try:
        pairs = dict(parse_logfmt(line.decode("utf-8", "surrogateescape")))
    except ValueError:
        return None
    if pairs.get("msg") != RESUMED_MSG:
        return None
    return pairs.get("torn_sha256")


def verify(path: str | os.PathLike[str], anchor: Head | None = None) -> VerifyReport:
    """Check the hash chain of an audit log; with an anchor, also that it reaches that line."""
    errors: list[str] = []
    warnings: list[str] = []
    count = chained = segments = 0
    last: Head | None = None
    unchained_prefix = 0
    pending_unchained: tuple[int, bytes] | None = None  # a line that may be a torn one
    anchor_seen = False

    def flush_pending(next_line: bytes | None) -> None:
        nonlocal pending_unchained
        if pending_unchained is None:
            return
        number, raw = pending_unchained
        pending_unchained = None
        acked = next_line is not None and _marker_torn_hash(next_line) == line_hash(raw)
        if acked:
            warnings.append(f"line {number}: torn line (crash mid-write), acknowledged at restart")
        elif last is None:
            pass  # counted as part of the unchained prefix
        else:
            errors.append(f"line {number}: not a chained audit line (edited or inserted)")

    with open(path, "rb") as stream:
        for raw, too_long in _iter_lines(stream):
            count += 1
            if too_long:
                flush_pending(None)
                errors.append(f"line {count}: longer than {MAX_LINE_BYTES} bytes")
                continue
            if not raw.endswith(b"\n"):
                flush_pending(None)
                errors.append(
                    f"line {count}: incomplete last line (truncated, a crash mid-write, "
                    "or a write in progress)"
                )
                continue
            fields = _chain_fields(raw)
            flush_pending(raw)
            if fields is None:
                if last is None:
                    unchained_prefix += 1
                pending_unchained = (count, raw)
                continue
            seq, prev = fields
            digest = line_hash(raw)
            chained += 1
            if prev == GENESIS:
                segments += 1
                if last is not None:
                    errors.append(
                        f"line {count}: restarts the hash chain although line seq={last.seq} "
                        "before it is chained"
                    )
                elif count > 1:
                    warnings.append(f"line {count}: a new hash chain starts here")
            elif last is None:
                errors.append(
                    f"line {count}: chained to a line that is not in the file "
                    "(the beginning was removed)"
                )
                segments += 1
            else:
                if prev != last.sha256:
                    errors.append(
                        f"line {count} (seq={seq}): prev does not match the previous line: "
                        "a line was edited, deleted or reordered"
                    )
                if seq != last.seq + 1:
                    if seq > last.seq + 1:
                        errors.append(
                            f"line {count}: seq jumps from {last.seq} to {seq}: "
                            f"{seq - last.seq - 1} line(s) missing"
                        )
                    else:
                        errors.append(
                            f"line {count}: seq {seq} does not follow {last.seq} (reordered or "
                            "duplicated)"
                        )
            last = Head(seq, digest)
            if anchor is not None and seq == anchor.seq and digest == anchor.sha256:
                anchor_seen = True
        flush_pending(None)
    if unchained_prefix:
        warnings.append(f"{unchained_prefix} line(s) before the hash chain are not protected")
    if anchor is not None and not anchor_seen:
        if last is None or last.seq < anchor.seq:
            errors.append(f"the anchored line seq={anchor.seq} is missing: the log was truncated")
        else:
            errors.append(f"the anchored line seq={anchor.seq} does not match: the log was altered")
    if chained == 0 and count:
        errors.append("no chained line: this is not a hash-chained audit log")
    return VerifyReport(
        ok=not errors,
        lines=count,
        chained_lines=chained,
        segments=segments,
        head=last,
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def main_verify(
    path: str | os.PathLike[str], expect: str | None = None, out: TextIO | None = None
) -> int:
    """`clef audit verify FILE [--expect SEQ:SHA256]`: print a verdict; 0 intact, 1 not, 2 error."""
    stream = out if out is not None else sys.stdout
    path = os.fspath(path)
    anchor: Head | None = None
    if expect is not None:
        try:
            anchor = Head.parse(expect)
        except ValueError as exc:
            print(f"audit verify: {exc}", file=stream)
            return 2
    try:
        report = verify(path, anchor)
    except OSError as exc:
        print(f"audit verify: cannot read {path}: {exc.strerror or exc}", file=stream)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=stream)
    for error in report.errors:
        print(f"error: {error}", file=stream)
    if report.ok:
        print(
            f"OK: {path}: {report.lines} lines, hash chain intact "
            f"({report.chained_lines} chained, {report.segments} segment(s))",
            file=stream,
        )
    else:
        print(f"FAILED: {path}: {len(report.errors)} problem(s) found", file=stream)
    if report.head is not None:
        print(f"head: {report.head}", file=stream)
    if anchor is None:
        print(
            "note: removal of whole lines at the end cannot be detected without an anchor; "
            "keep the head elsewhere and pass it with --expect SEQ:SHA256",
            file=stream,
        )
    return 0 if report.ok else 1

