"""Limits on what a slow or hostile client can hold: read timeouts, header caps, a connection cap.

The app only sees complete requests, so these live in the HTTP protocol (``serving.net``): a
client that never finishes its headers, stalls its body, sends a 100 MB header or holds thousands
of connections open would otherwise keep a file descriptor (and event-loop time) forever.

- **Header read timeout**: from the connection's accept, or from the end of the previous response
  on a keep-alive connection, until the request's headers are complete. A connection that sent
  part of a request is answered 408 and closed; one that sent nothing is closed silently (an idle
  keep-alive connection, usually closed before by uvicorn's keep-alive timeout).
- **Body read timeout**: the longest wait between two chunks of a request's body (as nginx's
  client_body_timeout); 408 when no response was started, else a plain close.
- **Header size and count**: counted on the raw bytes as they arrive, before the parser sees them,
  so a 100 MB header costs at most ``max_header_bytes`` of parsing; beyond it, 431.
- **Open connections**: past the cap a new connection is closed at accept.

Each kind of refusal logs one line at once and then at most one summary line per
``LOG_INTERVAL_SECONDS``, so a flood of them cannot flood the log.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass

logger = logging.getLogger("serving.connections")

LOG_INTERVAL_SECONDS = 10.0

# The file descriptors left to the rest of the process (model files, logs, TensorFlow's threads)
# when --max_connections is automatic: an eighth of RLIMIT_NOFILE, at least 256.
_RESERVED_FDS_FRACTION = 8
_RESERVED_FDS_MIN = 256


@dataclass(frozen=True)
class ConnectionLimits:
    """The slow-client limits, the home of their defaults (the CLI flags read them from here).

    Attributes:
      header_timeout_s: seconds to receive a request's headers (``--request_header_timeout_seconds``);
        on gRPC, the connection's HTTP/2 handshake (``grpc.server_handshake_timeout_ms``). <= 0: none.
      body_timeout_s: the longest gap between two chunks of a body (``--request_body_timeout_seconds``).
        <= 0: none.
      max_header_bytes: the request line and headers together (``--max_header_bytes``); 0: unlimited.
      max_header_count: headers in one request (``--max_header_count``); 0: unlimited.
      max_connections: open connections per transport (``--max_connections``); 0: automatic
        (see ``automatic_max_connections``), < 0: unlimited.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    max_connections: int = 0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_header_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 is unlimited), got {getattr(self, name)}")

    def connection_cap(self) -> int | None:
        """The open-connection cap per transport, ``None`` when unlimited."""
        if self.max_connections < 0:
            return None
        return self.max_connections or automatic_max_connections()


def automatic_max_connections(nofile: int | None = None) -> int:
    """Connections per transport (REST, gRPC) under the soft RLIMIT_NOFILE ``nofile`` (the process's when
    None), leaving an eighth of it (at least 256) for the rest of the process: 8,750 each under
    20,000 descriptors, 384 each under 1,024.

    >>> automatic_max_connections(20000), automatic_max_connections(1024)
    (8750, 384)
    """
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile == resource.RLIM_INFINITY:
            nofile = 1 << 20
    reserved = max(_RESERVED_FDS_MIN, nofile // _RESERVED_FDS_FRACTION)
    return max(1, (nofile - reserved) // 2)


class RateLimitedLog:
    """A warning logged at once, then at most once per ``interval_s`` with how many more happened.

    ``clock`` is injectable for tests; ``flush_later(delay, callback)`` (the event loop's
    ``call_later``) makes the summary of the last window appear even when no further event comes.
    """

    def __init__(self, message: str, interval_s: float = LOG_INTERVAL_SECONDS, log: logging.Logger = logger,
                 clock=time.monotonic) -> None:
        self.message = message
        self.interval_s = interval_s
        self._log = log
        self._clock = clock
        self._window_end = float("-inf")
        self._suppressed = 0
        self.total = 0

    def event(self, flush_later=None) -> None:
        self.total += 1
        now = self._clock()
        if now >= self._window_end:
            self._emit_summary()
            self._log.warning(self.message)
            self._window_end = now + self.interval_s
            if flush_later is not None:
                flush_later(self.interval_s, self._emit_summary)
        else:
            self._suppressed += 1

    def _emit_summary(self) -> None:
        if self._suppressed:
            self._log.warning("%s (%d more in the last %g s)", self.message, self._suppressed, self.interval_s)
            self._suppressed = 0


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete ``connection: close`` HTTP/1.1 response with TF Serving's JSON error body."""
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class HeaderCounter:
    """Counts a request's head (request line and headers) as raw bytes arrive, until its blank line.

    ``feed(data)`` returns the index in ``data`` just past the head's end, or -1 while the head goes
    on; ``size`` and ``lines`` (header lines, the request line excluded) cover what was fed of the
    head. It scans with ``bytes.find``/``count`` (C speed) and keeps the last 3 bytes so a
    ``\\r\\n\\r\\n`` split across two reads is found.
    """

    __slots__ = ("size", "lines", "complete", "_tail")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.size = 0
        self.lines = 0
        self.complete = False
        self._tail = b""

    def feed(self, data: bytes) -> int:
        if not self.size:
            data_start = len(data) - len(data.lstrip(b"\r\n"))  # RFC 9112: blank lines before a request
            if data_start == len(data):
                return -1
            data = data[data_start:] if data_start else data
        else:
            data_start = 0
        end = -1
        if self._tail:
            joined = self._tail + data[:3]
            at = joined.find(b"\r\n\r\n")
            if at >= 0:
                end = at + 4 - len(self._tail)
        if end < 0:
            at = data.find(b"\r\n\r\n")
            if at >= 0:
                end = at + 4
        head = data if end < 0 else data[:end]
        self.lines += head.count(b"\n")
        self.size += len(head)
        self._tail = (self._tail + head)[-3:]
        if end < 0:
            return -1
        self.complete = True
        return data_start + end

    @property
    def header_lines(self) -> int:
        """Header lines so far: the line breaks, less the request line's and (once complete) the blank line's."""
        return max(0, self.lines - 1 - self.complete)
