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


def _quick_ack(transport) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and _TCP_QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            pass  # not a TCP socket (tests, unix sockets): nothing to speed up


_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def http_protocol(parser: str = "auto"):
    """uvicorn's HTTP/1.1 protocol, ACKing each received segment at once (TCP_QUICKACK, Linux).

    Python's http.client (and so requests/urllib3) writes a POST's head and body in
    two sends with Nagle's algorithm on: the body waits until the server ACKs the
    head, and a server in delayed-ACK mode waits up to 40 ms to do so. Setting
    TCP_QUICKACK when data arrives sends that ACK immediately. It is not sticky in
    Linux, hence once per received chunk (one cheap syscall).

    Args:
      parser: ``"httptools"`` (uvicorn's C parser, the faster one), ``"h11"`` (pure
        Python) or ``"auto"``: httptools when it is installed (the ``[serving]`` extra
        installs it), else h11.
    """
    if parser not in ("auto", "httptools", "h11"):
        raise ValueError(f"parser must be 'auto', 'httptools' or 'h11', got {parser!r}")
    if parser in ("auto", "httptools"):
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
        except ImportError:
            if parser == "httptools":
                raise
            parser = "h11"
    if parser == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class QuickAckProtocol(base):
        def data_received(self, data: bytes) -> None:
            _quick_ack(self.transport)
            super().data_received(data)

    QuickAckProtocol.__name__ = QuickAckProtocol.__qualname__ = f"QuickAck{base.__name__}"
    return QuickAckProtocol
