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

from serving.connections import ConnectionLimits, HeaderCounter, RateLimitedLog, error_response


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


def http_protocol(parser: str = "auto", limits: ConnectionLimits | None = None):
    """uvicorn's HTTP/1.1 protocol with the slow-client limits, ACKing each received segment at once.

    ``limits`` (``serving.connections.ConnectionLimits``, its defaults when None): the header and body
    read timeouts (408), the header size and count caps (431, checked on the raw bytes before the
    parser sees them) and the open-connection cap (closed at accept). Each kind of refusal is logged
    once, then summarised at most once per 10 s.

    Python's http.client (and so requests/urllib3) writes a POST's head and body in
    two sends with Nagle's algorithm on: the body waits until the server ACKs the
    head, and a server in delayed-ACK mode waits up to 40 ms to do so. Setting
    TCP_QUICKACK when data arrives sends that ACK immediately. It is not sticky in
    Linux, hence once per received chunk (one cheap syscall).

    Args:
      parser: ``"httptools"`` (uvicorn's C parser, the faster one), ``"h11"`` (pure
        Python) or ``"auto"``: httptools when it is installed (the ``[serving]`` extra
        installs it), else h11.
      limits: the slow-client limits.

    Example::

        uvicorn.Config(app, http=http_protocol(limits=ConnectionLimits(header_timeout_s=5)))
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
    limits = limits or ConnectionLimits()
    cap = limits.connection_cap()
    # One log per kind of refusal for the whole server (every connection shares these).
    refused_log = RateLimitedLog(f"REST: refused a connection: {cap} connections are open (--max_connections)")
    header_timeout_log = RateLimitedLog(f"REST: closed a connection whose request headers were not complete "
                                        f"after {limits.header_timeout_s:g} s (--request_header_timeout_seconds)")
    body_timeout_log = RateLimitedLog(f"REST: closed a connection whose request body stalled for "
                                      f"{limits.body_timeout_s:g} s (--request_body_timeout_seconds)")
    too_large_log = RateLimitedLog(f"REST: answered 431 to a request over {limits.max_header_bytes} header bytes "
                                   f"(--max_header_bytes) or {limits.max_header_count} headers (--max_header_count)")

    class GuardedProtocol(base):
        """``base`` with the limits; the parser's own state (uvicorn's request cycle) says which phase a
        connection is in, so the same code guards httptools and h11."""

        def connection_made(self, transport) -> None:
            self._refused = cap is not None and len(self.server_state.connections) >= cap
            self._head = HeaderCounter()
            self._header_timer = self._body_timer = None
            if self._refused:
                self.transport = transport  # for connection_lost; the connection never joins the server
                transport.close()
                refused_log.event(self.loop.call_later)
                return
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_timers()
            if self._refused:
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused or self.transport.is_closing():
                return
            _quick_ack(self.transport)
            if self._awaiting_headers():
                self._head.feed(data)
                if self._head_too_large():
                    return  # refused before the parser sees the bytes past the limit
            super().data_received(data)
            if not self._awaiting_headers():
                self._cancel_header_timer()
                self._arm_body_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._head.reset()
                self._arm_header_timer()

        def _awaiting_headers(self) -> bool:
            # No request in progress: none yet, or the last one answered and its body read in full.
            cycle = self.cycle
            return cycle is None or (cycle.response_complete and not cycle.more_body)

        def _head_too_large(self) -> bool:
            head = self._head
            over_bytes = 0 < limits.max_header_bytes < head.size
            over_count = 0 < limits.max_header_count < head.header_lines
            if not (over_bytes or over_count):
                return False
            what = (f"{limits.max_header_count} headers (--max_header_count)" if over_count
                    else f"{limits.max_header_bytes} bytes (--max_header_bytes)")
            self._refuse(431, "Request Header Fields Too Large", f"the request's headers exceed {what}")
            too_large_log.event(self.loop.call_later)
            return True

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._cancel_timers()
            self.transport.write(error_response(status, reason, message))
            self.transport.close()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            if limits.header_timeout_s > 0:
                self._header_timer = self.loop.call_later(limits.header_timeout_s, self._header_timed_out)

        def _arm_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            if limits.body_timeout_s > 0 and self.cycle is not None and self.cycle.more_body:
                self._body_timer = self.loop.call_later(limits.body_timeout_s, self._body_timed_out)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _cancel_timers(self) -> None:
            self._cancel_header_timer()
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._awaiting_headers():
                return
            if self._head.size:
                self._refuse(408, "Request Timeout", f"the request's headers did not arrive within "
                                                     f"{limits.header_timeout_s:g} s")
            else:  # nothing sent since the accept or the last response: no request to answer
                self._cancel_timers()
                self.transport.close()
            if self._head.size or self.cycle is None:  # an idle keep-alive connection's close is no news
                header_timeout_log.event(self.loop.call_later)

        def _body_timed_out(self) -> None:
            self._body_timer = None
            cycle = self.cycle
            if self.transport.is_closing() or cycle is None or not cycle.more_body:
                return
            if self.flow.read_paused:  # we stopped reading (the app is behind), not the client
                self._arm_body_timer()
                return
            if cycle.response_started:
                self._cancel_timers()
                self.transport.close()
            else:
                self._refuse(408, "Request Timeout", f"the request's body stalled for {limits.body_timeout_s:g} s")
            body_timeout_log.event(self.loop.call_later)

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    GuardedProtocol.limits = limits
    return GuardedProtocol
