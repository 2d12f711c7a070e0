"""TF Serving's REST API as a JSON codec over the typed :class:`~serving.service.PredictionService`.

Each operation takes the parsed URL (:class:`~serving.urls.ModelPath`) and the
decoded JSON body, and returns the JSON-ready answer TF Serving gives:
``{"predictions": ...}`` or ``{"outputs": ...}`` for predict, ``{"results": ...}``
for classify and regress, the status and metadata protos as JSON. Everything
between decoding and encoding is the service's, shared with gRPC.
"""

from __future__ import annotations

from typing import Any

from tensorflow_serving.apis import model_pb2

from serving import codec, examples
from serving.compat import message_to_dict
from serving.service import PredictionService, Target
from serving.urls import ModelPath


def _to_dict(message) -> dict:
    # TF Serving prints defaults too ("error_message": "", "signature_name": "") and keeps proto field names.
    return message_to_dict(message)


def target_of(path: ModelPath) -> Target:
    """The service target a model URL names."""
    return Target(path.name, path.version, path.label)


class RestApi:
    """The REST verbs (status, metadata, predict, classify, regress) in JSON terms."""

    def __init__(self, service: PredictionService):
        self.service = service

    def status(self, path: ModelPath) -> dict:
        """``GetModelStatusResponse`` as JSON."""
        return _to_dict(self.service.status(target_of(path)))

    def metadata(self, path: ModelPath) -> dict:
        """``GetModelMetadataResponse`` as JSON, with the SignatureDefMap unpacked under 'signature_def'."""
        servable, signature_map = self.service.metadata(target_of(path))
        spec = model_pb2.ModelSpec(name=servable.name, signature_name="")
        spec.version.value = servable.version
        return {"model_spec": _to_dict(spec), "metadata": {"signature_def": _to_dict(signature_map)}}

    def predict(self, path: ModelPath, body: Any) -> dict:
        """Row (``instances`` -> ``predictions``) or columnar (``inputs`` -> ``outputs``) predict."""
        request = codec.parse_predict_request(body)
        if request.body_format == codec.ROW_FORMAT:
            answer = self.service.predict(target_of(path), request.signature_name,
                                          lambda inputs: codec.decode_instances(request.payload, inputs))
            return {"predictions": codec.encode_predictions(answer.outputs)}
        answer = self.service.predict(target_of(path), request.signature_name,
                                      lambda inputs: codec.decode_columnar(request.payload, inputs))
        return {"outputs": codec.encode_outputs(answer.outputs)}

    def classify(self, path: ModelPath, body: Any) -> dict:
        """``{"results": [[[label, score], ...] per example]}``."""
        signature_name, serialized = examples.parse_examples_request(body, "classify")
        answer = self.service.classify(target_of(path), signature_name, serialized)
        return {"results": answer.classes}

    def regress(self, path: ModelPath, body: Any) -> dict:
        """``{"results": [value per example]}``."""
        signature_name, serialized = examples.parse_examples_request(body, "regress")
        return {"results": self.service.regress(target_of(path), signature_name, serialized).values}
