"""Length-prefixed JSON frames between keyd and its workers (sans-IO codec plus a trio channel).

Wire format: a 4-byte big-endian body length, then a UTF-8 JSON object. Frames above
MAX_FRAME bytes, non-object bodies and invalid UTF-8 are protocol violations: the receiver
stops trusting the peer (keyd kills a worker that sends one).
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from typing import Any

import trio

from clef.errors import ProtocolViolation
from clef.jsonrpc import nesting_depth

MAX_DEPTH = 128

MAX_FRAME = 16 * 1024 * 1024
WRITE_GRACE = 30.0  # how long a started write may wait for the peer to read
_HEADER = struct.Struct(">I")


def encode_frame(message: dict[str, Any]) -> bytes:
    """Serialise one message into a frame."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolViolation(f"frame too large ({len(body)} > {MAX_FRAME})")
    return _HEADER.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _too_deep(text: str) -> bool:
    # Every level opens with '[' or '{': a body with few of them cannot be deep. Counting is done
    # in C; only bodies with many brackets pay for the exact scan.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    return nesting_depth(text) > MAX_DEPTH


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body; anything but a JSON object is a violation."""
    try:
        text = body.decode("utf-8")
        if _too_deep(text):
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
        buffer = self._buffer
        buffer += data
        out: list[dict[str, Any]] = []
        pos = 0
        size = len(buffer)
        try:
            while size - pos >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer, pos)
                if length > self._max:
                    raise ProtocolViolation(f"frame too large ({length} > {self._max})")
                end = pos + _HEADER.size + length
                if size < end:
                    break
                body = bytes(buffer[pos + _HEADER.size:end])
                pos = end
                out.append(decode_body(body))
        finally:
            # One move per read, not one per frame (many frames may arrive in one read).
            del buffer[:pos]
        return out


def write_nonblocking(stream: trio.abc.SendStream, data: bytes | memoryview) -> int:
    """Write to a socket or fd stream what the kernel takes right now, without a trip through
    the scheduler; return how many bytes that was (0 for other kinds of stream).

    trio's send_all always yields to the scheduler, even when the kernel took everything at
    once; on keyd's request path that was one extra scheduling round per message sent.
    The caller must be the stream's only writer at the time (as BatchedWriter ensures).
    """
    if isinstance(stream, trio.SocketStream):
        fd = stream.socket.fileno()
    elif isinstance(stream, trio.lowlevel.FdStream):
        fd = stream.fileno()
    else:
        return 0
    if fd < 0:
        raise trio.ClosedResourceError("stream is closed")
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise trio.BrokenResourceError(f"write failed: {exc.strerror}") from exc


async def send_all_now(stream: trio.abc.SendStream, data: bytes) -> None:
    """stream.send_all(data), written directly when the kernel takes it (see write_nonblocking);
    only a remainder goes through send_all."""
    sent = write_nonblocking(stream, data)
    if sent < len(data):
        await stream.send_all(memoryview(data)[sent:])


class BatchedWriter:
    """Serialises writes to a stream, coalescing the ones queued meanwhile into one write.

    Under load many messages (replies, prompts) are ready in the same scheduler pass; they
    leave in one system call and wake the peer once, instead of one lock hand-off and one
    write each. Order is the order of write() calls; data never interleaves.
    """

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream
        self._lock = trio.Lock()
        self._outbox: list[bytes] = []
        self._queued = 0  # chunks handed to write() so far
        self._written = 0  # chunks whose write has been attempted
        self._failed_from = 0  # chunks numbered above this were in a write that failed
        self._failure: BaseException | None = None

    async def write(self, data: bytes) -> None:
        """Write data; raise if the write that carried it failed (the stream is then unusable).

        A writer cancelled before its data was taken for a write takes it back. Once taken, the
        write completes even if the writer is cancelled meanwhile (a half-written message would
        corrupt the stream for everyone), unless the peer stops reading for WRITE_GRACE seconds:
        then the stream is given up as failed.
        """
        self._outbox.append(data)
        self._queued += 1
        mine = self._queued
        try:
            if self._lock.locked():
                await self._lock.acquire()
            else:
                self._lock.acquire_nowait()  # uncontended: no scheduler round trip
            try:
                if mine > self._written:
                    await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                self._lock.release()
                raise
        except BaseException:
            if mine > self._written:
                self._take_back(data)
            raise
        try:
            if mine <= self._written:
                # Another writer sent it along with its own data.
                if self._failure is not None and mine > self._failed_from:
                    raise trio.BrokenResourceError("write failed") from self._failure
                return
            if self._failure is not None:
                raise trio.BrokenResourceError("write failed") from self._failure
            chunk = b"".join(self._outbox)
            self._outbox.clear()
            first, self._written = self._written, self._queued
            try:
                sent = write_nonblocking(self._stream, chunk)
                if sent < len(chunk):
                    with trio.CancelScope(shield=True) as scope:
                        scope.deadline = trio.current_time() + WRITE_GRACE
                        await self._stream.send_all(memoryview(chunk)[sent:])
                    if scope.cancelled_caught:
                        raise trio.BrokenResourceError("the peer stopped reading")
            except BaseException as exc:
                # A partial write leaves the stream unusable: nothing after this is sent.
                self._failure, self._failed_from = exc, first
                raise
        finally:
            self._lock.release()

    def _take_back(self, data: bytes) -> None:
        for index, queued in enumerate(self._outbox):
            if queued is data:
                del self._outbox[index]
                return


class FrameChannel:
    """A bidirectional message channel over a trio stream (one socketpair end).

    Sends go through a BatchedWriter: frames sent while another send is in progress leave
    with the next write, so under load many frames cost one system call.
    """

    def __init__(self, stream: trio.abc.Stream, max_frame: int = MAX_FRAME) -> None:
        self._stream = stream
        self._decoder = FrameDecoder(max_frame)
        self._pending: deque[dict[str, Any]] = deque()
        self._writer = BatchedWriter(stream)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; raise if the write that carried it failed (the channel is then
        unusable)."""
        await self._writer.write(encode_frame(message))

    async def receive(self) -> dict[str, Any] | None:
        """Return the next message, or None when the peer closed the stream cleanly."""
        while not self._pending:
            data = await self._stream.receive_some(65536)
            if not data:
                return None
            self._pending.extend(self._decoder.feed(data))
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()
