"""The prediction service: one typed core under both transports.

Each operation takes a :class:`Target` (model, and a version or a label), a
signature name and arrays or serialized ``tf.Example`` s, and returns typed
results: the servable and signature that answered, output arrays,
classifications or regressions, the ``SignatureDefMap``, the status proto. The
REST app (:mod:`serving.rest`, JSON) and the gRPC server
(:mod:`serving.grpc_server`, protos) are codecs over it, so a behaviour
(resolve -> signature -> check -> run, TF Serving's error words, the method-name
check) is written, and fixed, once for both. Failures raise
:class:`~serving.errors.ServingError`.

Example (``manager`` a started :class:`~serving.manager.ModelManager`)::

    service = PredictionService(manager)
    answer = service.predict(Target("census"), "", lambda inputs: {"age": np.array([39.0], np.float32)})
    answer.outputs["income_50k"]      # np.ndarray [batch, 1]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving import examples
from serving.batching import Batcher, BatchingOptions
from serving.errors import FailedPrecondition, Internal, InvalidArgument, Unimplemented, quoted
from serving.limits import DEFAULT_MAX_FILL_ELEMENTS
from serving.manager import ModelManager, VersionState
from serving.metrics import ServingMetrics
from serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    REGRESS_METHOD,
    Servable,
    Signature,
    TensorInfo,
)

logger = logging.getLogger(__name__)

_ModelVersionStatus = get_model_status_pb2.ModelVersionStatus
# Predict serves any of the three methods (TF Serving's predict_util.cc, VerifySignature).
_PREDICT_METHODS = (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD)

# A transport's decoder: the signature's input specs in, one array per input out.
InputReader = Callable[[Mapping[str, TensorInfo]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Target:
    """What a request addresses: a model name, and optionally a version number or a version label."""

    name: str
    version: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class Prediction:
    """A Predict answer: the servable and signature that ran, and the outputs asked for (in signature order)."""

    servable: Servable
    signature: Signature
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class Classification:
    """A Classify answer: per example, ``(label, score)`` per class (TF Serving's ClassificationResult)."""

    servable: Servable
    signature: Signature
    classes: list[list[tuple[str, float]]]


@dataclass(frozen=True)
class Regression:
    """A Regress answer: one value per example (TF Serving's RegressionResult)."""

    servable: Servable
    signature: Signature
    values: list[float]


@dataclass(frozen=True)
class InferenceTask:
    """One task of a MultiInference request: a model spec and the method (classify or regress) to run."""

    target: Target
    signature_name: str
    method_name: str


class PredictionService:
    """Status, metadata, Predict, Classify, Regress and MultiInference against the versions a ModelManager serves.

    Args:
      manager: the versions to serve.
      batching: batch concurrent requests per signature (``--enable_batching``); None runs each alone.
      metrics: where batch sizes are recorded.
      method_name_check: refuse a signature whose ``method_name`` is not the API's, as TF Serving does
        under ``--enable_signature_method_name_check``. Off by default, as there: TF2's
        ``tf.saved_model.save`` writes every signature as a predict signature, and Classify/Regress then
        check only the signature's inputs and outputs.
      max_fill_elements: the most tensor elements one request may leave to TensorFlow's fill rule (a
        gRPC TensorProto whose shape declares more elements than it carries values repeats the last
        one), summed over its inputs: what a request may make the server allocate beyond what it
        sends (``--max_fill_elements``; 0: no limit).
    """

    def __init__(self, manager: ModelManager, *, batching: BatchingOptions | None = None,
                 metrics: ServingMetrics | None = None, method_name_check: bool = False,
                 max_fill_elements: int = DEFAULT_MAX_FILL_ELEMENTS):
        self._manager = manager
        self._batching = batching
        self._metrics = metrics
        self.method_name_check = method_name_check
        self.max_fill_elements = max_fill_elements
        self._batchers: dict[tuple[str, int, str], Batcher] = {}
        self._lock = threading.Lock()
        manager.add_listener(self._on_model_event)

    # ------------------------------------------------------------------ status / metadata

    def status(self, target: Target) -> get_model_status_pb2.GetModelStatusResponse:
        """The ``GetModelStatusResponse`` of one version (by number or label) or of all known versions."""
        return status_response(self._manager.version_states(target.name, target.version, target.label))

    def metadata(self, target: Target) -> tuple[Servable, get_model_metadata_pb2.SignatureDefMap]:
        """The servable a metadata request resolves to and its ``SignatureDefMap``."""
        servable = self.resolve(target)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        return servable, signature_map

    def resolve(self, target: Target) -> Servable:
        """The servable ``target`` addresses (NOT_FOUND while no such version is available)."""
        return self._manager.resolve(target.name, target.version, target.label)

    # ------------------------------------------------------------------ inference

    def predict(self, target: Target, signature_name: str, read_inputs: InputReader,
                output_filter: Sequence[str] = (), sent_names: Collection[str] | None = None) -> Prediction:
        """Run a signature on the arrays ``read_inputs(signature.inputs)`` returns.

        ``read_inputs`` is the transport's decoder: it gets the signature's input specs (the JSON
        codec needs their dtypes) and returns one array per input. ``output_filter`` names the
        outputs to return (all when empty). ``sent_names``: the input names a request carries when
        the transport knows them before decoding (gRPC's map); they are checked against the
        signature first, as TF Serving's VerifyRequestInputsSize does, so nothing is decoded for a
        request that names the wrong inputs.
        """
        servable = self.resolve(target)
        signature = _find_signature(servable, signature_name, "Predict")
        if self.method_name_check and signature.method_name not in _PREDICT_METHODS:
            raise Internal(f"Expected prediction signature method_name to be one of {{{', '.join(_PREDICT_METHODS)}}}"
                           f". Was: {signature.method_name}")
        if sent_names is not None:  # checked before decoding; the reader then returns exactly the signature's
            _check_input_names(signature, sent_names)
        inputs = read_inputs(signature.inputs)
        if sent_names is None:
            _check_input_names(signature, inputs)
        wanted = _output_aliases(signature, output_filter)
        outputs = self.run(servable, signature, inputs)
        return Prediction(servable, signature, {key: outputs[key] for key in wanted})

    def classify(self, target: Target, signature_name: str, serialized: Sequence[bytes]) -> Classification:
        """Run a classification signature on serialized ``tf.Example`` s."""
        servable = self.resolve(target)
        signature = _find_signature(servable, signature_name, "Classify")
        examples.check_classify_signature(signature, method_name_check=self.method_name_check)
        return Classification(servable, signature, self._classes(servable, signature, serialized))

    def regress(self, target: Target, signature_name: str, serialized: Sequence[bytes]) -> Regression:
        """Run a regression signature on serialized ``tf.Example`` s."""
        servable = self.resolve(target)
        signature = _find_signature(servable, signature_name, "Regress")
        examples.check_regress_signature(signature, method_name_check=self.method_name_check)
        return Regression(servable, signature, self._values(servable, signature, serialized))

    def multi_inference(self, tasks: Sequence[InferenceTask],
                        serialized: Sequence[bytes]) -> list[Classification | Regression]:
        """Several classify/regress signatures of one model on the same examples (TF Serving's MultiInference).

        As TF Serving's TensorFlowMultiInferenceRunner: every task names the same model, each
        signature once, and the method is the task's, checked against the signature's inputs and
        outputs. TF Serving runs the tasks in one Session call; here each signature runs once.
        """
        # The first task's model is resolved before any task is checked (no task: the empty name).
        servable = self.resolve(tasks[0].target if tasks else Target(""))
        plan: list[tuple[Signature, str]] = []
        for task in tasks:
            if not task.target.name:
                raise InvalidArgument("Found ModelSpec with an empty model name.")
            if task.target.name != tasks[0].target.name:
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            key = task.signature_name or DEFAULT_SIGNATURE
            if any(key == done.key for done, _ in plan):
                raise InvalidArgument(f"Duplicate evaluation of signature: {key}")
            signature = _find_signature(servable, key, "MultiInference")
            if task.method_name == CLASSIFY_METHOD:
                examples.check_classify_signature(signature, method_name_check=self.method_name_check)
            elif task.method_name == REGRESS_METHOD:
                examples.check_regress_signature(signature, method_name_check=self.method_name_check)
            else:
                raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
            plan.append((signature, task.method_name))
        _check_examples(serialized)
        return [Classification(servable, signature, self._classes(servable, signature, serialized))
                if method == CLASSIFY_METHOD else
                Regression(servable, signature, self._values(servable, signature, serialized))
                for signature, method in plan]

    def _classes(self, servable: Servable, signature: Signature,
                 serialized: Sequence[bytes]) -> list[list[tuple[str, float]]]:
        _check_examples(serialized)
        outputs = self.run(servable, signature, examples.examples_tensor(serialized))
        return examples.classification_results(outputs, len(serialized))

    def _values(self, servable: Servable, signature: Signature, serialized: Sequence[bytes]) -> list[float]:
        _check_examples(serialized)
        outputs = self.run(servable, signature, examples.examples_tensor(serialized))
        return examples.regression_results(outputs, len(serialized))

    def run(self, servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature, through the batcher when batching is on."""
        batcher = self._batcher(servable, signature)
        return batcher.run(inputs) if batcher is not None else signature.run(inputs)

    # ------------------------------------------------------------------ batching

    def _batcher(self, servable: Servable, signature: Signature) -> Batcher | None:
        if self._batching is None or not signature.batch_major:
            return None
        key = (servable.name, servable.version, signature.key)
        with self._lock:
            if servable.unloaded:  # checked under the lock the unload listener takes: no orphan batcher
                return None
            batcher = self._batchers.get(key)
            if batcher is None:
                on_batch = self._metrics.batch_size.labels(servable.name).observe if self._metrics else None
                batcher = Batcher(signature.run, self._batching, name=f"{servable.name}/{servable.version}/"
                                  f"{signature.key}", on_batch=on_batch)
                self._batchers[key] = batcher
        return batcher

    def _on_model_event(self, event: str, name: str, state: VersionState) -> None:
        if event != "unloaded":
            return
        with self._lock:
            keys = [k for k in self._batchers if k[0] == name and k[1] == state.version]
            batchers = [self._batchers.pop(k) for k in keys]
        for batcher in batchers:
            batcher.close()

    def close(self) -> None:
        """Finish queued batches and stop the batch threads."""
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()


# TF Serving's words when a request names a signature the model lacks, per API (predict_util.cc,
# classifier.cc / regressor.cc, multi_inference.cc); the available names follow as detail.
_SIGNATURE_NOT_FOUND = {
    "Predict": (FailedPrecondition, 'Serving signature key "{}" not found.'),
    "Classify": (InvalidArgument, "No signature was found with the name: {}"),
    "Regress": (InvalidArgument, "No signature was found with the name: {}"),
    "MultiInference": (InvalidArgument, "Requested signature not found in model graph: {}"),
}


def _find_signature(servable: Servable, name: str, api: str) -> Signature:
    key = name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        error, words = _SIGNATURE_NOT_FOUND[api]
        raise error(words.format(quoted(key)) + f" (model {servable.name!r} version {servable.version} has signatures "
                    f"{sorted(servable.signatures)})")
    return signature


def _check_input_names(signature: Signature, inputs: Collection[str]) -> None:
    # TF Serving's VerifyRequestInputsSize, with its words.
    if set(inputs) == set(signature.inputs):
        return
    sent, wanted = sorted(inputs), sorted(signature.inputs)
    extra = [k for k in sent if k not in signature.inputs]
    missing = [k for k in wanted if k not in inputs]
    raise InvalidArgument(f"input size does not match signature: {len(sent)}!={len(wanted)} "
                          f"len({{{quoted(','.join(sent))}}}) != len({{{','.join(wanted)}}}). "
                          f"Sent extra: {{{quoted(','.join(extra))}}}. Missing but required: {{{','.join(missing)}}}.")


def _output_aliases(signature: Signature, output_filter: Sequence[str]) -> list[str]:
    if not output_filter:
        return list(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise InvalidArgument(f"output tensor alias not found in signature: {quoted(alias)} Outputs expected to "
                                  f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {quoted(alias)}")
        seen.add(alias)
    return list(output_filter)


def _check_examples(serialized: Sequence[bytes]) -> None:
    if not serialized:
        raise InvalidArgument("Input is empty")


def status_response(states: list[VersionState]) -> get_model_status_pb2.GetModelStatusResponse:
    """Version states as a ``GetModelStatusResponse`` proto."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for state in states:
        entry = response.model_version_status.add()
        entry.version = state.version
        entry.state = _ModelVersionStatus.State.Value(state.state)
        entry.status.SetInParent()
        code_enum = entry.status.DESCRIPTOR.fields_by_name["error_code"].enum_type
        entry.status.error_code = code_enum.values_by_name[state.error_code].number
        entry.status.error_message = state.error_message
    return response
