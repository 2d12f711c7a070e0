"""TF Serving's gRPC API: ``PredictionService`` and ``ModelService`` on ``--port``.

The same servables, version policy, labels and batching as the REST API: each
call resolves its ``ModelSpec`` through the ModelManager and runs through the
PredictionService, so a client written with ``tensorflow_serving.apis`` stubs
for TF Serving works unchanged. Errors are gRPC statuses with the canonical
code of the ServingError.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
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
from serving.errors import InvalidArgument, ServingError, Unimplemented
from serving.manager import ModelManager
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable
from serving.service import PredictionService, status_response
from serving.tensor_proto import fill_tensor_proto, to_ndarrays

logger = logging.getLogger(__name__)

_METADATA_FIELD = "signature_def"


def _target(spec) -> tuple[str, int | None, str | None]:
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def _reply_spec(response_spec, servable: Servable, signature_name: str) -> None:
    response_spec.name = servable.name
    response_spec.version.value = servable.version
    response_spec.signature_name = signature_name


def _fill_classifications(result, outputs, count: int) -> None:
    """A ClassificationResult from a classify signature's outputs."""
    for row in examples.classification_results(outputs, count):
        classes = result.classifications.add()
        for label, score in row:
            classes.classes.add(label=label, score=score)


def _fill_regressions(result, outputs, count: int) -> None:
    """A RegressionResult from a regress signature's outputs."""
    for value in examples.regression_results(outputs, count):
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


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, service: PredictionService):
        self._manager = manager
        self._service = service

    @_guard
    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        servable = self._manager.resolve(*_target(request.model_spec))
        signature = servable.signature(request.model_spec.signature_name)
        missing = sorted(set(signature.inputs) - set(request.inputs))
        if missing:
            raise InvalidArgument(f"Missing input(s) {missing}; the signature's inputs are {list(signature.inputs)}")
        extra = sorted(set(request.inputs) - set(signature.inputs))
        if extra:
            raise InvalidArgument(f"Extra input(s) {extra}; the signature's inputs are {list(signature.inputs)}")
        try:
            inputs = to_ndarrays(request.inputs, signature.inputs)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"input tensor cannot be read: {e}") from None
        outputs = self._service.run(servable, signature, inputs)
        wanted = list(request.output_filter) or list(outputs)
        unknown = [k for k in wanted if k not in outputs]
        if unknown:
            raise InvalidArgument(f"output_filter names unknown output(s) {unknown}; outputs: {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        _reply_spec(response.model_spec, servable, signature.key)
        for key in wanted:
            fill_tensor_proto(response.outputs[key], outputs[key])
        return response

    @_guard
    def Classify(self, request, context):  # noqa: N802
        servable, signature, outputs, count = self._examples(request, examples.check_classify_signature)
        response = classification_pb2.ClassificationResponse()
        _reply_spec(response.model_spec, servable, signature.key)
        _fill_classifications(response.result, outputs, count)
        return response

    @_guard
    def Regress(self, request, context):  # noqa: N802
        servable, signature, outputs, count = self._examples(request, examples.check_regress_signature)
        response = regression_pb2.RegressionResponse()
        _reply_spec(response.model_spec, servable, signature.key)
        _fill_regressions(response.result, outputs, count)
        return response

    def _examples(self, request, check):
        servable = self._manager.resolve(*_target(request.model_spec))
        signature = servable.signature(request.model_spec.signature_name)
        check(signature)
        serialized = examples.serialized_examples(request.input)
        if not serialized:
            raise InvalidArgument("Input is empty")
        outputs = self._service.run(servable, signature, examples.examples_tensor(serialized))
        return servable, signature, outputs, len(serialized)

    @_guard
    def GetModelMetadata(self, request, context):  # noqa: N802
        fields = list(request.metadata_field)
        if fields != [_METADATA_FIELD]:
            raise InvalidArgument(f"Metadata field(s) {fields} not supported; ask for [{_METADATA_FIELD!r}]")
        servable = self._manager.resolve(*_target(request.model_spec))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _reply_spec(response.model_spec, servable, "")
        response.metadata[_METADATA_FIELD].Pack(signature_map)
        return response

    @_guard
    def MultiInference(self, request, context):  # noqa: N802
        # As TF Serving's TensorFlowMultiInferenceRunner: every task names the same model; each
        # signature once; the same examples feed every task's classify or regress signature.
        first = request.tasks[0].model_spec if request.tasks else None
        servable = self._manager.resolve(*_target(first)) if first is not None else self._manager.resolve("")
        plan = []
        for task in request.tasks:
            if not task.model_spec.name:
                raise InvalidArgument("Found ModelSpec with an empty model name.")
            if task.model_spec.name != first.name:
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            signature = servable.signature(task.model_spec.signature_name)
            if any(signature.key == done.key for done, _ in plan):
                raise InvalidArgument(f"Duplicate evaluation of signature: {signature.key}")
            if task.method_name == CLASSIFY_METHOD:
                examples.check_classify_signature(signature)
            elif task.method_name == REGRESS_METHOD:
                examples.check_regress_signature(signature)
            else:
                raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
            plan.append((signature, task.method_name))
        serialized = examples.serialized_examples(request.input)
        if not serialized:
            raise InvalidArgument("Input is empty")
        response = inference_pb2.MultiInferenceResponse()
        for signature, method in plan:
            outputs = self._service.run(servable, signature, examples.examples_tensor(serialized))
            result = response.results.add()
            _reply_spec(result.model_spec, servable, signature.key)
            if method == CLASSIFY_METHOD:
                _fill_classifications(result.classification_result, outputs, len(serialized))
            else:
                _fill_regressions(result.regression_result, outputs, len(serialized))
        return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_guard
    def GetModelStatus(self, request, context):  # noqa: N802
        states = self._manager.version_states(*_target(request.model_spec))
        response: get_model_status_pb2.GetModelStatusResponse = status_response(states)
        return response

    @_guard
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        # As TF Serving's ModelServiceImpl: a model_config_list replaces the served models (new ones
        # loaded before the answer, removed ones unloaded). As there, a config file polled with
        # --model_config_file_poll_wait_seconds is applied again at its next poll.
        if request.config.WhichOneof("config") != "model_config_list":
            raise InvalidArgument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                  "Only ModelConfigList is currently supported")
        try:
            self._manager.apply_config(request.config)
        except ConfigError as e:
            raise InvalidArgument(str(e)) from None
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))


def start_grpc_server(manager: ModelManager, service: PredictionService, host: str, port: int, *,
                      max_workers: int = 16) -> tuple[grpc.Server, int]:
    """Serve both services on ``host:port`` (0 picks a free port); returns the started server and its port.

    Raises:
        OSError: the address cannot be bound.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                                  ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(manager, service), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(manager), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"cannot listen on {address}: {e}") from None
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server, bound



