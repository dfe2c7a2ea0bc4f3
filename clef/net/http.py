"""The HTTP transport: an ASGI app served by hypercorn inside the net worker.

Applies the reference's checks in its order: virtual hosts (403), health-check GET, method
(405), body size (413; hypercorn does not cap ASGI bodies, so we do), content type (415).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from clef.net.rpc import RpcFront

MAX_BODY = 5 * 1024 * 1024
BATCH_LIMIT = 1000
JSON_TYPES = ("application/json", "application/json-rpc", "application/jsonrequest")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


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
    """Request context as the reference reports it; X-Forwarded-For only when sent (untrusted)."""
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


class HttpApp:
    """ASGI application forwarding JSON-RPC over HTTP."""

    def __init__(self, front: RpcFront, vhosts: list[str]) -> None:
        self._front = front
        self._vhosts = [v.strip().lower() for v in vhosts if v.strip()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        method = scope.get("method", "")
        if not host_allowed(headers.get("host"), self._vhosts):
            await _plain(send, 403, "invalid host specified")
            return
        length_text = headers.get("content-length")
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            await _plain(send, 400, "invalid content length")
            return
        if method == "GET" and not length and not scope.get("query_string"):
            await _plain(send, 200, None)
            return
        if method in ("PUT", "DELETE"):
            await _plain(send, 405, "method not allowed")
            return
        if length is not None and length > MAX_BODY:
            await _plain(send, 413, f"content length too large ({length}>{MAX_BODY})")
            return
        if method != "OPTIONS":
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype not in JSON_TYPES:
                await _plain(send, 415, "invalid content type, only application/json is supported")
                return
        body = bytearray()
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            body += event.get("body", b"")
            if len(body) > MAX_BODY:
                await _plain(send, 413, f"content length too large ({len(body)}>{MAX_BODY})")
                return
            if not event.get("more_body", False):
                break
        meta = build_meta(scope, headers)
        response = await _until_disconnect(receive, self._front.handle(bytes(body), meta,
                                                                       batch_limit=BATCH_LIMIT))
        if response is None:
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(response)).encode())]})
        await send({"type": "http.response.body", "body": response})


async def _until_disconnect(receive: Receive, work: Awaitable[bytes]) -> bytes | None:
    """Run the call, but withdraw it (cancel -> keyd withdraws the approval) if the caller leaves."""
    result: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            while True:
                event = await receive()
                if event["type"] == "http.disconnect":
                    nursery.cancel_scope.cancel()
                    return

        async def run() -> None:
            result.append(await work)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        nursery.start_soon(run)
    return result[0] if result else None


async def _plain(send: Send, status: int, text: str | None) -> None:
    body = b"" if text is None else (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
