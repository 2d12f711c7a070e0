"""gRPC Predict answers in the typed value fields (``float_val``, ``int64_val``, ``half_val`` ...), as TF Serving's
``Tensor::AsProtoField`` writes them, read the way TF Serving's clients read them (mnist_client.py:
``numpy.array(result.outputs['scores'].float_val)``), through a real gRPC server in this process."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.app import create_app
from serving.grpc_server import start_grpc_server
from serving.manager import ModelManager
from serving.service import PredictionService
from tests.serving.conftest import MAX_REQUEST_BYTES, install, server_config

BATCH = 5  # rows; the [B, 64] and [B, 70] outputs then take the packed-bytes paths (320 and 350 values)


class ManyDtypes(tf.Module):
    """One float input; an output of every dtype TF Serving returns in a typed field."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        ints = tf.cast(tf.round(x), tf.int64)
        outputs = {
            "f32": x * 2.0, "f64": tf.cast(x, tf.float64) / 3.0, "i64": ints * (2**40), "i32": tf.cast(ints, tf.int32),
            "i16": tf.cast(ints, tf.int16), "i8": tf.cast(ints, tf.int8), "u8": tf.cast(tf.abs(ints), tf.uint8),
            "u16": tf.cast(tf.abs(ints) + 60000, tf.uint16), "u32": tf.cast(tf.abs(ints), tf.uint32) + 4_000_000_000,
            "u64": tf.cast(tf.abs(ints), tf.uint64) + 2**63, "bool": x > 0, "str": tf.strings.as_string(x, precision=2),
            "half": tf.cast(x, tf.float16), "bf16": tf.cast(x, tf.bfloat16), "c64": tf.complex(x, -x),
            "c128": tf.complex(tf.cast(x, tf.float64), 1.0 + tf.cast(x, tf.float64)),
            "emb": tf.tile(x[:, None], [1, 64]) * tf.range(64, dtype=tf.float32),
            "ids": tf.tile(ints[:, None], [1, 70]) * tf.range(70, dtype=tf.int64) - 3,
        }
        return outputs


# output -> the field a TF Serving client reads it from (tensorflow/core/framework/tensor.cc, ProtoHelper)
FIELDS = {"f32": "float_val", "f64": "double_val", "i64": "int64_val", "i32": "int_val", "i16": "int_val",
          "i8": "int_val", "u8": "int_val", "u16": "int_val", "u32": "uint32_val", "u64": "uint64_val",
          "bool": "bool_val", "str": "string_val", "half": "half_val", "bf16": "half_val", "c64": "scomplex_val",
          "c128": "dcomplex_val", "emb": "float_val", "ids": "int64_val"}


@pytest.fixture(scope="module")
def served(zoo, tmp_path_factory):
    root = tmp_path_factory.mktemp("typed")
    module = ManyDtypes()
    tf.saved_model.save(module, str(root / "export"), signatures={"serving_default": module.serve})
    bases = {"single": str(root / "single"), "dtypes": str(root / "dtypes")}
    install(zoo["single"], bases["single"], 1)
    install(str(root / "export"), bases["dtypes"], 1)
    manager = ModelManager(server_config(bases), poll_wait_seconds=0)
    manager.start()
    manager.wait_until_available()  # raises if a model failed to load
    service = PredictionService(manager)
    typed, typed_port, _ = start_grpc_server(manager, service, "127.0.0.1", 0, max_workers=2, enable_profiler=False)
    content, content_port, _ = start_grpc_server(manager, service, "127.0.0.1", 0, max_workers=2,
                                              tensor_content=True, enable_profiler=False)
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in (typed_port, content_port)]
    try:
        yield ([prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels],
               tf.saved_model.load(str(root / "export")).signatures["serving_default"], bases)
    finally:
        for channel in channels:
            channel.close()
        typed.stop(0)
        content.stop(0)
        manager.stop()


def _request(model: str, name: str, array: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def test_a_float_answer_is_in_float_val_and_equals_the_rest_answer(served):
    from starlette.testclient import TestClient

    (typed, _), _, bases = served
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 4.0]], np.float32)
    result = typed.Predict(_request("single", "x", x), timeout=60)
    output = result.outputs["y"]
    assert output.dtype == types_pb2.DT_FLOAT and output.tensor_content == b""
    assert [d.size for d in output.tensor_shape.dim] == [2]
    # The app's lifespan starts and stops its own manager: a second one over the same models.
    rest_manager = ModelManager(server_config({"single": bases["single"]}), poll_wait_seconds=0)
    app = create_app(rest_manager, max_concurrent_requests=2, max_request_bytes=MAX_REQUEST_BYTES)
    with TestClient(app) as client:
        rest = client.post("/v1/models/single:predict", json={"instances": x.tolist()})
    assert rest.status_code == 200, rest.text
    # float32 on both sides: the REST JSON number is the float32 the model gave, printed and parsed back
    np.testing.assert_array_equal(np.array(output.float_val, np.float32), np.array(rest.json()["predictions"],
                                                                                   np.float32))


def test_every_dtype_is_in_its_typed_field_as_the_model_gave_it(served):
    (typed, content), signature, _ = served
    x = np.array([1.4, -2.6, 0.0, 3.5, -0.25][:BATCH], np.float32)
    result = typed.Predict(_request("dtypes", "x", x), timeout=60)
    packed = content.Predict(_request("dtypes", "x", x), timeout=60)  # --enable_serialization_as_tensor_content
    model = {k: v.numpy() for k, v in signature(x=tf.constant(x)).items()}
    assert sorted(result.outputs) == sorted(FIELDS)
    for name, field in FIELDS.items():
        output, want = result.outputs[name], model[name]
        assert output.dtype == tf.as_dtype(want.dtype).as_datatype_enum, name
        assert [d.size for d in output.tensor_shape.dim] == list(want.shape), name
        assert output.tensor_content == b"", name
        values = list(getattr(output, field))
        flat = want.ravel()
        if field == "half_val":  # the 16-bit patterns, in int32
            expected = flat.view(np.uint16).tolist()
        elif field in ("scomplex_val", "dcomplex_val"):  # real, imaginary, real, ...
            expected = flat.view(flat.real.dtype).tolist()
        else:
            expected = flat.tolist()
        assert values == expected, name
        np.testing.assert_array_equal(tf.make_ndarray(output), want, err_msg=name)
        # The tensor_content server's answer holds the same tensor (fill_tensor_proto's layout: numbers in
        # tensor_content where tf.make_tensor_proto puts them there).
        np.testing.assert_array_equal(tf.make_ndarray(packed.outputs[name]), want, err_msg=name)
    assert packed.outputs["emb"].tensor_content and not packed.outputs["emb"].float_val
