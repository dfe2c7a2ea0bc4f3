"""clef.net.http's HTTP/1.1 server (h11 on trio) in process, with a fake JSON-RPC front:
keep-alive and pipelining, one write per response, 100-continue, malformed and oversized heads,
idle and read timeouts, a caller leaving mid-call (the call is withdrawn), bounded pipelining.
The reference's status codes and texts are covered end to end in test_e2e_core.py."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import clef.net.http as http
from clef.net.http import HttpApp, HttpConnection, build_meta
from clef.net.link import KeydLink
from clef.net.rpc import RpcFront


class FakeFront(RpcFront):
    """Answers every body with a JSON echo of (body, meta); can be made to hang."""

    def __init__(self) -> None:
        super().__init__(KeydLink.__new__(KeydLink))
        self.hang = False
        self.release = trio.Event()
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.withdrawn = trio.Event()

    async def handle(self, body: bytes, meta: dict[str, str], *, batch_limit: int | None) -> bytes:
        self.calls.append((body, meta))
        if self.hang:
            try:
                await self.release.wait()
            except trio.Cancelled:
                self.withdrawn.set()
                raise
        return json.dumps({"echo": body.decode(), "remote": meta["remote"]}).encode()


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the server's writes (one per response is the point of the server)."""
    count = [0]
    real = http.send_all_now

    async def counting(stream: trio.abc.SendStream, data: bytes) -> None:
        count[0] += 1
        await real(stream, data)

    monkeypatch.setattr(http, "send_all_now", counting)
    return count


@asynccontextmanager
async def server(front: FakeFront, vhosts: list[str] | None = None
                 ) -> AsyncIterator[socket.socket]:
    """A client socket connected to an HttpConnection serving front."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(right))
    app = HttpApp(front, vhosts or ["localhost"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(HttpConnection(stream, app).serve)
        left.setblocking(False)
        try:
            yield left
        finally:
            left.close()


async def send(sock: socket.socket, data: bytes) -> None:
    await trio.lowlevel.wait_writable(sock)
    sock.sendall(data)


async def read_responses(sock: socket.socket, count: int, timeout: float = 5) -> list[bytes]:
    """Read count complete responses (head and Content-Length body)."""
    buf = b""
    out: list[bytes] = []
    with trio.fail_after(timeout):
        while len(out) < count:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end]
                match = re.search(rb"(?im)^content-length: *(\d+)", head)
                length = int(match.group(1)) if match else 0
                if head.startswith(b"HTTP/1.1 1"):
                    length = 0
                if len(buf) >= head_end + 4 + length:
                    out.append(buf[:head_end + 4 + length])
                    buf = buf[head_end + 4 + length:]
                    continue
            await trio.lowlevel.wait_readable(sock)
            data = sock.recv(65536)
            if not data:
                break
            buf += data
    return out


async def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    buf = b""
    with trio.fail_after(timeout):
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return buf
            if not data:
                return buf
            buf += data


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (len(body), extra)) + body


async def test_keep_alive_requests_each_answered_in_one_write(sends: list[int]) -> None:
    front = FakeFront()
    async with server(front) as sock:
        for index in range(3):
            await send(sock, post(b'{"n":%d}' % index))
            (response,) = await read_responses(sock, 1)
            assert response.startswith(b"HTTP/1.1 200 ")
            assert b"content-type: application/json" in response.lower()
            assert json.loads(response.split(b"\r\n\r\n", 1)[1])["echo"] == f'{{"n":{index}}}'
        assert sends[0] == 3
        assert b"connection: close" not in response.lower()


async def test_pipelined_requests_are_answered_in_order() -> None:
    front = FakeFront()
    async with server(front) as sock:
        await send(sock, b"".join(post(b'{"n":%d}' % i) for i in range(4)))
        responses = await read_responses(sock, 4)
    echoes = [json.loads(r.split(b"\r\n\r\n", 1)[1])["echo"] for r in responses]
    assert echoes == [f'{{"n":{i}}}' for i in range(4)]


async def test_expect_100_continue() -> None:
    front = FakeFront()
    async with server(front) as sock:
        body = b'{"big":true}'
        head = post(body, b"Expect: 100-continue\r\n")[: -len(body)]
        await send(sock, head)
        (interim,) = await read_responses(sock, 1)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await send(sock, body)
        (response,) = await read_responses(sock, 1)
        assert response.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("request_bytes", [b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\n\r\n",
                                           b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"])
async def test_malformed_requests_get_400_and_the_connection_ends(request_bytes: bytes) -> None:
    async with server(FakeFront()) as sock:
        await send(sock, request_bytes)
        data = await read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 "), data[:100]
    assert b"connection: close" in data.lower()


async def test_oversized_head_is_refused() -> None:
    async with server(FakeFront()) as sock:
        await send(sock, b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000)
        data = await read_until_closed(sock)
    assert re.match(rb"HTTP/1.1 4(00|31) ", data), data[:100]


async def test_early_refusal_keeps_alive_only_when_the_body_had_arrived() -> None:
    front = FakeFront()
    async with server(front) as sock:
        await send(sock, post(b"{}").replace(b"Host: localhost", b"Host: evil.example"))
        (refused,) = await read_responses(sock, 1)
        assert refused.startswith(b"HTTP/1.1 403 ") and refused.endswith(b"invalid host specified\n")
        assert b"connection: close" not in refused.lower()
        # A body announced but not sent: refused at the head, and the connection ends.
        await send(sock, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                         b"\r\nContent-Length: %d\r\n\r\n" % (http.MAX_BODY + 1))
        data = await read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data.lower()
    assert front.calls == []


async def test_caller_leaving_mid_call_withdraws_it() -> None:
    front = FakeFront()
    front.hang = True
    async with server(front) as sock:
        await send(sock, post(b"{}"))
        with trio.fail_after(5):
            while not front.calls:
                await trio.sleep(0.01)
        sock.close()
        with trio.fail_after(5):
            await front.withdrawn.wait()


async def test_bytes_pipelined_during_a_call_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_PIPELINED", 1000)
    front = FakeFront()
    front.hang = True
    async with server(front) as sock:
        await send(sock, post(b"{}"))
        with trio.fail_after(5):
            while not front.calls:
                await trio.sleep(0.01)
        # Far more than the cap: the server stops reading (the kernel buffers fill up and our
        # sends block) instead of holding it all; the call goes on.
        sent = 0
        with trio.move_on_after(0.5):
            while True:
                await trio.lowlevel.wait_writable(sock)
                sent += sock.send(b"x" * 65536)
        assert sent > 1000
        assert not front.withdrawn.is_set()
        front.release.set()
        (response,) = await read_responses(sock, 1)
        assert response.startswith(b"HTTP/1.1 200 ")


async def test_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "IDLE_TIMEOUT", 0.2)
    async with server(FakeFront()) as sock:
        await send(sock, post(b"{}"))
        await read_responses(sock, 1)
        with trio.fail_after(3):
            assert await read_until_closed(sock) == b""


async def test_slow_request_is_cut_at_the_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "READ_TIMEOUT", 0.3)
    async with server(FakeFront()) as sock:
        start = trio.current_time()
        try:
            for byte in b"POST / HTTP/1.1\r\nHost: localhost\r\n" * 10:
                await send(sock, bytes([byte]))
                await trio.sleep(0.02)
        except OSError:
            pass  # the server hung up on us
        with trio.fail_after(3):
            await read_until_closed(sock)
        assert trio.current_time() - start < 2


async def test_health_check_and_method_rules() -> None:
    async with server(FakeFront()) as sock:
        await send(sock, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        (health,) = await read_responses(sock, 1)
        assert health.startswith(b"HTTP/1.1 200 ") and health.endswith(b"\r\n\r\n")
        await send(sock, b"put / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        (put,) = await read_responses(sock, 1)
        assert put.startswith(b"HTTP/1.1 405 ") and put.endswith(b"method not allowed\n")
        # Refused before the body was read, but the (empty) body had arrived: still keep-alive.
        assert b"connection: close" not in put.lower()
        await send(sock, post(b"[]"))
        (after,) = await read_responses(sock, 1)
        assert after.startswith(b"HTTP/1.1 200 ")


def test_meta_of_a_unix_peer_and_an_ipv6_peer() -> None:
    assert build_meta({"client": None, "http_version": "1.1"}, {})["remote"] == "NA"
    meta = build_meta({"client": ("::1", 5), "http_version": "1.1"}, {"host": "h"})
    assert meta["remote"] == "[::1]:5" and meta["local"] == "h" and meta["scheme"] == "HTTP/1.1"


async def test_many_connections_are_independent() -> None:
    front = FakeFront()
    results: list[int] = []

    async def one(index: int, make: Callable[[], Any]) -> None:
        async with make() as sock:
            await send(sock, post(b'{"c":%d}' % index))
            (response,) = await read_responses(sock, 1)
            echo = json.loads(response.split(b"\r\n\r\n", 1)[1])["echo"]
            results.append(echo == f'{{"c":{index}}}')

    async with trio.open_nursery() as nursery:
        for index in range(20):
            nursery.start_soon(one, index, lambda: server(front))
    assert results == [True] * 20
