"""sandbox.frames: the batched writer (coalescing, order, failure and cancellation semantics),
the decoder's bulk path, and the bracket-count shortcut of the depth check."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ProtocolViolation
from clef.jsonrpc import nesting_depth
from sandbox import frames
from sandbox.frames import (
    MAX_DEPTH,
    BatchedWriter,
    FrameChannel,
    FrameDecoder,
    decode_body,
    encode_frame,
    send_all_now,
    write_nonblocking,
)


class RecordingStream(trio.abc.SendStream):
    """A send stream that records each send_all call; it can be made to fail or to block."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.fail: BaseException | None = None
        self.gate: trio.Event | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_writes_queued_meanwhile_leave_in_one_write_in_order() -> None:
    stream = RecordingStream()
    writer = BatchedWriter(stream)
    called: list[bytes] = []

    async def one(data: bytes) -> None:
        called.append(data)  # no checkpoint before write(): this is the call order
        await writer.write(data)

    async with trio.open_nursery() as nursery:
        for index in range(20):
            nursery.start_soon(one, b"%d;" % index)
    assert b"".join(stream.writes) == b"".join(called)
    assert len(stream.writes) < 5  # started in one pass: coalesced, not 20 writes


async def test_a_lone_write_goes_out_at_once() -> None:
    stream = RecordingStream()
    writer = BatchedWriter(stream)
    await writer.write(b"one")
    await writer.write(b"two")
    assert stream.writes == [b"one", b"two"]


async def test_a_failed_write_fails_every_writer_whose_data_it_carried() -> None:
    stream = RecordingStream()
    stream.gate = trio.Event()
    stream.fail = trio.BrokenResourceError("peer gone")
    writer = BatchedWriter(stream)
    outcomes: dict[int, str] = {}

    async def one(index: int) -> None:
        try:
            await writer.write(b"x")
        except trio.BrokenResourceError:
            outcomes[index] = "failed"
        else:
            outcomes[index] = "sent"

    async with trio.open_nursery() as nursery:
        for index in range(5):
            nursery.start_soon(one, index)
        await trio.testing.wait_all_tasks_blocked()
        stream.gate.set()
    assert outcomes == {i: "failed" for i in range(5)}
    with pytest.raises(trio.BrokenResourceError):
        await writer.write(b"later")  # the stream is unusable after a failed write


async def test_data_written_before_a_failure_is_reported_sent() -> None:
    stream = RecordingStream()
    writer = BatchedWriter(stream)
    await writer.write(b"early")
    stream.fail = trio.BrokenResourceError("peer gone")
    with pytest.raises(trio.BrokenResourceError):
        await writer.write(b"late")
    assert stream.writes == [b"early"]


async def test_a_writer_cancelled_before_its_data_went_out_takes_it_back() -> None:
    stream = RecordingStream()
    stream.gate = trio.Event()
    writer = BatchedWriter(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.write, b"first;")  # holds the lock, blocked in send_all
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await writer.write(b"withdrawn;")
        nursery.start_soon(writer.write, b"second;")
        await trio.testing.wait_all_tasks_blocked()
        stream.gate.set()
    assert b"".join(stream.writes) == b"first;second;"


async def test_a_writer_cancelled_before_writing_leaves_the_stream_usable() -> None:
    stream = RecordingStream()
    writer = BatchedWriter(stream)
    with trio.CancelScope() as scope:
        scope.cancel()
        await writer.write(b"never;")  # uncontended: no wait, but cancelled before the write
    assert scope.cancelled_caught
    await writer.write(b"after;")
    assert stream.writes == [b"after;"]


async def test_a_write_in_progress_completes_when_its_writer_is_cancelled() -> None:
    stream = RecordingStream()
    stream.gate = trio.Event()
    writer = BatchedWriter(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.write, b"whole message;")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # the writer is inside send_all: not torn
        stream.gate.set()
    assert stream.writes == [b"whole message;"]
    await writer.write(b"next;")  # and the stream is still good
    assert stream.writes == [b"whole message;", b"next;"]


async def test_a_peer_that_stops_reading_fails_the_stream_after_the_grace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "WRITE_GRACE", 0.1)
    stream = RecordingStream()
    stream.gate = trio.Event()  # never set: the peer never reads
    writer = BatchedWriter(stream)
    with pytest.raises(trio.BrokenResourceError):
        await writer.write(b"stuck;")
    with pytest.raises(trio.BrokenResourceError):
        await writer.write(b"later;")


async def test_direct_write_to_a_socket_and_the_rest_through_send_all() -> None:
    left, right = trio.socket.socketpair()
    writer_stream, reader_stream = trio.SocketStream(left), trio.SocketStream(right)
    assert write_nonblocking(writer_stream, b"now") == 3
    assert await reader_stream.receive_some(10) == b"now"
    big = bytes(range(256)) * 40000  # far more than the socket buffer takes at once
    assert 0 < write_nonblocking(writer_stream, big[:1]) == 1
    received = bytearray()

    async def drain() -> None:
        while len(received) < len(big):
            received.extend(await reader_stream.receive_some(1 << 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        await send_all_now(writer_stream, big[1:])
    assert bytes(received) == big[:1] + big[1:]
    await reader_stream.aclose()
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the peer is gone: EPIPE (or a reset), never silence
            await send_all_now(writer_stream, b"x" * 65536)
    await writer_stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        write_nonblocking(writer_stream, b"x")


async def test_direct_write_to_a_pipe() -> None:
    import os

    read_fd, write_fd = os.pipe()
    stream = trio.lowlevel.FdStream(write_fd)
    writer = BatchedWriter(stream)
    await writer.write(b"line 1\n")
    await writer.write(b"line 2\n")
    assert os.read(read_fd, 100) == b"line 1\nline 2\n"
    await stream.aclose()
    os.close(read_fd)


async def test_other_streams_go_through_send_all() -> None:
    stream = RecordingStream()
    assert write_nonblocking(stream, b"x") == 0
    await send_all_now(stream, b"abc")
    assert stream.writes == [b"abc"]


async def test_frame_channel_round_trip_over_a_socketpair() -> None:
    left, right = trio.socket.socketpair()
    a = FrameChannel(trio.SocketStream(left))
    b = FrameChannel(trio.SocketStream(right))
    messages: list[dict[str, Any]] = [{"t": "call", "id": i, "params": ["x" * i]} for i in range(50)]
    async with trio.open_nursery() as nursery:
        for message in messages:
            nursery.start_soon(a.send, message)
        received = [await b.receive() for _ in messages]
    assert sorted((m for m in received if m is not None), key=lambda m: int(m["id"])) == messages
    await a.aclose()
    assert await b.receive() is None
    await b.aclose()


def test_decoder_handles_many_frames_in_one_read_and_a_partial_tail() -> None:
    messages = [{"i": i, "s": "é" * i} for i in range(200)]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    cut = len(stream) - 7
    assert decoder.feed(stream[:cut]) == messages[:-1]
    assert decoder.feed(stream[cut:]) == messages[-1:]
    assert decoder.feed(b"") == []


def test_decoder_refuses_a_bad_frame_after_good_ones() -> None:
    good = encode_frame({"ok": 1})
    bad = struct.pack(">I", 3) + b"[1]"
    with pytest.raises(ProtocolViolation):
        FrameDecoder().feed(good + bad)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH])
def test_depth_limit_is_exact_around_the_cap(depth: int) -> None:
    body = ('{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()
    if depth <= MAX_DEPTH:
        assert decode_body(body) == {"a": json.loads("[" * (depth - 1) + "]" * (depth - 1))}
    else:
        with pytest.raises(ProtocolViolation, match="nested deeper"):
            decode_body(body)


def test_many_shallow_brackets_take_the_exact_path() -> None:
    # More brackets than the cap, but shallow (and some inside strings): accepted.
    body = json.dumps({"list": [[1]] * (2 * MAX_DEPTH), "s": "[" * 500}).encode()
    assert len(decode_body(body)["list"]) == 2 * MAX_DEPTH


@settings(max_examples=300)
@given(st.recursive(st.none() | st.integers() | st.text(alphabet="[]{}\"\\ab", max_size=6),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=200))
def test_depth_check_agrees_with_the_exact_scan(value: Any) -> None:
    body = json.dumps({"v": value}).encode()
    if nesting_depth(body.decode()) > MAX_DEPTH:
        with pytest.raises(ProtocolViolation):
            decode_body(body)
    else:
        assert decode_body(body) == {"v": value}
