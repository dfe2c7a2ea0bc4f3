"""The IPC transport: geth's raw JSON-RPC stream over a unix socket (not HTTP).

Input is a stream of concatenated JSON values; each response is compact JSON plus a newline.
No batch limit (as geth), but one message is capped at 5 MiB. When the caller hangs up, every
call it has in flight is cancelled, which withdraws the pending approvals in keyd.
"""

from __future__ import annotations

import trio

from clef.errors import ClefError
from clef.jsonrpc import StreamSplitter, dumps, error_response
from clef.net.rpc import RpcFront

IPC_META = {"remote": "NA", "local": "NA", "scheme": "ipc", "User-Agent": "", "Origin": ""}


async def serve_ipc_connection(stream: trio.SocketStream, front: RpcFront) -> None:
    """Serve one IPC connection until EOF or a framing error."""
    splitter = StreamSplitter()
    send_lock = trio.Lock()

    async def respond(message: bytes) -> None:
        response = await front.handle(message, dict(IPC_META), batch_limit=None)
        if response:
            async with send_lock:
                await stream.send_all(response + b"\n")

    try:
        async with trio.open_nursery() as nursery:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                try:
                    messages = splitter.feed(data)
                except ClefError as exc:
                    async with send_lock:
                        await stream.send_all(dumps(error_response(None, exc)) + b"\n")
                    break
                for message in messages:
                    nursery.start_soon(respond, message)
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()
