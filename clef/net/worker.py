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
from functools import partial
from typing import Any

import hypercorn.logging
import hypercorn.protocol
import hypercorn.protocol.h2
import hypercorn.protocol.h11  # noqa: F401
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from clef.net.http import HttpApp
from clef.net.ipc import serve_ipc_connection
from clef.net.link import KeydLink
from clef.net.rpc import RpcFront
from sandbox.confine import enter_sandbox
from sandbox.frames import FrameChannel

log = logging.getLogger("clef.net")


def _hypercorn_config() -> Config:
    cfg = Config()
    cfg.accesslog = None
    cfg.errorlog = "-"
    cfg.loglevel = "WARNING"
    # A request may legitimately wait minutes for a human; approval timeouts live in keyd.
    cfg.keep_alive_timeout = 120
    cfg.read_timeout = None
    cfg.h11_max_incomplete_size = 16 * 1024
    cfg.graceful_timeout = 1
    _ = cfg.log  # build the logger objects now, not lazily after confinement
    return cfg


async def _serve_ipc(listener_sock: socket.socket, front: RpcFront) -> None:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(listener_sock))
    await trio.serve_listeners(partial(serve_ipc_connection, front=front), [listener])


async def _main(fd: int, http_fd: int | None, ipc_fd: int | None) -> None:
    keyd_sock = socket.socket(fileno=fd)
    channel = FrameChannel(trio.SocketStream(trio.socket.from_stdlib_socket(keyd_sock)))
    init = await channel.receive()
    if init is None or init.get("t") != "init" or not isinstance(init.get("vhosts"), list):
        raise SystemExit("net worker: bad init frame")
    vhosts = [v for v in init["vhosts"] if isinstance(v, str)]
    http_sock = socket.socket(fileno=http_fd) if http_fd is not None else None
    ipc_sock = socket.socket(fileno=ipc_fd) if ipc_fd is not None else None
    cfg = _hypercorn_config()
    link = KeydLink(channel)
    front = RpcFront(link)
    asgi: Any = HttpApp(front, vhosts)  # a plain ASGI callable; hypercorn's types are narrower
    app = wrap_app(asgi, cfg.wsgi_max_body_size, None)

    enter_sandbox("net")
    await channel.send({"t": "ready"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        if http_sock is not None:
            http_sock.setblocking(False)
            nursery.start_soon(partial(worker_serve, app, cfg,
                                       sockets=Sockets([], [http_sock], [])))
        if ipc_sock is not None:
            ipc_sock.setblocking(False)
            nursery.start_soon(_serve_ipc, ipc_sock, front)


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
