"""tfmtl serving: a TF Serving-compatible REST and gRPC server for SavedModels, and its client.

The server loads SavedModels with TensorFlow alone (it never imports tfmtl), so
it serves anything TF Serving serves: ``python -m serving --model_name=census
--model_base_path=base/census``. Modules, one concept each:

- :mod:`serving.config`: the ``ModelServerConfig`` text proto and version policies.
- :mod:`serving.servable`: one loaded SavedModel version (TF2, or TF1 in a Session) and its signatures.
- :mod:`serving.tflite`: a ``model.tflite`` version (``--prefer_tflite_model``) run by TF Lite interpreters.
- :mod:`serving.warmup`: replay of ``assets.extra/tf_serving_warmup_requests``.
- :mod:`serving.manager`: version discovery, polling, hot swap, labels, status.
- :mod:`serving.batching`: server-side request batching.
- :mod:`serving.codec`, :mod:`serving.examples`: JSON <-> tensors / tf.Examples.
- :mod:`serving.service`: the typed core under both transports: status, metadata, predict, classify,
  regress and multi-inference on arrays and serialized examples, in TF Serving's words.
- :mod:`serving.rest` (JSON) and :mod:`serving.grpc_server` (protos): the two codecs over it.
- :mod:`serving.tensor_proto`: TensorProto <-> numpy, outputs in TF Serving's typed fields.
- :mod:`serving.profiler_service`: TensorFlow's profiler service on the gRPC port.
- :mod:`serving.urls`, :mod:`serving.limits`, :mod:`serving.app`, :mod:`serving.net`: the REST layer.
- :mod:`serving.cli`: the ``python -m serving`` entry point.
- :mod:`serving.client`: a small HTTP client (needs only httpx, not TensorFlow).

Importing this package is cheap; TensorFlow loads only with the server modules.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
