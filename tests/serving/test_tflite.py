"""TF Lite versions (``model.tflite``) served with ``--prefer_tflite_model`` / ``--use_tflite_model``.

The models are converted here, once per module:

* ``keras``: a tf_keras ``Dense`` on a float input ``[None, 4]`` (``from_keras_model``, builtin ops only).
* ``tfmtl``: a small MMoE exported with ``tfmtl.export`` and converted from its SavedModel's
  ``serving_default``. Its vocabulary lookups are TensorFlow hash tables (``HashTableV2``,
  ``LookupTableFindV2``), which have no TF Lite builtin: with ``TFLITE_BUILTINS`` alone the
  converter fails ("ops are not supported by the native TFLite runtime"), so it converts with
  ``SELECT_TF_OPS`` too. The interpreter of the TensorFlow 2.16 wheel runs those four nodes with
  the Flex delegate; TF Serving's interpreter (builtin ops plus ParseExample) would refuse it, and
  so does TensorFlow 2.21's (no Flex delegate): there its predict test skips, saying why.
* ``unsigned``: the Keras model with its SignatureDefs removed, as old converters wrote models:
  one ``serving_default`` over the tensors, keyed by tensor name, as TF Serving generates it.
* ``metadata``: the unsigned model with a SignatureDef in its ``signature_defs_metadata``
  buffer, the one place TF Serving reads SignatureDefs from.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from serving.compat import tflite_runs_select_tf_ops
from serving.errors import InvalidArgument, NotFound
from serving.grpc_server import start_grpc_server
from serving.manager import AVAILABLE, ModelManager
from serving.servable import TFLITE_FILE, Servable, SignatureDef
from serving.tflite import TfLiteServable, TfLiteSignature

from .conftest import server_config, server_process

ATOL = 1e-5


# ------------------------------------------------------------------ models


def _keras_model():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x = keras.Input(shape=(4,), name="x")
    score = keras.layers.Dense(3, name="score")(keras.layers.Dense(8, activation="relu")(x))
    return keras.Model({"x": x}, {"score": score})


def _without_signatures(content: bytes) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _with_metadata_signature(content: bytes, signature_def: SignatureDef) -> bytes:
    """``content`` with ``{"serving_default": signature_def}`` in a ``signature_defs_metadata`` buffer."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    serialized = signature_def.SerializeToString()
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Key("serving_default")
        builder.String(serialized.decode("ascii"))  # short names and shapes: every byte is ASCII
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = list(builder.Finish())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "signature_defs_metadata", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    """{name: version directory holding model.tflite}, plus the Keras and tfmtl models and probe rows."""
    from tfmtl.datasets import synthetic
    from tfmtl.export import export_saved_model
    from tfmtl.models import MMoE

    root = tmp_path_factory.mktemp("tflite")
    models = {}
    keras_model = _keras_model()
    keras_content = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    unsigned = _without_signatures(keras_content)
    inputs = {d["name"]: d for d in tf.lite.Interpreter(model_content=unsigned).get_input_details()}
    outputs = {d["name"]: d for d in tf.lite.Interpreter(model_content=unsigned).get_output_details()}
    stored = SignatureDef(method_name="tensorflow/serving/predict")
    stored.inputs["features"].name = next(iter(inputs))
    stored.outputs["scores"].name = next(iter(outputs))
    contents = {"keras": keras_content, "unsigned": unsigned, "metadata": _with_metadata_signature(unsigned, stored)}

    df, spec = synthetic.multitask_frame(300, seed=0)
    mmoe = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
    mmoe.compile(run_eagerly=True)
    mmoe.fit(df, epochs=1, batch_size=256, verbose=0)
    saved = export_saved_model(mmoe, str(root / "exports"), "mmoe", warmup=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    contents["tfmtl"] = converter.convert()

    for name, content in contents.items():
        path = root / name / "1"
        path.mkdir(parents=True)
        (path / TFLITE_FILE).write_bytes(content)
        models[name] = str(path)
    return {"paths": models, "root": root, "keras": keras_model, "mmoe": mmoe, "saved": saved,
            "rows": df[spec.feature_names].head(5).reset_index(drop=True), "spec": spec}


def _interpreter_outputs(path: str, feeds: dict, signature: str = "serving_default") -> dict:
    """What tf.lite alone answers: the reference for the server's outputs."""
    interpreter = tf.lite.Interpreter(model_path=os.path.join(path, TFLITE_FILE))
    return interpreter.get_signature_runner(signature)(**feeds)


@pytest.fixture(scope="module")
def served(lite):
    """One app (TestClient) and a gRPC stub serving keras, tfmtl, unsigned and metadata with --prefer_tflite_model."""
    from starlette.testclient import TestClient

    from serving.app import create_app

    config = server_config({name: os.path.dirname(path) for name, path in lite["paths"].items()})
    manager = ModelManager(config, poll_wait_seconds=0, tflite="prefer")
    app = create_app(manager, max_concurrent_requests=8)
    with TestClient(app) as client:
        server, port, _ = start_grpc_server(manager, app.state.service, "127.0.0.1", 0, max_workers=2)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield client, prediction_service_pb2_grpc.PredictionServiceStub(channel)
        finally:
            channel.close()
            server.stop(0)


def _grpc_predict(stub, name: str, inputs: dict) -> dict:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=30)
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def _grpc_metadata(stub, name: str) -> get_model_metadata_pb2.SignatureDefMap:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signature_map)
    return signature_map


# ------------------------------------------------------------------ predict


@pytest.mark.parametrize("batch", [1, 5])
def test_keras_model_rest_rows_columns_and_grpc_equal_the_interpreter_and_keras(served, lite, batch):
    client, stub = served
    x = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32)
    expected = _interpreter_outputs(lite["paths"]["keras"], {"x": x})["score"]
    np.testing.assert_allclose(expected, lite["keras"].predict({"x": x}, verbose=0)["score"], atol=ATOL)

    rows = client.post("/v1/models/keras:predict", json={"instances": x.tolist()})
    assert rows.status_code == 200, rows.text
    np.testing.assert_allclose(rows.json()["predictions"], expected, atol=1e-6)
    columns = client.post("/v1/models/keras:predict", json={"inputs": {"x": x.tolist()}})
    assert columns.status_code == 200, columns.text
    np.testing.assert_allclose(columns.json()["outputs"], expected, atol=1e-6)
    got = _grpc_predict(stub, "keras", {"x": x})
    assert list(got) == ["score"] and got["score"].dtype == np.float32
    np.testing.assert_array_equal(got["score"], expected)


@pytest.mark.parametrize("batch", [1, 5])
def test_tfmtl_model_answers_as_the_interpreter_and_the_keras_model(served, lite, batch):
    if not tflite_runs_select_tf_ops():
        pytest.skip("this TensorFlow's tf.lite.Interpreter has no Flex delegate (TF 2.21's wheel): the MMoE's "
                    "IntegerLookup table (int64 -> int64) needs SELECT_TF_OPS (docs/serving.md: TF Lite)")
    client, stub = served
    rows = lite["rows"].head(batch)
    features = lite["spec"].feature_arrays(rows)
    feeds = {"color": features["color"], "size": features["size"].astype(np.int64),
             "x1": features["x1"].astype(np.float32), "x2": features["x2"].astype(np.float32)}
    expected = _interpreter_outputs(lite["paths"]["tfmtl"], feeds)
    keras_expected = lite["mmoe"].predict(rows, verbose=0)
    for task in ("task_a", "task_b"):
        np.testing.assert_allclose(expected[task], keras_expected[task][:, 0], atol=ATOL)

    instances = [{"color": str(c), "size": int(s), "x1": float(a), "x2": float(b)}
                 for c, s, a, b in zip(rows["color"], rows["size"], rows["x1"], rows["x2"])]
    response = client.post("/v1/models/tfmtl:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    for task in ("task_a", "task_b"):
        np.testing.assert_allclose([p[task] for p in predictions], expected[task], atol=1e-6)
    columns = client.post("/v1/models/tfmtl:predict", json={"inputs": {k: [i[k] for i in instances]
                                                                       for k in feeds}})
    assert columns.status_code == 200, columns.text
    got = _grpc_predict(stub, "tfmtl", {k: np.array(v, dtype=object) if k == "color" else v
                                         for k, v in feeds.items()})
    for task in ("task_a", "task_b"):
        np.testing.assert_allclose(columns.json()["outputs"][task], expected[task], atol=1e-6)
        np.testing.assert_array_equal(got[task], expected[task])


def test_a_model_without_signatures_gets_serving_default_keyed_by_tensor_name(served, lite):
    """TF Serving's fallback: inputs and outputs keyed by TF Lite tensor name without ':0'."""
    client, stub = served
    x = np.arange(20, dtype=np.float32).reshape(5, 4) / 10
    expected = lite["keras"].predict({"x": x}, verbose=0)["score"]
    metadata = client.get("/v1/models/unsigned/metadata").json()["metadata"]["signature_def"]["signature_def"]
    signature = metadata["serving_default"]
    (input_key,), (output_key,) = signature["inputs"], signature["outputs"]
    assert (input_key, output_key) == ("serving_default_x", "StatefulPartitionedCall")
    response = client.post("/v1/models/unsigned:predict", json={"inputs": {input_key: x.tolist()}})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"], expected, atol=ATOL)
    np.testing.assert_allclose(_grpc_predict(stub, "unsigned", {input_key: x})[output_key], expected, atol=ATOL)


def test_signature_defs_in_the_metadata_buffer_are_served_as_tf_serving_reads_them(served, lite):
    client, _ = served
    x = np.ones((2, 4), np.float32)
    signature = client.get("/v1/models/metadata/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert sorted(signature) == ["serving_default"]
    assert (list(signature["serving_default"]["inputs"]), list(signature["serving_default"]["outputs"])) == (
        ["features"], ["scores"])
    response = client.post("/v1/models/metadata:predict", json={"inputs": {"features": x.tolist()}})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"], lite["keras"].predict({"x": x}, verbose=0)["score"],
                               atol=ATOL)


# ------------------------------------------------------------------ status, metadata, errors


def test_status_and_metadata_over_rest_and_grpc(served):
    client, stub = served
    status = client.get("/v1/models/keras").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", AVAILABLE)]
    for name, inputs, outputs in [
        ("keras", {"x": ("DT_FLOAT", [-1, 4])}, {"score": ("DT_FLOAT", [-1, 3])}),
        ("tfmtl", {"color": ("DT_STRING", [-1]), "size": ("DT_INT64", [-1]), "x1": ("DT_FLOAT", [-1]),
                   "x2": ("DT_FLOAT", [-1])}, {"task_a": ("DT_FLOAT", [-1]), "task_b": ("DT_FLOAT", [-1])}),
    ]:
        body = client.get(f"/v1/models/{name}/metadata").json()
        assert body["model_spec"]["version"] == "1"
        signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert signature["method_name"] == "tensorflow/serving/predict"
        for got, want in ((signature["inputs"], inputs), (signature["outputs"], outputs)):
            assert {k: (v["dtype"], [int(d["size"]) for d in v["tensor_shape"]["dim"]]) for k, v in got.items()} == want
        grpc_signature = _grpc_metadata(stub, name).signature_def["serving_default"]
        assert grpc_signature.method_name == "tensorflow/serving/predict"
        for got, want in ((grpc_signature.inputs, inputs), (grpc_signature.outputs, outputs)):
            assert {k: (types_pb2.DataType.Name(v.dtype), [d.size for d in v.tensor_shape.dim])
                    for k, v in got.items()} == want


@pytest.mark.parametrize("body,words", [
    ({"instances": [[1.0, 2.0, 3.0]]}, ["'x'", "[1, 3]", "[-1, 4]"]),  # wrong width
    ({"inputs": {"x": [[[1.0, 2.0, 3.0, 4.0]]]}}, ["'x'", "[1, 1, 4]"]),  # wrong rank
    ({"inputs": {"y": [[1.0, 2.0, 3.0, 4.0]]}}, ["x"]),  # missing input
    ({"inputs": {"x": [["a", "b", "c", "d"]]}}, ["x"]),  # wrong dtype
])
def test_bad_rest_inputs_are_400_naming_the_input(served, body, words):
    client, _ = served
    response = client.post("/v1/models/keras:predict", json=body)
    assert response.status_code == 400, response.text
    assert all(word in response.json()["error"] for word in words), response.text


def test_bad_grpc_inputs_are_invalid_argument_naming_the_input(served):
    _, stub = served
    for inputs, words in [({"x": np.array([[b"a", b"b", b"c", b"d"]], dtype=object)}, ["'x'", "but string"]),
                          ({"x": np.ones((2, 5), np.float32)}, ["'x'", "[2, 5]"]),
                          ({"x": np.ones((2, 4), np.float64)}, ["'x'", "but double is provided"]),  # no casts
                          ({"x": np.ones((2, 4), np.float32)}, None)]:
        if words is None:
            assert _grpc_predict(stub, "keras", inputs)["score"].shape == (2, 3)
            continue
        with pytest.raises(grpc.RpcError) as info:
            _grpc_predict(stub, "keras", inputs)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert all(word in info.value.details() for word in words), info.value.details()


def test_signature_checks_and_a_concurrent_pool(lite):
    servable = TfLiteServable.load("keras", 1, lite["paths"]["keras"], pool_size=2)
    signature = servable.signature("")
    assert isinstance(signature, TfLiteSignature) and signature.batch_major
    with pytest.raises(InvalidArgument, match=r"input 'x' of signature 'serving_default' expects DT_FLOAT, got DT_ST"):
        signature.run({"x": np.array([["a", "b", "c", "d"]])})
    np.testing.assert_allclose(signature.run({"x": np.ones((1, 4), np.int64)})["score"],
                               signature.run({"x": np.ones((1, 4), np.float32)})["score"])  # numbers convert
    with pytest.raises(InvalidArgument, match="missing input"):
        signature.run({})
    assert signature.run({"x": np.zeros((0, 4), np.float32)})["score"].shape == (0, 3)
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(n, 4)).astype(np.float32) for n in (1, 3, 5, 2, 7, 4) * 4]
    expected = [lite["keras"]({"x": b})["score"].numpy() for b in batches]
    results: list = [None] * len(batches)

    def work(i: int) -> None:
        results[i] = signature.run({"x": batches[i]})["score"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=ATOL)
    assert servable._loaded._created <= 2  # never more interpreters than the pool's size
    servable.unload()
    assert servable.unloaded and signature.run({"x": batches[0]})["score"].shape == (1, 3)  # in-flight keep working


def test_batching_and_warmup_work_on_a_tf_lite_version(lite, tmp_path):
    from starlette.testclient import TestClient
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.app import create_app
    from serving.batching import BatchingOptions

    from .conftest import write_warmup

    base = tmp_path / "keras"
    shutil.copytree(lite["paths"]["keras"], base / "1")
    warm = predict_pb2.PredictRequest()
    warm.model_spec.name = "keras"
    warm.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 4), np.float32)))
    write_warmup(str(base / "1"), [prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=warm))])
    manager = ModelManager(server_config({"keras": str(base)}), poll_wait_seconds=0, tflite="prefer")
    batching = BatchingOptions(max_batch_size=16, batch_timeout_micros=20_000, num_batch_threads=1)
    app = create_app(manager, batching=batching, max_concurrent_requests=8)
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    expected = lite["keras"]({"x": x})["score"].numpy()
    with TestClient(app) as client:
        assert manager.version_states("keras")[0].warmup_records == 1
        answers: list = [None] * len(x)

        def ask(i: int) -> None:
            answers[i] = client.post("/v1/models/keras:predict", json={"instances": x[i:i + 1].tolist()})

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(x))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    for i, response in enumerate(answers):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], expected[i:i + 1], atol=ATOL)


# ------------------------------------------------------------------ which file a version is loaded from


def _manager(base: str, tflite: str) -> ModelManager:
    manager = ModelManager(server_config({"m": base}), poll_wait_seconds=0, enable_warmup=False, tflite=tflite)
    manager.start()
    return manager


def test_model_tflite_alone_is_ignored_without_the_flag_and_the_log_says_why(lite, tmp_path, caplog):
    base = tmp_path / "m"
    shutil.copytree(lite["paths"]["keras"], base / "1")
    with caplog.at_level(logging.INFO, logger="serving.manager"):
        manager = _manager(str(base), "off")
    try:
        with pytest.raises(NotFound):  # no version at all: the directory is not a candidate
            manager.version_states("m")
        assert any("has model.tflite but no saved_model.pb" in r.getMessage()
                   and "--prefer_tflite_model" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        manager.stop()


def test_prefer_serves_model_tflite_over_the_saved_model_and_falls_back_without_one(lite, tmp_path):
    """saved_model_bundle_factory.cc: prefer_tflite_model && model.tflite exists -> TF Lite, else the SavedModel."""
    base = tmp_path / "m"
    shutil.copytree(lite["saved"], base / "1")  # the tfmtl SavedModel, plus its TF Lite form
    shutil.copy(os.path.join(lite["paths"]["tfmtl"], TFLITE_FILE), base / "1" / TFLITE_FILE)
    shutil.copytree(lite["saved"], base / "2")  # the SavedModel only
    policy = "model_version_policy { all {} }"
    kinds = {}
    for mode in ("off", "prefer", "only"):
        manager = ModelManager(server_config({"m": str(base)}, {"m": policy}), poll_wait_seconds=0,
                               enable_warmup=False, tflite=mode)
        manager.start()
        try:
            kinds[mode] = {s.version: type(manager.resolve("m", s.version)).__name__
                           for s in manager.version_states("m") if s.state == AVAILABLE}
        finally:
            manager.stop()
    assert kinds == {"off": {1: "Servable", 2: "Servable"}, "prefer": {1: "TfLiteServable", 2: "Servable"},
                     "only": {1: "TfLiteServable"}}
    assert issubclass(TfLiteServable, Servable)


def test_server_process_with_prefer_tflite_model_predicts_over_rest(lite, tmp_path):
    base = tmp_path / "keras"
    shutil.copytree(lite["paths"]["keras"], base / "3")
    with server_process(["--model_name=keras", f"--model_base_path={base}", "--prefer_tflite_model=true",
                         "--rest_api_port=0", "--port=-1", "--file_system_poll_wait_seconds=0"]) as server:
        x = [[0.5, -1.0, 2.0, 0.0]]
        response = httpx.post(f"{server.rest_url}/v1/models/keras:predict", json={"instances": x}, timeout=30)
        assert response.status_code == 200, response.text
        expected = lite["keras"].predict({"x": np.array(x, np.float32)}, verbose=0)["score"]
        np.testing.assert_allclose(response.json()["predictions"], expected, atol=ATOL)
    assert "TF Lite model" in server.log, server.log
