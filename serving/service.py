"""The prediction service: status, metadata, predict, classify and regress.

Transport-free: each method takes a parsed :class:`~serving.urls.ModelPath` and
a decoded JSON body and returns the JSON-ready response, raising
:class:`~serving.errors.ServingError` on failure. The REST app is a thin
layer over it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving import codec, examples
from serving.batching import Batcher, BatchingOptions
from serving.manager import ModelManager, VersionState
from serving.metrics import ServingMetrics
from serving.servable import Servable, Signature
from serving.urls import ModelPath

logger = logging.getLogger(__name__)

_ModelVersionStatus = get_model_status_pb2.ModelVersionStatus


def _to_dict(message) -> dict:
    # TF Serving prints defaults too ("error_message": "", "signature_name": "") and keeps proto field names.
    return json_format.MessageToDict(message, including_default_value_fields=True, preserving_proto_field_name=True)


class PredictionService:
    """Runs the REST API's operations against the versions a ModelManager serves."""

    def __init__(self, manager: ModelManager, *, batching: BatchingOptions | None = None,
                 metrics: ServingMetrics | None = None):
        self._manager = manager
        self._batching = batching
        self._metrics = metrics
        self._batchers: dict[tuple[str, int, str], Batcher] = {}
        self._lock = threading.Lock()
        manager.add_listener(self._on_model_event)

    # ------------------------------------------------------------------ status / metadata

    def status(self, path: ModelPath) -> dict:
        """``GetModelStatusResponse`` as JSON."""
        states = self._manager.version_states(path.name, path.version, path.label)
        return _to_dict(status_response(states))

    def metadata(self, path: ModelPath) -> dict:
        """``GetModelMetadataResponse`` as JSON, with the SignatureDefMap unpacked under 'signature_def'."""
        servable = self._manager.resolve(path.name, path.version, path.label)
        spec = model_pb2.ModelSpec(name=servable.name, signature_name="")
        spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        return {"model_spec": _to_dict(spec), "metadata": {"signature_def": _to_dict(signature_map)}}

    # ------------------------------------------------------------------ inference

    def predict(self, path: ModelPath, body: Any) -> dict:
        request = codec.parse_predict_request(body)
        servable = self._manager.resolve(path.name, path.version, path.label)
        signature = servable.signature(request.signature_name)
        if request.body_format == codec.ROW_FORMAT:
            inputs = codec.decode_instances(request.payload, signature.inputs)
            return {"predictions": codec.encode_predictions(self.run(servable, signature, inputs))}
        inputs = codec.decode_columnar(request.payload, signature.inputs)
        return {"outputs": codec.encode_outputs(self.run(servable, signature, inputs))}

    def classify(self, path: ModelPath, body: Any) -> dict:
        signature_name, serialized = examples.parse_examples_request(body, "classify")
        servable = self._manager.resolve(path.name, path.version, path.label)
        signature = servable.signature(signature_name)
        examples.check_classify_signature(signature)
        outputs = self.run(servable, signature, examples.examples_tensor(serialized))
        return {"results": examples.classification_results(outputs, len(serialized))}

    def regress(self, path: ModelPath, body: Any) -> dict:
        signature_name, serialized = examples.parse_examples_request(body, "regress")
        servable = self._manager.resolve(path.name, path.version, path.label)
        signature = servable.signature(signature_name)
        examples.check_regress_signature(signature)
        outputs = self.run(servable, signature, examples.examples_tensor(serialized))
        return {"results": examples.regression_results(outputs, len(serialized))}

    def run(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature, through the batcher when batching is on (the gRPC API calls this too)."""
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
