"""TF Serving's gRPC API: ``PredictionService`` and ``ModelService`` on ``--port`` (and ``--grpc_socket_path``).

A protobuf codec over the typed :class:`~serving.service.PredictionService`, the
same core the REST API runs on: each call turns its request proto into a
:class:`~serving.service.Target`, arrays or serialized examples, lets the
service resolve, check and run, and writes the typed answer into the response
proto. A client written with ``tensorflow_serving.apis`` stubs for TF Serving
works unchanged. Errors are gRPC statuses with the canonical code of the
ServingError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent import futures
from typing import NamedTuple

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    status_pb2,
)

from serving import examples
from serving.config import ConfigError
from serving.connections import ConnectionLimits
from serving.errors import InvalidArgument, ServingError, quoted
from serving.manager import ModelManager
from serving.servable import CLASSIFY_METHOD, Servable, dtype_string
from serving.service import Classification, InferenceTask, PredictionService, Regression, Target
from serving.tensor_proto import fill_tensor_proto, fill_typed_tensor_proto, filled_elements, to_ndarrays

logger = logging.getLogger(__name__)

_METADATA_FIELD = "signature_def"
_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


def _target(spec) -> Target:
    version = spec.version.value if spec.HasField("version") else None
    return Target(spec.name, version, spec.version_label or None)


def _reply_spec(response_spec, servable: Servable, signature_name: str) -> None:
    response_spec.name = servable.name
    response_spec.version.value = servable.version
    response_spec.signature_name = signature_name


def _fill_classifications(result, answer: Classification) -> None:
    for row in answer.classes:
        classes = result.classifications.add()
        for label, score in row:
            classes.classes.add(label=label, score=score)


def _fill_regressions(result, answer: Regression) -> None:
    for value in answer.values:
        result.regressions.add(value=value)


def _guard(method):
    """Run an RPC; a ServingError becomes its canonical gRPC status, anything else INTERNAL."""

    def call(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as e:
            context.abort(grpc.StatusCode[e.code], e.message)
        except Exception as e:  # noqa: BLE001 - reported to the client, logged with its traceback
            logger.exception("internal error in gRPC %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")

    call.__name__ = method.__name__
    return call


def _read_tensors(tensors, max_fill_elements: int):
    """The service's input reader for a PredictionRequest's map of TensorProtos.

    Every check runs before anything is allocated: the dtype is the signature's (TensorFlow's
    words, as TF Serving answers from Session::Run), the shape is valid, ``tensor_content`` holds
    exactly the shape's bytes, and what the fill rule would add stays under ``max_fill_elements``.
    """

    def read(inputs):
        # The service has checked the names (sent_names): every input of the signature is there.
        filled = 0
        for position, (name, spec) in enumerate(inputs.items()):
            proto = tensors[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                raise InvalidArgument(f"Expects arg[{position}] to be {spec.type_string} but "
                                      f"{dtype_string(proto.dtype)} is provided (input {quoted(name)!r})")
            try:
                filled += filled_elements(proto)
            except ValueError as e:
                raise InvalidArgument(f"tensor parsing error: input {quoted(name)!r}: {e}") from None
        if 0 < max_fill_elements < filled:
            raise InvalidArgument(f"the request's tensors declare {filled} elements more than the values they carry "
                                  f"(TensorFlow's fill rule repeats the last value), over the limit of "
                                  f"{max_fill_elements} (--max_fill_elements)")
        try:
            return to_ndarrays(tensors, list(inputs))
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"input tensor cannot be read: {e}") from None

    return read


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: PredictionService, tensor_content: bool = False):
        self._service = service
        self._tensor_content = tensor_content  # --enable_serialization_as_tensor_content

    @_guard
    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        answer = self._service.predict(_target(request.model_spec), request.model_spec.signature_name,
                                       _read_tensors(request.inputs, self._service.max_fill_elements),
                                       list(request.output_filter),
                                       sent_names=request.inputs.keys())
        response = predict_pb2.PredictResponse()
        _reply_spec(response.model_spec, answer.servable, answer.signature.key)
        fill = fill_tensor_proto if self._tensor_content else fill_typed_tensor_proto
        for key, value in answer.outputs.items():
            fill(response.outputs[key], value)
        return response

    @_guard
    def Classify(self, request, context):  # noqa: N802
        answer = self._service.classify(_target(request.model_spec), request.model_spec.signature_name,
                                        examples.serialized_examples(request.input))
        response = classification_pb2.ClassificationResponse()
        _reply_spec(response.model_spec, answer.servable, answer.signature.key)
        _fill_classifications(response.result, answer)
        return response

    @_guard
    def Regress(self, request, context):  # noqa: N802
        answer = self._service.regress(_target(request.model_spec), request.model_spec.signature_name,
                                       examples.serialized_examples(request.input))
        response = regression_pb2.RegressionResponse()
        _reply_spec(response.model_spec, answer.servable, answer.signature.key)
        _fill_regressions(response.result, answer)
        return response

    @_guard
    def GetModelMetadata(self, request, context):  # noqa: N802
        fields = list(request.metadata_field)
        if fields != [_METADATA_FIELD]:
            raise InvalidArgument(f"Metadata field(s) {fields} not supported; ask for [{_METADATA_FIELD!r}]")
        servable, signature_map = self._service.metadata(_target(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _reply_spec(response.model_spec, servable, "")
        response.metadata[_METADATA_FIELD].Pack(signature_map)
        return response

    @_guard
    def MultiInference(self, request, context):  # noqa: N802
        tasks = [InferenceTask(_target(t.model_spec), t.model_spec.signature_name, t.method_name)
                 for t in request.tasks]
        answers = self._service.multi_inference(tasks, examples.serialized_examples(request.input)
                                                if request.HasField("input") else [])
        response = inference_pb2.MultiInferenceResponse()
        for task, answer in zip(request.tasks, answers):
            result = response.results.add()
            _reply_spec(result.model_spec, answer.servable, answer.signature.key)
            if task.method_name == CLASSIFY_METHOD:
                _fill_classifications(result.classification_result, answer)
            else:
                _fill_regressions(result.regression_result, answer)
        return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager, service: PredictionService):
        self._manager = manager
        self._service = service

    @_guard
    def GetModelStatus(self, request, context):  # noqa: N802
        return self._service.status(_target(request.model_spec))

    @_guard
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        # As TF Serving's ModelServiceImpl: a model_config_list replaces the served models (new ones
        # loaded before the answer, removed ones unloaded). As there, a config file polled with
        # --model_config_file_poll_wait_seconds is applied again at its next poll.
        # As there, the call itself succeeds and a failure is the response's status; the answer comes
        # once the new and changed models serve a version (ServerCore::ReloadConfig waits for them).
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise InvalidArgument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                      "Only ModelConfigList is currently supported")
            try:
                changed = self._manager.apply_config(request.config)
            except ConfigError as e:
                raise InvalidArgument(str(e)) from None
            self._manager.wait_until_available(changed)
        except ServingError as e:
            logger.error("ReloadConfig failed: %s", e.message)
            return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(
                error_code=_ERROR_CODES[e.code].number, error_message=e.message))
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))


class GrpcEndpoint(NamedTuple):
    """A started gRPC server: the server, its TCP port (0: none) and the services it answers."""

    server: grpc.Server
    port: int
    services: tuple[str, ...]


# A connection with no call for 5 minutes gets a GOAWAY (grpc core's default: never), so idle clients do
# not hold descriptors forever; a channel reconnects on its next call. --grpc_channel_arguments overrides.
GRPC_MAX_CONNECTION_IDLE_MS = 5 * 60 * 1000


def start_grpc_server(manager: ModelManager, service: PredictionService, host: str, port: int, *,
                      max_workers: int = 16, socket_path: str = "",
                      channel_arguments: Sequence[tuple[str, int | str]] = (),
                      tensor_content: bool = False, enable_profiler: bool = True, max_concurrent_rpcs: int = 0,
                      limits: ConnectionLimits | None = None) -> GrpcEndpoint:
    """Serve both services on ``host:port`` (0 picks a free port, < 0 opens no TCP port) and on the Unix
    domain socket ``socket_path`` when given (``--grpc_socket_path``); returns the started server, its
    TCP port (0 when none) and the names of the services it serves (the profiler's only when it loaded).

    ``channel_arguments`` are grpc server options (``--grpc_channel_arguments``); they override the
    defaults here (no message size limits, as TF Serving's, and no SO_REUSEPORT so a port in use is an
    error). ``tensor_content`` writes Predict outputs into ``tensor_content`` instead of the typed
    value fields (``--enable_serialization_as_tensor_content``).

    Slow and idle clients: ``max_concurrent_rpcs`` (``--max_concurrent_requests``, 0 unlimited) answers calls
    beyond it RESOURCE_EXHAUSTED at once; from ``limits`` (``ConnectionLimits``, its defaults when None), a
    connection that has not finished its HTTP/2 handshake (its SETTINGS frame) within
    ``header_timeout_s`` is closed, and connections beyond ``connection_cap()`` are refused by grpc core.
    Connections idle (no call) for ``GRPC_MAX_CONNECTION_IDLE_MS`` get a GOAWAY; a client's channel
    reconnects on its next call.

    Raises:
        OSError: an address cannot be bound.
    """
    limits = limits or ConnectionLimits()
    options = dict([("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                    ("grpc.so_reuseport", 0), ("grpc.max_connection_idle_ms", GRPC_MAX_CONNECTION_IDLE_MS)])
    if limits.header_timeout_s > 0:
        options["grpc.server_handshake_timeout_ms"] = max(1, round(limits.header_timeout_s * 1000))
    if limits.connection_cap() is not None:
        options["grpc.max_allowed_incoming_connections"] = limits.connection_cap()
    options.update(channel_arguments)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
                         options=list(options.items()),
                         maximum_concurrent_rpcs=max_concurrent_rpcs if max_concurrent_rpcs > 0 else None)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(service, tensor_content),
                                                                        server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(manager, service), server)
    services = ["PredictionService", "ModelService"]
    if enable_profiler:  # --enable_profiler, on by default as in TF Serving: tensorflow.ProfilerService
        from serving.profiler_service import add_profiler_service

        if add_profiler_service(server):
            services.append("ProfilerService")
    addresses = []
    if port >= 0:
        addresses.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if socket_path:
        addresses.append(f"unix:{socket_path}")
    bound = 0
    for address in addresses:
        try:
            result = server.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"cannot listen on {address}: {e}") from None
        if result == 0:
            raise OSError(f"cannot listen on {address}")
        if not address.startswith("unix:"):
            bound = result
    server.start()
    return GrpcEndpoint(server, bound, tuple(services))


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``--grpc_channel_arguments``: comma-separated ``key=value`` pairs; integer values become ints (as TF
    Serving's server.cc reads them).

    Raises:
        ValueError: a pair without ``=`` or with an empty key, named in the message.
    """
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        value = value.strip()
        pairs.append((key.strip(), int(value) if value.lstrip("-").isdigit() else value))
    return pairs
