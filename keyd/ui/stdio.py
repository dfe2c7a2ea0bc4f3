"""The stdio UI channel: keyd is a JSON-RPC client (ui_*) and a server (clef_*) on one stream.

Messages are compact JSON, one per line, out on stdout; in from stdin as a JSON stream. Calls
carry integer ids counting from 1. An answer with an unknown id, or for a call no longer pending
(timed out or withdrawn), is logged and dropped: it can never approve anything.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from clef import jsonrpc
from clef.errors import ClefError, InternalError, MethodNotFound, SignerError
from keyd.ui.base import JSON
from sandbox.frames import BatchedWriter

log = logging.getLogger("keyd.ui.stdio")

InternalHandler = Callable[[str, list[Any]], Awaitable[Any]]


class UIClosed(SignerError):
    """The UI process closed its end of the channel."""


class StdioUI:
    """The UI protocol over a pair of byte streams (normally keyd's stdin and stdout)."""

    def __init__(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        self._receive = receive
        self._send = send
        self._ids = itertools.count(1)
        self._pending: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        # Messages written while another write is in progress leave together, in order.
        self._writer = BatchedWriter(send)
        self._internal: InternalHandler | None = None
        self.closed = trio.Event()

    def serve_internal_api(self, handler: InternalHandler) -> None:
        """Install the clef_* dispatcher the UI may call."""
        self._internal = handler

    async def _write(self, message: dict[str, Any]) -> None:
        await self._writer.write(jsonrpc.dumps(message) + b"\n")

    async def call(self, method: str, param: JSON) -> Any:
        """Call a ui_* method and wait for its result; UI errors become SignerError."""
        if self.closed.is_set():
            raise UIClosed("UI channel closed")
        call_id = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._pending[call_id] = send
        try:
            await self._write({"jsonrpc": "2.0", "id": call_id, "method": method,
                               "params": [param]})
            reply = await receive.receive()
        finally:
            # Withdrawn (timeout, caller gone) or answered: either way no longer pending.
            self._pending.pop(call_id, None)
        if "error" in reply:
            err = reply["error"]
            message = err.get("message") if isinstance(err, dict) else None
            raise SignerError(message if isinstance(message, str) else "UI error")
        return reply.get("result")

    async def notify(self, method: str, param: JSON) -> None:
        """Send a ui_* notification (no id, no answer)."""
        if self.closed.is_set():
            return
        try:
            await self._write({"jsonrpc": "2.0", "method": method, "params": [param]})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed.set()

    async def run(self) -> None:
        """Read the UI's messages until EOF; then fail every pending call."""
        splitter = jsonrpc.StreamSplitter()
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    data = await self._receive.receive_some(65536)
                    if not data:
                        break
                    try:
                        messages = splitter.feed(data)
                    except ClefError as exc:
                        log.error("UI sent unparsable data (%s); resetting the stream", exc.message)
                        splitter = jsonrpc.StreamSplitter()
                        continue
                    for raw in messages:
                        self._dispatch(raw, nursery)
        finally:
            self.closed.set()
            for send in list(self._pending.values()):
                send.send_nowait({"error": {"code": -32000, "message": "UI channel closed"}})
            self._pending.clear()

    def _dispatch(self, raw: bytes, nursery: trio.Nursery) -> None:
        try:
            msg = jsonrpc.loads(raw)
        except ClefError:
            log.error("UI sent invalid JSON; ignored (treated as no answer)")
            return
        if isinstance(msg, list):
            for item in msg:
                if isinstance(item, dict):
                    self._dispatch_one(item, nursery)
            return
        if isinstance(msg, dict):
            self._dispatch_one(msg, nursery)

    def _dispatch_one(self, msg: dict[str, Any], nursery: trio.Nursery) -> None:
        if "method" in msg:
            nursery.start_soon(self._serve, msg)
            return
        msg_id = msg.get("id")
        # bool is an int in Python and True == 1: `"id": true` must not answer call 1.
        is_id = isinstance(msg_id, int) and not isinstance(msg_id, bool)
        waiter = self._pending.pop(msg_id, None) if is_id and isinstance(msg_id, int) else None
        if waiter is None:
            log.warning("UI answered id %r, which is not pending: ignored (a denial)", msg_id)
            return
        if "result" not in msg and "error" not in msg:
            log.warning("UI answer to id %r has neither result nor error: a denial", msg_id)
            waiter.send_nowait({"result": None})
            return
        waiter.send_nowait(msg)

    async def _serve(self, msg: dict[str, Any]) -> None:
        try:
            request = jsonrpc.parse_request_object(msg)
        except ClefError as exc:
            await self._write(jsonrpc.error_response(msg.get("id"), exc))
            return
        try:
            result = await self._serve_internal(request.method, request.params)
            response = jsonrpc.result_response(request.id, result)
        except ClefError as exc:
            response = jsonrpc.error_response(request.id, exc)
        except Exception:
            log.exception("internal API handler failed")
            response = jsonrpc.error_response(request.id, InternalError("method handler crashed"))
        if not request.is_notification:
            await self._write(response)

    async def _serve_internal(self, method: str, params: list[Any]) -> Any:
        if self._internal is None or not method.startswith("clef_"):
            raise MethodNotFound(f"the method {method} does not exist/is not available")
        return await self._internal(method, params)

    # --- the UI protocol (keyd/ui/base.py) ---

    async def approve_tx(self, request: JSON) -> JSON:
        """ui_approveTx."""
        return _as_object("ui_approveTx", await self.call("ui_approveTx", request))

    async def approve_sign_data(self, request: JSON) -> JSON:
        """ui_approveSignData."""
        return _as_object("ui_approveSignData", await self.call("ui_approveSignData", request))

    async def approve_listing(self, request: JSON) -> JSON:
        """ui_approveListing."""
        return _as_object("ui_approveListing", await self.call("ui_approveListing", request))

    async def approve_new_account(self, request: JSON) -> JSON:
        """ui_approveNewAccount."""
        return _as_object("ui_approveNewAccount", await self.call("ui_approveNewAccount", request))

    async def on_input_required(self, request: JSON) -> JSON:
        """ui_onInputRequired."""
        return _as_object("ui_onInputRequired", await self.call("ui_onInputRequired", request))

    async def show_info(self, text: str) -> None:
        """ui_showInfo."""
        await self.notify("ui_showInfo", {"text": text})

    async def show_error(self, text: str) -> None:
        """ui_showError."""
        await self.notify("ui_showError", {"text": text})

    async def on_approved_tx(self, result: JSON) -> None:
        """ui_onApprovedTx."""
        await self.notify("ui_onApprovedTx", result)

    async def on_signer_startup(self, info: JSON) -> None:
        """ui_onSignerStartup."""
        await self.notify("ui_onSignerStartup", info)


def _as_object(method: str, result: Any) -> JSON:
    # A non-object answer (e.g. pythonsigner.py's bare "") is malformed: callers see {} = denial.
    if isinstance(result, dict):
        return result
    log.warning("malformed %s answer (not a JSON object): a denial", method)
    return {}
