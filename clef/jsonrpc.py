"""JSON-RPC 2.0, sans-IO: a streaming splitter for IPC/stdio, request validation, response shapes.

Used by the net worker (HTTP and IPC, untrusted callers) and by keyd's stdio UI channel.
Nothing here performs I/O, so it can be fuzzed and property-tested directly.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clef.errors import ClefError, InvalidRequest, ParseError

MAX_MESSAGE = 5 * 1024 * 1024
MAX_DEPTH = 64

_JSON_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_STRUCTURAL = re.compile(rb'["\[\]{}]')
_STRING_SPECIAL = re.compile(rb'["\\]')


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two values for one key wins, so a proxy, a UI or a rule
    # and this signer could read different requests: refuse instead of guessing.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads_bounded(
    text: bytes | str,
    *,
    max_depth: int,
    error: Callable[[str], Exception],
    duplicate: Callable[[str], Exception] | None = None,
    invalid_utf8: str = "JSON is not valid UTF-8",
) -> Any:
    """Parse untrusted JSON strictly: UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting.

    Every failure raises error(detail): `invalid_utf8`, "JSON nested deeper than N levels" or
    the decoder's message. A repeated key raises duplicate(key) if given, else
    error("duplicate key 'k'"). Sizes are the caller's to bound before calling.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise error(invalid_utf8) from None
    # The C decoder recurses on the C stack: deep nesting can crash the process outright
    # (a RecursionError is not guaranteed), so the depth is measured before decoding.
    if nesting_depth(text) > max_depth:
        raise error(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        if duplicate is not None:
            raise duplicate(exc.key) from None
        raise error(f"duplicate key {exc.key!r}") from None
    except RecursionError:
        raise error("JSON nested too deeply") from None
    except ValueError as exc:
        raise error(str(exc)) from None


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly (no NaN/Infinity, bounded nesting) or raise ParseError."""
    return loads_bounded(
        data, max_depth=MAX_DEPTH, error=ParseError, invalid_utf8="invalid UTF-8 in request"
    )


def dumps(obj: Any) -> bytes:
    """Compact JSON, as geth writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def nesting_depth(text: str) -> int:
    """Deepest [/{ nesting outside strings (checked before parsing: deep JSON can crash CPython).

    Runs in C-speed passes. Exact for valid JSON; for invalid JSON it may over-count, never
    under-count, the nesting a parser reaches before it stops at the first error.
    """
    # Escape pairs first (left to right, as JSON reads them), then escaped quotes: every
    # remaining quote delimits a string, and brackets inside strings are dropped with it.
    body = text.replace("\\\\", "").replace('\\"', "")
    body = _NOT_BRACKET.sub("", _JSON_STRING.sub("", body))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, body), initial=0))


class StreamSplitter:
    """Splits a byte stream of concatenated JSON values (objects or arrays) into messages.

    geth's IPC and stdio transports use a streaming JSON decoder, so values may be separated by
    newlines, other whitespace or nothing. A value larger than max_message, or a stream that does
    not start a value with '{' or '[', is an error: the connection must be closed.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._scan = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._started = False

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """Add bytes; return every complete top-level JSON text now available."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        end = len(buf)
        i = self._scan
        begin = 0  # where the current value starts (bytes before it are consumed)
        # Regex searches jump to the next byte that matters (C speed); the state machine is
        # the same as a byte-by-byte scan.
        while i < end:
            if not self._started:
                while i < end and buf[i] in b" \t\r\n":
                    i += 1
                begin = i
                if i == end:
                    break
                if buf[i] not in b"{[":
                    del buf[:begin]
                    raise ParseError("invalid character at start of JSON value")
                self._started = True
                self._depth = 0
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                    i += 1
                    continue
                match = _STRING_SPECIAL.search(buf, i)
                if match is None:
                    i = end
                    break
                i = match.end()
                if buf[match.start()] == 0x5C:
                    self._escaped = True
                else:
                    self._in_string = False
                continue
            match = _STRUCTURAL.search(buf, i)
            if match is None:
                i = end
                break
            i = match.end()
            ch = buf[match.start()]
            if ch == 0x22:
                self._in_string = True
            elif ch in b"{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    # A value completed within one large read must obey the cap too.
                    if i - begin > self._max:
                        raise ParseError(f"message exceeds {self._max} bytes")
                    out.append(bytes(buf[begin:i]))
                    begin = i
                    self._started = False
        del buf[:begin]
        self._scan = i - begin
        if len(buf) > self._max:
            raise ParseError(f"message exceeds {self._max} bytes")
        return out


@dataclass(frozen=True)
class Request:
    """One validated JSON-RPC request or notification."""

    method: str
    params: list[Any]
    id: Any = None
    is_notification: bool = False
    params_was_object: bool = False


@dataclass
class Batch:
    """A parsed message: either a single request or a batch, plus per-item envelope errors."""

    is_batch: bool
    items: list[Request | ClefError | None] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)

    def add(self, obj: Any) -> None:
        """Validate one envelope and keep it, or its InvalidRequest, with its id (if any)."""
        self.ids.append(obj.get("id") if isinstance(obj, dict) else None)
        try:
            self.items.append(parse_request_object(obj))
        except ClefError as exc:
            self.items.append(exc)


def parse_request_object(obj: Any) -> Request:
    """Validate one request envelope; raise InvalidRequest on a malformed one."""
    if not isinstance(obj, dict):
        raise InvalidRequest("invalid request")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest("invalid request")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidRequest("invalid request")
    has_id = "id" in obj
    msg_id = obj.get("id")
    if isinstance(msg_id, bool) or (
            has_id and not (msg_id is None or isinstance(msg_id, (str, int, float)))):
        raise InvalidRequest("invalid request")
    params = obj.get("params", [])
    was_object = False
    if params is None:
        params = []
    elif isinstance(params, dict):
        was_object = True
        params = []
    elif not isinstance(params, list):
        raise InvalidRequest("invalid request")
    return Request(method=method, params=params, id=msg_id, is_notification=not has_id,
                   params_was_object=was_object)


def parse_message(raw: bytes | str, *, batch_limit: int | None) -> Batch:
    """Parse a request body (single or batch); envelope errors are kept per item."""
    obj = loads(raw)
    if isinstance(obj, list):
        if not obj:
            raise InvalidRequest("empty batch")
        if batch_limit is not None and len(obj) > batch_limit:
            raise InvalidRequest("batch too large")
        batch = Batch(is_batch=True)
        for item in obj:
            batch.add(item)
        return batch
    batch = Batch(is_batch=False)
    batch.add(obj)
    return batch


def result_response(msg_id: Any, result: Any) -> dict[str, Any]:
    """A success response."""
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def error_response(msg_id: Any, error: ClefError | dict[str, Any]) -> dict[str, Any]:
    """An error response from a ClefError or an already-built error object."""
    body = error.to_jsonrpc() if isinstance(error, ClefError) else error
    return {"jsonrpc": "2.0", "id": msg_id, "error": body}
