"""TensorFlow's profiler service (``tensorflow.ProfilerService``) on the gRPC port, as TF Serving hosts it.

This is what TensorBoard's "Capture profile" button and
``tf.profiler.experimental.client.trace("grpc://host:port", logdir, duration_ms)`` call: ``Profile``
traces this process for the requested window with TensorFlow's own profiler and answers with the
XSpace; the client saves it as ``logdir/plugins/profile/<run>/<host>_<port>.xplane.pb``, which
TensorBoard's profile plugin reads.

The messages: TensorFlow's wheel has no Python module for profiler_service.proto (only its C++
code), so the file descriptor TensorFlow compiled into ``libtensorflow_cc`` is read back and message
classes are built from it in a private descriptor pool. Nothing of the schema is copied here: when
that descriptor cannot be found, the service is not added and the reason is logged.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc

logger = logging.getLogger(__name__)

_SERVICE = "tensorflow.ProfilerService"
_SERVICE_FILE = "tsl/profiler/protobuf/profiler_service.proto"
# Libraries of the TensorFlow package that may carry the generated C++ protos, in the order tried.
_LIBRARIES = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2", "python/_pywrap_tensorflow_internal.so")
# A longer window is almost surely a typo, and it would hold the one profiler session (and a gRPC
# worker thread) for that long.
MAX_DURATION_MS = 10 * 60 * 1000
_XPLANE_TOOL = "xplane.pb"


@dataclass(frozen=True)
class _Messages:
    ProfileRequest: type
    ProfileResponse: type
    TerminateRequest: type
    TerminateResponse: type
    MonitorRequest: type
    MonitorResponse: type


class _DescriptorTable(ctypes.Structure):
    # The leading fields of protobuf's C++ ``internal::DescriptorTable`` (the same from protobuf
    # 3.12 to today): the serialized FileDescriptorProto and the .proto file's name.
    _fields_ = [("is_initialized", ctypes.c_bool), ("is_eager", ctypes.c_bool), ("size", ctypes.c_int),
                ("descriptor", ctypes.c_void_p), ("filename", ctypes.c_void_p)]


def _table_symbol(proto_file: str) -> str:
    # protoc's name for a file's descriptor table: every non-alphanumeric character as _XX (hex).
    return "descriptor_table_" + "".join(c if c.isalnum() else f"_{ord(c):02x}" for c in proto_file)


def _readable_ranges() -> list[tuple[int, int]]:
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                start, end = (int(x, 16) for x in span.split("-"))
                ranges.append((start, end))
    return ranges


def _readable(ranges: list[tuple[int, int]], address: int | None, size: int) -> bool:
    # A wrong guess of the struct layout must give a logged reason, not a segfault: only read
    # memory that is mapped readable.
    return bool(address) and any(start <= address and address + size <= end for start, end in ranges)


def _serialized_file(libraries: list[ctypes.CDLL], proto_file: str, ranges: list[tuple[int, int]]) -> bytes:
    symbol = _table_symbol(proto_file)
    for lib in libraries:
        try:
            table = _DescriptorTable.in_dll(lib, symbol)
        except ValueError:  # not exported by this library
            continue
        name = proto_file.encode() + b"\0"
        if not (0 < table.size < 1 << 20 and _readable(ranges, table.filename, len(name))
                and _readable(ranges, table.descriptor, table.size)):
            raise LookupError(f"{symbol} does not look like a protobuf descriptor table")
        if ctypes.string_at(table.filename, len(name)) != name:
            raise LookupError(f"{symbol} names another file")
        return ctypes.string_at(table.descriptor, table.size)
    raise LookupError(f"no TensorFlow library exports {symbol}")


def _load_messages() -> _Messages:
    """The ProfilerService messages, built from the descriptors compiled into TensorFlow.

    Raises:
        LookupError, OSError, ImportError: with the reason they are not available.
    """
    import tensorflow as tf
    from google.protobuf import descriptor_pb2, descriptor_pool

    from serving.compat import message_class

    if not os.path.exists("/proc/self/maps"):
        raise LookupError("reading TensorFlow's compiled descriptors needs /proc/self/maps (Linux)")
    ranges = _readable_ranges()
    package = tf.sysconfig.get_lib()
    libraries = [ctypes.CDLL(os.path.join(package, name)) for name in _LIBRARIES
                 if os.path.exists(os.path.join(package, name))]
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(proto_file: str) -> None:
        # Dependencies first, as a pool requires.
        if proto_file in added:
            return
        serialized = _serialized_file(libraries, proto_file, ranges)
        file_proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        if file_proto.name != proto_file:
            raise LookupError(f"the descriptor read for {proto_file} is {file_proto.name}")
        for dependency in file_proto.dependency:
            add(dependency)
        pool.AddSerializedFile(serialized)
        added.add(proto_file)

    add(_SERVICE_FILE)
    service = pool.FindServiceByName(_SERVICE)
    if {m.name for m in service.methods} < {"Profile", "Terminate", "Monitor"}:
        raise LookupError(f"{_SERVICE} lacks Profile, Terminate or Monitor")

    def message(name: str) -> type:
        return message_class(pool.FindMessageTypeByName(f"tensorflow.{name}"))

    return _Messages(*(message(n) for n in ("ProfileRequest", "ProfileResponse", "TerminateRequest",
                                            "TerminateResponse", "MonitorRequest", "MonitorResponse")))


_messages_lock = threading.Lock()
_messages_cache: _Messages | str | None = None


def _messages() -> _Messages | str:
    """The message classes, or why they are not available (computed once per process)."""
    global _messages_cache
    with _messages_lock:
        if _messages_cache is None:
            try:
                _messages_cache = _load_messages()
            except (LookupError, OSError, ImportError, ValueError, TypeError) as e:
                _messages_cache = f"{type(e).__name__}: {e}"
        return _messages_cache


def _tracer_options(opts) -> dict[str, int]:
    # As TF's ProfilerSession: options of version 0 (older clients) mean the defaults.
    if not opts.version:
        return {"host_tracer_level": 2, "device_tracer_level": 1, "python_tracer_level": 0}
    return {"host_tracer_level": opts.host_tracer_level, "device_tracer_level": opts.device_tracer_level,
            "python_tracer_level": opts.python_tracer_level}


def _has_events(serialized_xspace: bytes) -> bool:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace.FromString(serialized_xspace)
    return any(line.events for plane in space.planes for line in plane.lines)


class _ProfilerServicer:
    """One profiling session at a time, as TF's profiler allows only one per process."""

    def __init__(self, messages: _Messages):
        self._messages = messages
        self._busy = threading.Lock()  # held for a whole Profile call
        self._mutex = threading.Lock()  # guards _stops
        self._stops: dict[str, threading.Event] = {}

    def profile(self, request, context: grpc.ServicerContext):
        opts = request.opts
        field, duration_ms = ("opts.duration_ms", opts.duration_ms) if opts.duration_ms else \
            ("duration_ms", request.duration_ms)
        if not 0 < duration_ms <= MAX_DURATION_MS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{field} must be between 1 and {MAX_DURATION_MS} ms, got {duration_ms}")
        delay_s = max(0.0, (opts.start_timestamp_ns - time.time_ns()) / 1e9) if opts.start_timestamp_ns else 0.0
        if delay_s * 1000 > MAX_DURATION_MS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"opts.start_timestamp_ns is more than {MAX_DURATION_MS} ms away")
        if not self._busy.acquire(blocking=False):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "another profiling session is running on this server; only one at a time")
        stop = threading.Event()
        try:
            with self._mutex:
                self._stops[request.session_id] = stop
            context.add_callback(stop.set)  # a cancelled RPC ends the window too
            if delay_s:  # the client's delay_ms: start at its start_timestamp_ns
                stop.wait(delay_s)
            xspace = self._trace(request, context, duration_ms, stop)
        finally:
            with self._mutex:
                self._stops.pop(request.session_id, None)
            self._busy.release()
        if not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "profiling cancelled")
        response = self._messages.ProfileResponse(empty_trace=not _has_events(xspace))
        if not response.empty_trace:
            # The client saves tool data as <repository_root>/<session_id>/<host>.<name>: the same
            # file TF's server writes itself, but on the client's machine (see docs/serving.md).
            response.tool_data.add(name=_XPLANE_TOOL, data=xspace)
        logger.info("profiled %d ms for session %r (%d bytes of XSpace)", duration_ms, request.session_id,
                    len(xspace))
        return response

    def _trace(self, request, context: grpc.ServicerContext, duration_ms: int, stop: threading.Event) -> bytes:
        """Trace this process until the window ends, a Terminate or a cancel; the serialized XSpace."""
        from tensorflow.python.profiler.internal import _pywrap_profiler

        # ProfilerSession exports only to a logdir (its stop() gives trace events, not the XSpace):
        # export to a private one and read the file back.
        logdir = tempfile.mkdtemp(prefix="tfmtl-profile-")
        try:
            session = _pywrap_profiler.ProfilerSession()
            try:
                session.start(logdir, _tracer_options(request.opts))
            except Exception as e:  # noqa: BLE001 - e.g. tf.profiler.experimental.start() active in-process
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot start the profiler: {e}")
            try:
                stop.wait(duration_ms / 1000)
            finally:
                session.export_to_tb()
            files = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
            if len(files) != 1:
                context.abort(grpc.StatusCode.INTERNAL, f"the profiler wrote {len(files)} XSpace files")
            with open(files[0], "rb") as f:
                return f.read()
        finally:
            shutil.rmtree(logdir, ignore_errors=True)

    def terminate(self, request, context: grpc.ServicerContext):
        # As TF's: ends that session's window early (it still answers with what it traced).
        with self._mutex:
            stop = self._stops.get(request.session_id)
        if stop is not None:
            stop.set()
        return self._messages.TerminateResponse()

    def monitor(self, request, context: grpc.ServicerContext):
        # TF's ProfilerServiceImpl (and so TF Serving) does not implement Monitor either.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")


def add_profiler_service(server: grpc.Server) -> bool:
    """Add ``tensorflow.ProfilerService`` to ``server`` (before it starts); False, logged, when impossible."""
    messages = _messages()
    if isinstance(messages, str):
        logger.warning("profiler service not available: %s", messages)
        return False
    servicer = _ProfilerServicer(messages)

    def handler(method, request_class: Any, response_class: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_class.FromString,
                                                   response_serializer=response_class.SerializeToString)

    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(_SERVICE, {
        "Profile": handler(servicer.profile, messages.ProfileRequest, messages.ProfileResponse),
        "Terminate": handler(servicer.terminate, messages.TerminateRequest, messages.TerminateResponse),
        "Monitor": handler(servicer.monitor, messages.MonitorRequest, messages.MonitorResponse),
    })])
    logger.info("Profiler service is enabled")
    return True
