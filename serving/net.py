"""The listening socket, made so that every accepted connection has TCP_NODELAY.

asyncio turns Nagle's algorithm off on an accepted connection only when the
socket's ``proto`` is ``IPPROTO_TCP``; a socket made with
``socket.socket(AF_INET)`` has ``proto == 0``, and so do the connections it
accepts. uvicorn writes a response's head and body in two sends; with Nagle on,
the body waits for the client's (delayed, ~40 ms) ACK of the head, so every
request on a reused keep-alive connection took ~40 ms. Passing the protocol
explicitly restores TCP_NODELAY.
"""

from __future__ import annotations

import socket


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` (port 0 picks a free one) whose connections get TCP_NODELAY.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
