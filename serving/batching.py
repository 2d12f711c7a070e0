"""Server-side request batching, configured like TF Serving's ``--enable_batching``.

Concurrent requests for the same signature are queued, concatenated along the
batch axis, run as one call and split back. A batch is formed when
``max_batch_size`` rows are waiting or the oldest request has waited
``batch_timeout_micros``; ``max_enqueued_batches`` bounds the queue (a full
queue answers RESOURCE_EXHAUSTED, i.e. HTTP 429). Requests whose non-batch
shapes differ are queued apart, since they cannot share one tensor.

``--batching_parameters_file`` is a text-format ``BatchingParameters`` proto::

    max_batch_size { value: 64 }
    batch_timeout_micros { value: 2000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 2 }
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2

from serving.compat import message_class
from serving.config import ConfigError, parse_text_proto
from serving.errors import Internal, InvalidArgument, ResourceExhausted, ServingError

logger = logging.getLogger(__name__)

Tensors = Mapping[str, np.ndarray]
RunFn = Callable[[Tensors], dict]


@dataclass(frozen=True)
class BatchingOptions:
    """Batching parameters, with the defaults of TF Serving's batch scheduler."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None

    def __post_init__(self):
        if self.max_batch_size < 1 or self.num_batch_threads < 1 or self.max_enqueued_batches < 1:
            raise ConfigError("max_batch_size, num_batch_threads and max_enqueued_batches must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ConfigError("batch_timeout_micros must be >= 0")
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise ConfigError(f"allowed_batch_sizes {list(sizes)} must be increasing and end with "
                              f"max_batch_size {self.max_batch_size}")


# --------------------------------------------------------------------------- parameters file

_WRAPPED = {  # field -> (number, wrapper type); numbers as in TF Serving's session_bundle_config.proto
    "max_batch_size": (1, "Int64Value"),
    "batch_timeout_micros": (2, "Int64Value"),
    "max_enqueued_batches": (3, "Int64Value"),
    "num_batch_threads": (4, "Int64Value"),
    "thread_pool_name": (5, "StringValue"),
    "enable_large_batch_splitting": (8, "BoolValue"),
    "max_execution_batch_size": (9, "Int64Value"),
}


def _batching_parameters_class():
    """TF Serving's ``BatchingParameters`` message, built at run time.

    The proto ships in TF Serving's C++ tree but not in the tensorflow-serving-api
    wheel; declaring the same fields lets the standard text-format parser read
    the same files.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="serving/batching_parameters.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = file_proto.message_type.add(name="BatchingParameters")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for name, (number, wrapper) in _WRAPPED.items():
        message.field.add(name=name, number=number, label=optional,
                          type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                          type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file_proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_class(descriptor)


def parse_batching_parameters(text: str, *, source: str = "<string>") -> BatchingOptions:
    """A text-format ``BatchingParameters`` proto -> BatchingOptions (unset fields keep the defaults)."""
    params = parse_text_proto(text, _batching_parameters_class()(), source=source)
    if params.pad_variable_length_inputs:
        raise ConfigError(f"{source}: pad_variable_length_inputs is not supported")
    values = {name: getattr(params, name).value for name in _WRAPPED
              if params.HasField(name) and name != "thread_pool_name"}
    if params.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(params.allowed_batch_sizes)
    try:
        return BatchingOptions(**values)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_batching_parameters(path: str | None) -> BatchingOptions:
    """Read ``--batching_parameters_file``; no file means the defaults."""
    if not path:
        return BatchingOptions()
    try:
        with open(path, encoding="utf-8") as f:
            return parse_batching_parameters(f.read(), source=path)
    except OSError as e:
        raise ConfigError(f"cannot read batching parameters file {path!r}: {e}") from e


# --------------------------------------------------------------------------- batcher


@dataclass
class _Task:
    inputs: Tensors
    size: int
    future: Future
    enqueued_at: float


class Batcher:
    """Merges concurrent calls of one signature into batched calls of ``run_fn``."""

    def __init__(self, run_fn: RunFn, options: BatchingOptions, *, name: str = "",
                 on_batch: Callable[[int], None] | None = None):
        self._run_fn = run_fn
        self._options = options
        self._name = name
        self._on_batch = on_batch
        self._timeout = options.batch_timeout_micros / 1e6
        self._cv = threading.Condition()
        self._queues: dict[tuple, collections.deque[_Task]] = {}
        self._rows: dict[tuple, int] = {}
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{name}-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, inputs: Tensors) -> dict:
        """Run ``inputs`` as part of a batch and return this request's slice of the outputs."""
        size = _batch_size(inputs)
        if size is None or self._closed:
            return self._run_fn(inputs)  # not splittable along axis 0, or shutting down: run alone
        limit = self._options.max_execution_batch_size or self._options.max_batch_size
        if size > self._options.max_batch_size:
            if not self._options.enable_large_batch_splitting:
                raise InvalidArgument(f"request has {size} rows, more than the batching max_batch_size "
                                      f"{self._options.max_batch_size}; send smaller requests")
            chunks = [{k: v[i:i + limit] for k, v in inputs.items()} for i in range(0, size, limit)]
            futures = [self.submit(chunk) for chunk in chunks]
            parts = [f.result() for f in futures]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self.submit(inputs).result()

    def submit(self, inputs: Tensors) -> Future:
        """Queue one request (at most max_batch_size rows); the future holds its outputs."""
        size = _batch_size(inputs)
        key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
        future: Future = Future()
        with self._cv:
            if self._closed:
                raise ResourceExhausted("the batcher is shut down")
            queued = sum(math.ceil(rows / self._options.max_batch_size) for rows in self._rows.values())
            rows = self._rows.get(key, 0)
            after = queued - math.ceil(rows / self._options.max_batch_size) \
                + math.ceil((rows + size) / self._options.max_batch_size)
            if after > self._options.max_enqueued_batches:
                raise ResourceExhausted(f"batching queue for {self._name} is full "
                                        f"(max_enqueued_batches={self._options.max_enqueued_batches}); retry later")
            self._queues.setdefault(key, collections.deque()).append(_Task(inputs, size, future, time.monotonic()))
            self._rows[key] = rows + size
            self._cv.notify()
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting work, finish what is queued, stop the threads."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        while True:
            with self._cv:
                tasks = self._next_batch()
                if tasks is None:
                    return
            self._execute(tasks)

    def _next_batch(self) -> list[_Task] | None:
        """Wait (holding the condition) until a batch is due; None once closed and drained."""
        while True:
            now = time.monotonic()
            wait = None
            for key, queue in self._queues.items():
                if not queue:
                    continue
                due = queue[0].enqueued_at + self._timeout
                if self._closed or self._rows[key] >= self._options.max_batch_size or due <= now:
                    return self._take(key)
                wait = due - now if wait is None else min(wait, due - now)
            if self._closed:
                return None
            self._cv.wait(wait)

    def _take(self, key: tuple) -> list[_Task]:
        queue, tasks, rows = self._queues[key], [], 0
        while queue and (not tasks or rows + queue[0].size <= self._options.max_batch_size):
            task = queue.popleft()
            tasks.append(task)
            rows += task.size
        self._rows[key] -= rows
        if not queue:
            del self._queues[key], self._rows[key]
        return tasks

    def _execute(self, tasks: list[_Task]) -> None:
        live = [t for t in tasks if t.future.set_running_or_notify_cancel()]
        if not live:
            return
        total = sum(t.size for t in live)
        padded = _padded_size(total, self._options.allowed_batch_sizes)
        try:
            merged = {k: np.concatenate([t.inputs[k] for t in live]) for k in live[0].inputs}
            if padded > total:  # repeat the first row; the padding is sliced off below
                merged = {k: np.concatenate([v, np.repeat(v[:1], padded - total, axis=0)]) for k, v in merged.items()}
            outputs = self._run_fn(merged)
            for key, value in outputs.items():
                if np.ndim(value) == 0 or len(value) != padded:
                    raise Internal(f"output {key!r} of a batched call has {np.shape(value)} rows for a batch of "
                                   f"{padded}; the signature cannot be batched")
        except Exception as e:
            error = e if isinstance(e, ServingError) else Internal(f"batched call failed: {e}")
            for task in live:
                task.future.set_exception(error)
            return
        if self._on_batch is not None:
            self._on_batch(total)
        start = 0
        for task in live:
            task.future.set_result({k: v[start:start + task.size] for k, v in outputs.items()})
            start += task.size


def _batch_size(inputs: Tensors) -> int | None:
    """The common leading dimension of all inputs, or None if they do not share one."""
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop() or None


def _padded_size(size: int, allowed: tuple[int, ...]) -> int:
    for candidate in allowed:
        if candidate >= size:
            return candidate
    return size
