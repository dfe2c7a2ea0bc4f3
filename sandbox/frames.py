"""Length-prefixed JSON frames between keyd and its workers (sans-IO codec plus a trio channel).

Wire format: a 4-byte big-endian body length, then a UTF-8 JSON object. Frames above
MAX_FRAME bytes, non-object bodies and invalid UTF-8 are protocol violations: the receiver
stops trusting the peer (keyd kills a worker that sends one).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import trio

from clef.errors import ProtocolViolation
from clef.jsonrpc import nesting_depth

MAX_DEPTH = 128

MAX_FRAME = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


def encode_frame(message: dict[str, Any]) -> bytes:
    """Serialise one message into a frame."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolViolation(f"frame too large ({len(body)} > {MAX_FRAME})")
    return _HEADER.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body; anything but a JSON object is a violation."""
    try:
        text = body.decode("utf-8")
        if nesting_depth(text) > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH}")
        message = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolViolation(f"malformed frame: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolViolation("frame body is not an object")
    return message


class FrameDecoder:
    """Incremental decoder: feed bytes, pop complete messages."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max = max_frame

    def feed(self, data: bytes | bytearray) -> list[dict[str, Any]]:
        """Add received bytes and return every message completed by them."""
        self._buffer += data
        out: list[dict[str, Any]] = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self._max:
                raise ProtocolViolation(f"frame too large ({length} > {self._max})")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            out.append(decode_body(body))
        return out


class FrameChannel:
    """A bidirectional message channel over a trio stream (one socketpair end)."""

    def __init__(self, stream: trio.abc.Stream, max_frame: int = MAX_FRAME) -> None:
        self._stream = stream
        self._decoder = FrameDecoder(max_frame)
        self._pending: list[dict[str, Any]] = []
        self._send_lock = trio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; concurrent senders are serialised so frames never interleave."""
        frame = encode_frame(message)
        async with self._send_lock:
            await self._stream.send_all(frame)

    async def receive(self) -> dict[str, Any] | None:
        """Return the next message, or None when the peer closed the stream cleanly."""
        while not self._pending:
            data = await self._stream.receive_some(65536)
            if not data:
                return None
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()
