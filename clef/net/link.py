"""The net worker's side of the socketpair to keyd: many calls in flight, matched by id."""

from __future__ import annotations

import itertools
from typing import Any

import trio

from clef.errors import InternalError
from sandbox.frames import FrameChannel
from sandbox.net_protocol import Call, Cancel


class KeydLink:
    """Forwards calls to keyd and routes replies back to the waiting caller."""

    def __init__(self, channel: FrameChannel) -> None:
        self._channel = channel
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}

    async def call(self, method: str, params: list[Any], meta: dict[str, str]) -> dict[str, Any]:
        """Send one call and wait for keyd's reply; if we are cancelled, tell keyd to withdraw it."""
        call_id = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[call_id] = send
        try:
            await self._channel.send(Call(call_id, method, params, meta).to_wire())
            return await receive.receive()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                if call_id in self._waiting:
                    await self._channel.send(Cancel(call_id).to_wire())
            raise
        finally:
            self._waiting.pop(call_id, None)

    async def run(self) -> None:
        """Route replies until keyd closes the channel (then the worker must exit)."""
        while True:
            msg = await self._channel.receive()
            if msg is None:
                raise SystemExit(0)
            if msg.get("t") != "reply" or not isinstance(msg.get("id"), int):
                raise InternalError("unexpected frame from keyd")
            waiter = self._waiting.pop(msg["id"], None)
            if waiter is not None:
                waiter.send_nowait(msg)
