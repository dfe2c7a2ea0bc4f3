"""clef.jsonrpc.StreamSplitter (regex jumps between the bytes that matter) against the plain
byte-by-byte state machine it replaced: same messages, same errors, same leftover buffer, for
any bytes cut anywhere and any message cap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ParseError
from clef.jsonrpc import StreamSplitter


class ByteByByteSplitter:
    """The original implementation, kept as the oracle."""

    def __init__(self, max_message: int) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._scan = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        i = self._scan
        buf = self._buf
        while i < len(buf):
            ch = buf[i]
            if not self._started:
                if ch in b" \t\r\n":
                    del buf[i : i + 1]
                    continue
                if ch not in b"{[":
                    raise ParseError("invalid character at start of JSON value")
                self._started = True
                self._depth = 0
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == 0x5C:
                    self._escaped = True
                elif ch == 0x22:
                    self._in_string = False
            elif ch == 0x22:
                self._in_string = True
            elif ch in b"{[":
                self._depth += 1
            elif ch in b"}]":
                self._depth -= 1
                if self._depth == 0:
                    if i + 1 > self._max:
                        raise ParseError(f"message exceeds {self._max} bytes")
                    out.append(bytes(buf[: i + 1]))
                    del buf[: i + 1]
                    self._started = False
                    i = 0
                    continue
            i += 1
        self._scan = i
        if len(buf) > self._max:
            raise ParseError(f"message exceeds {self._max} bytes")
        return out


def run(splitter: StreamSplitter | ByteByByteSplitter, chunks: list[bytes]
        ) -> tuple[list[bytes], str | None, bytes]:
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out.extend(splitter.feed(chunk))
    except ParseError as exc:
        return out, exc.message, b""
    return out, None, bytes(splitter._buf)


JSONISH = st.lists(st.sampled_from(list(b'{}[]"\\ \t\r\nab:,1')), max_size=40).map(bytes)


@settings(max_examples=3000)
@given(st.lists(JSONISH | st.binary(max_size=24), max_size=6), st.integers(1, 48))
def test_same_messages_errors_and_leftover_as_the_byte_by_byte_scan(
        chunks: list[bytes], cap: int) -> None:
    assert run(StreamSplitter(max_message=cap), chunks) == run(ByteByByteSplitter(cap), chunks)


@settings(max_examples=300)
@given(st.lists(st.integers(0, 400), max_size=8))
def test_realistic_stream_cut_anywhere(cuts: list[int]) -> None:
    stream = (b'{"jsonrpc":"2.0","id":7,"result":{"approved":true,"transaction":{"to":"0x8a","d":'
              b'"a\\"b\\\\"}}}\n[{"x":"]}"}]  {"y":[1,[2,{"z":"{"}]]}\n')
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    fast = run(StreamSplitter(), chunks)
    assert fast == run(ByteByByteSplitter(5 * 1024 * 1024), chunks)
    assert len(fast[0]) == 3 and fast[1] is None and fast[2] == b""
