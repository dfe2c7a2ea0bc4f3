"""Transport-independent JSON-RPC handling in the net worker: envelope, arity, batching, forwarding."""

from __future__ import annotations

import contextlib
from typing import Any

from clef import jsonrpc
from clef.errors import ClefError, ResponseTooLarge
from clef.external_api import check_call
from clef.net.link import KeydLink
from clef.net.schema import check_params

MAX_BATCH_RESPONSE = 25_000_000


class RpcFront:
    """Turns request bytes into response bytes, forwarding valid calls to keyd."""

    def __init__(self, link: KeydLink) -> None:
        self._link = link

    async def _one(self, item: jsonrpc.Request, meta: dict[str, str]) -> dict[str, Any]:
        try:
            params = check_call(item.method, item.params, item.params_was_object)
        except ClefError as exc:
            return jsonrpc.error_response(item.id, exc)
        # Refused params are forwarded as sent: keyd refuses them again and writes the audit
        # lines of the refusal (invariant 4; the reference audited these too). Refusing here
        # would let a caller probe, e.g. with content types the reference signed, untraced.
        with contextlib.suppress(ClefError):
            params = check_params(item.method, params)
        reply = await self._link.call(item.method, params, meta)
        if "error" in reply:
            return jsonrpc.error_response(item.id, reply["error"])
        return jsonrpc.result_response(item.id, reply.get("result"))

    async def handle(self, body: bytes, meta: dict[str, str], *, batch_limit: int | None) -> bytes:
        """Handle one HTTP body or one IPC message; return the response bytes (b"" if none)."""
        try:
            batch = jsonrpc.parse_message(body, batch_limit=batch_limit)
        except ClefError as exc:
            return jsonrpc.dumps(jsonrpc.error_response(None, exc))
        responses: list[dict[str, Any]] = []
        size = 0
        for msg_id, item in zip(batch.ids, batch.items, strict=True):
            if isinstance(item, ClefError):
                responses.append(jsonrpc.error_response(msg_id if _valid_id(msg_id) else None, item))
                continue
            if item is None:
                continue
            if batch.is_batch and size > MAX_BATCH_RESPONSE:
                if not item.is_notification:
                    responses.append(jsonrpc.error_response(
                        item.id, ResponseTooLarge("response too large")))
                continue
            response = await self._one(item, meta)
            if item.is_notification:
                continue
            size += len(jsonrpc.dumps(response))
            responses.append(response)
        if not batch.is_batch:
            return jsonrpc.dumps(responses[0]) if responses else b""
        return jsonrpc.dumps(responses) if responses else b""


def _valid_id(msg_id: Any) -> bool:
    return msg_id is None or (isinstance(msg_id, (str, int, float)) and not isinstance(msg_id, bool))

