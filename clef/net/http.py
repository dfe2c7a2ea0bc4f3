"""The HTTP transport: HTTP/1.1 on trio with h11 as the parser, inside the net worker.

Applies the reference's checks in its order: virtual hosts (403), health-check GET, method
(405), body size (413, before the body is read when Content-Length says so, and as soon as a
chunked body crosses the cap), content type (415).

The server is a thin loop around h11 (the HTTP/1.1 parser hypercorn uses too) rather than an
ASGI server: hypercorn cost about 0.35 ms of CPU per request on top of trio+h11 and two writes
per response (deps-probe §1); here a response leaves in one write. Bounds on what a caller can
make the worker hold: the request head is capped by h11 (MAX_HEAD), the body by MAX_BODY, a
connection must send its next request within IDLE_TIMEOUT and all of it within READ_TIMEOUT
of its first byte (the reference's Idle/Read timeouts), and bytes pipelined behind a request
are buffered only up to MAX_PIPELINED. HTTP/2 is not spoken (neither does the reference).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import h11
import trio

from clef.net.rpc import RpcFront
from sandbox.frames import send_all_now as send_all_now  # tests count the writes

MAX_BODY = 5 * 1024 * 1024
BATCH_LIMIT = 1000
JSON_TYPES = ("application/json", "application/json-rpc", "application/jsonrequest")

MAX_HEAD = 16 * 1024
MAX_PIPELINED = 64 * 1024
IDLE_TIMEOUT = 120.0
READ_TIMEOUT = 30.0
LINGER_TIMEOUT = 1.0
LINGER_BYTES = 16 * 1024 * 1024
RECV_SIZE = 65536

log = logging.getLogger("clef.net")

Scope = dict[str, Any]


def host_allowed(host: str | None, vhosts: list[str]) -> bool:
    """geth's vhost rule: no Host header or an IP literal passes; names must be listed (or '*')."""
    if host is None:
        return True
    name = host.strip()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    name = name.lower()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    return "*" in vhosts or name in vhosts


def build_meta(scope: Scope, headers: dict[str, str]) -> dict[str, str]:
    """Request context as the reference reports it; X-Forwarded-For only when sent (untrusted).

    scope carries "client" ((host, port) or None) and "http_version" ("1.1").
    """
    client = scope.get("client")
    if client:
        address, port = client[0], client[1]
        remote = f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"
    else:
        remote = "NA"
    version = str(scope.get("http_version", "1.1"))
    meta = {
        "remote": remote,
        "local": headers.get("host", "NA"),
        "scheme": "HTTP/" + (version if "." in version else version + ".0"),
        "User-Agent": headers.get("user-agent", ""),
        "Origin": headers.get("origin", ""),
    }
    if "x-forwarded-for" in headers:
        meta["X-Forwarded-For"] = headers["x-forwarded-for"]
    return meta


@dataclass(frozen=True)
class Reply:
    """An HTTP response: status, content type and body (always sent with Content-Length)."""

    status: int
    content_type: bytes
    body: bytes

    @classmethod
    def plain(cls, status: int, text: str | None) -> Reply:
        """A text/plain response (the reference's error texts end with a newline)."""
        return cls(status, b"text/plain; charset=utf-8", b"" if text is None else (text + "\n").encode())


class HttpApp:
    """The request checks and the JSON-RPC hand-off, independent of the connection handling."""

    def __init__(self, front: RpcFront, vhosts: list[str]) -> None:
        self._front = front
        self._vhosts = [v.strip().lower() for v in vhosts if v.strip()]

    def check_head(self, method: str, headers: dict[str, str], has_query: bool) -> Reply | None:
        """The answer decided by the request head alone, or None when the body is needed."""
        if not host_allowed(headers.get("host"), self._vhosts):
            return Reply.plain(403, "invalid host specified")
        length_text = headers.get("content-length")
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            return Reply.plain(400, "invalid content length")
        if method == "GET" and not length and not has_query:
            return Reply.plain(200, None)
        if method in ("PUT", "DELETE"):
            return Reply.plain(405, "method not allowed")
        if length is not None and length > MAX_BODY:
            return Reply.plain(413, f"content length too large ({length}>{MAX_BODY})")
        if method != "OPTIONS":
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype not in JSON_TYPES:
                return Reply.plain(415, "invalid content type, only application/json is supported")
        return None

    def body_too_large(self, size: int) -> Reply | None:
        """The 413 for a body (e.g. chunked) that has grown past the cap, else None."""
        if size > MAX_BODY:
            return Reply.plain(413, f"content length too large ({size}>{MAX_BODY})")
        return None

    def rpc(self, body: bytes, meta: dict[str, str]) -> Awaitable[bytes]:
        """Forward a JSON-RPC body; the reply bytes."""
        return self._front.handle(body, meta, batch_limit=BATCH_LIMIT)


class _ClientGone(Exception):
    """The caller closed the connection (or stopped sending) before the request was complete."""


class HttpConnection:
    """Serves the requests of one keep-alive connection, one at a time, in order."""

    def __init__(self, stream: trio.SocketStream, app: HttpApp) -> None:
        self._stream = stream
        self._app = app
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._request_deadline = math.inf
        try:
            peer = stream.socket.getpeername()
        except OSError:
            peer = None
        # A unix socket's peer name is a string; only (host, port) pairs are reported.
        self._client = (peer[0], peer[1]) if isinstance(peer, tuple) else None

    async def serve(self) -> None:
        """Serve until the caller closes, an error, or a response that ends the connection."""
        try:
            while await self._one():
                self._conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, _ClientGone, trio.TooSlowError):
            pass
        except Exception as exc:  # noqa: BLE001 - one connection's failure must not end the others
            # No traceback: formatting one reads source files, which the sandbox forbids.
            log.warning("HTTP connection dropped: %s: %s", type(exc).__name__, exc)
        finally:
            await self._stream.aclose()

    async def _receive(self) -> None:
        """Read more bytes into the parser, within the idle or the request deadline."""
        deadline = self._request_deadline
        if deadline == math.inf:
            deadline = trio.current_time() + IDLE_TIMEOUT
        with trio.fail_at(deadline):
            data = await self._stream.receive_some(RECV_SIZE)
        if data and self._request_deadline == math.inf:
            self._request_deadline = trio.current_time() + READ_TIMEOUT
        self._conn.receive_data(data)

    async def _next_event(self) -> Any:
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                raise _ClientGone()
            return event

    async def _one(self) -> bool:
        """Handle one request; True when the connection can carry another."""
        if self._conn.trailing_data[0]:
            # Bytes of the next request arrived while the last one was being answered.
            self._request_deadline = trio.current_time() + READ_TIMEOUT
        else:
            self._request_deadline = math.inf
        try:
            request = await self._next_event()
        except h11.RemoteProtocolError as exc:
            await self._finish(Reply.plain(exc.error_status_hint, "bad request"))
            return False
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:
            headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        method = request.method.decode("ascii", "replace").upper()
        early = self._app.check_head(method, headers, bool(request.target.partition(b"?")[2]))
        if early is not None:
            self._skip_buffered_body()
            return await self._finish(early)
        if self._conn.they_are_waiting_for_100_continue:
            interim = h11.InformationalResponse(status_code=100, headers=[])
            await send_all_now(self._stream, self._conn.send(interim))
        body = bytearray()
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.EndOfMessage):
                    break
                body += event.data
                too_large = self._app.body_too_large(len(body))
                if too_large is not None:
                    return await self._finish(too_large)
        except h11.RemoteProtocolError as exc:
            await self._finish(Reply.plain(exc.error_status_hint, "bad request"))
            return False
        meta = build_meta({"client": self._client,
                           "http_version": request.http_version.decode("ascii", "replace")},
                          headers)
        response = await self._until_disconnect(self._app.rpc(bytes(body), meta))
        if response is None:
            return False
        return await self._finish(Reply(200, b"application/json", response))

    def _skip_buffered_body(self) -> None:
        """Consume a refused request's body if it has already arrived (a GET's empty one, a
        small POST), so the connection can carry the next request; otherwise it will close."""
        try:
            while True:
                event = self._conn.next_event()
                if not isinstance(event, h11.Data):
                    return
        except h11.RemoteProtocolError:
            return

    async def _until_disconnect(self, work: Awaitable[bytes]) -> bytes | None:
        """Run the call, but withdraw it (cancel -> keyd withdraws the approval) if the caller
        leaves. Bytes the caller pipelines meanwhile are kept for the next request, up to
        MAX_PIPELINED; past that nothing more is read until the call is answered (as hypercorn
        did), so a caller that floods and leaves is noticed only when its response is written."""
        result: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                held = 0
                while held <= MAX_PIPELINED:
                    data = await self._stream.receive_some(RECV_SIZE)
                    if not data:
                        nursery.cancel_scope.cancel()
                        return
                    held += len(data)
                    self._conn.receive_data(data)

            nursery.start_soon(watch)
            result.append(await work)
            nursery.cancel_scope.cancel()
        return result[0] if result else None

    async def _finish(self, reply: Reply) -> bool:
        """Send a whole response in one write; close unless the connection can go on."""
        reusable = self._conn.their_state is h11.DONE
        headers = [(b"content-type", reply.content_type),
                   (b"content-length", str(len(reply.body)).encode())]
        if not reusable:
            headers.append((b"connection", b"close"))
        data = self._conn.send(h11.Response(status_code=reply.status, headers=headers))
        data += self._conn.send(h11.Data(data=reply.body)) if reply.body else b""
        data += self._conn.send(h11.EndOfMessage())
        await send_all_now(self._stream, data)
        if reusable and self._conn.our_state is h11.DONE:
            return True
        await self._linger()
        return False

    async def _linger(self) -> None:
        # Closing with unread input makes the kernel send RST, which can destroy the response
        # before the caller reads it (e.g. a 413 sent mid-upload): half-close, drain, then close.
        with trio.move_on_after(LINGER_TIMEOUT):
            await self._stream.send_eof()
            drained = 0
            while drained < LINGER_BYTES:
                data = await self._stream.receive_some(RECV_SIZE)
                if not data:
                    break
                drained += len(data)


async def serve_http_connection(stream: trio.SocketStream, app: HttpApp) -> None:
    """Serve one accepted HTTP connection (the handler for trio.serve_listeners)."""
    await HttpConnection(stream, app).serve()
