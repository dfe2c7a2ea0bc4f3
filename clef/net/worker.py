"""Entry point of the net worker: `python -I -m clef.net.worker --fd N [--http-fd H] [--ipc-fd I]`.

Started by keyd with fork+exec. It imports everything, adopts the listening sockets keyd
created, confines itself (no_new_privs + seccomp kill-process), tells keyd it is ready and serves.
It holds no key, password or seed, and has no fd to the UI channel.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from clef.net.http import HttpApp, serve_http_connection
from clef.net.ipc import serve_ipc_connection
from clef.net.link import KeydLink
from clef.net.rpc import RpcFront
from sandbox.confine import enter_sandbox
from sandbox.frames import FrameChannel

log = logging.getLogger("clef.net")


async def _serve(listener_sock: socket.socket,
                 handler: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
    listener_sock.setblocking(False)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(listener_sock))
    await trio.serve_listeners(handler, [listener])


async def _main(fd: int, http_fd: int | None, ipc_fd: int | None) -> None:
    keyd_sock = socket.socket(fileno=fd)
    channel = FrameChannel(trio.SocketStream(trio.socket.from_stdlib_socket(keyd_sock)))
    init = await channel.receive()
    if init is None or init.get("t") != "init" or not isinstance(init.get("vhosts"), list):
        raise SystemExit("net worker: bad init frame")
    vhosts = [v for v in init["vhosts"] if isinstance(v, str)]
    http_sock = socket.socket(fileno=http_fd) if http_fd is not None else None
    ipc_sock = socket.socket(fileno=ipc_fd) if ipc_fd is not None else None
    link = KeydLink(channel)
    front = RpcFront(link)
    app = HttpApp(front, vhosts)

    enter_sandbox("net")
    await channel.send({"t": "ready"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        if http_sock is not None:
            nursery.start_soon(_serve, http_sock, partial(serve_http_connection, app=app))
        if ipc_sock is not None:
            nursery.start_soon(_serve, ipc_sock, partial(serve_ipc_connection, front=front))


def main() -> None:
    """Parse the fds keyd handed over and run the front."""
    parser = argparse.ArgumentParser(prog="clef-net-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--http-fd", type=int)
    parser.add_argument("--ipc-fd", type=int)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s [net] %(message)s")
    trio.run(_main, args.fd, args.http_fd, args.ipc_fd)


if __name__ == "__main__":
    main()
