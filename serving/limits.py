"""Admission control: a cap on in-flight inference requests, and the bound on what one request may allocate.

Past the cap the server answers RESOURCE_EXHAUSTED (HTTP 429) at once instead
of queueing without bound, so an overloaded server sheds load early and
clients back off (the bundled client retries 429 with exponential backoff).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from serving.errors import ResourceExhausted

# --max_fill_elements: 16M elements (64 MB of floats) left to TensorFlow's fill rule, summed over a
# request's tensors. Far above what TF Serving's clients send that way (a zero or a constant tensor
# the size of a batch), far below what hurts a server: without it, a 30-byte request declaring
# [2^26, 1] from one value made the server allocate 256 MB and answer as much.
DEFAULT_MAX_FILL_ELEMENTS = 1 << 24


class ConcurrencyLimiter:
    """At most ``limit`` holders at a time; ``limit <= 0`` means unlimited."""

    def __init__(self, limit: int):
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self) -> bool:
        with self._lock:
            if 0 < self.limit <= self._in_flight:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the duration of the block, or raise ResourceExhausted."""
        if not self.try_acquire():
            raise ResourceExhausted(f"too many requests in flight (limit {self.limit}); retry later")
        try:
            yield
        finally:
            self.release()
