"""The real ``python -m serving`` process, called by client code written the way TF Serving's users write it.

The clients follow TF Serving's example clients (example/mnist_client.py, example/resnet_client_grpc.py) and
its model server tests (model_servers/tensorflow_model_server_test.py and test_util/
tensorflow_model_server_test_base.py): ``grpc.insecure_channel`` + ``PredictionServiceStub``, requests
filled with ``tf.make_tensor_proto`` or with typed ``float_val`` + dims, answers read from
``response.outputs[...].float_val``. Every model is asked over gRPC and over REST (row and columnar) and the
answers must agree.

Processes (module-scoped, started as few times as possible, the cheap ones first so that they overlap
with the model building):

- ``zoo``: a ``--model_config_file`` (polled every second) with TF Serving's TF1 half_plus_two, a TF2
  ``tf.Module`` built as TF Serving's saved_model_half_plus_two.py builds its TF2 model (two versions,
  labelled), a tf_keras model exported with several signatures, a tfmtl multi-task export, and a model
  whose version 2 is garbage next to a good version 1; also a ``--grpc_socket_path``.
- ``late``: a model whose base path is empty at start (the ports must stay closed until it serves), with
  ``--enable_signature_method_name_check``, ``--enable_serialization_as_tensor_content`` and TF Serving's
  ``--grpc_channel_arguments`` test value.
- ``tflite``: testPredictOnTfLite's server, ``--prefer_tflite_model=true`` on a ``model.tflite``.
- two processes that must not start: a malformed config file, and a model whose only version is garbage.

The typed-field tests (``float_val`` & co. in Predict answers, as TF Serving's ``Tensor::AsProtoField``
writes them) fail while the server writes ``tensor_content``.
"""

import base64
import os
import random
import socket
import subprocess
import sys
import threading
import time

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.compat import message_to_dict

from .conftest import START_TIMEOUT, ServerProcess, install

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "tests", "serving", "testdata", "tf_serving")
HALF_PLUS_TWO = os.path.join(DATA, "saved_model_half_plus_two_cpu")  # TF1, version 123
HALF_PLUS_THREE = os.path.join(DATA, "saved_model_half_plus_three")  # TF1, version 123
RPC_TIMEOUT = 30  # TF Serving's tests use 5 s; this machine has 2 busy cores
CLASSIFY, REGRESS, PREDICT = "tensorflow/serving/classify", "tensorflow/serving/regress", "tensorflow/serving/predict"
# As TF Serving's clients raise gRPC's 4 MB default limits (the server itself has none, as TF Serving's).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
CHANNEL_ARGUMENTS = "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"  # testGoodGrpcChannelArgs'


# ------------------------------------------------------------------ the server process


def _free_port() -> int:
    """A free TCP port below the kernel's ephemeral range.

    A port from ``bind(("127.0.0.1", 0))`` lies in the ephemeral range, and a tight connect loop to an
    ephemeral port nobody listens on sometimes connects to itself (TCP simultaneous open: the kernel picks
    that very port as the source port); that socket would both look like an open port and hold the port
    the server is about to bind. Below the range that cannot happen.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def _config(models: dict[str, str], extra: dict[str, str] | None = None) -> str:
    extra = extra or {}
    return "model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" {extra.get(name, "")} }}\n'
        for name, path in models.items()) + "}\n"


def _write_atomically(path, text: str) -> None:
    """A config edit the poller never sees half-written."""
    staging = f"{path}.staging"
    with open(staging, "w") as f:
        f.write(text)
    os.replace(staging, path)


# ------------------------------------------------------------------ the models


class HalfPlusTwo(tf.Module):
    """TF Serving's native TF2 test model (testdata/saved_model_half_plus_two.py, HalfPlusTwoModel): y = a*x + b.

    ``tf.saved_model.save`` writes every signature with method_name tensorflow/serving/predict, the
    classify and regress ones included; TF Serving serves those to Classify/Regress unless
    ``--enable_signature_method_name_check`` is set.
    """

    def __init__(self, b: float):
        super().__init__()
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(b, name="b")

    def compute(self, x):
        return tf.add(tf.multiply(self.a, x), self.b)

    @staticmethod
    def parse(serialized):
        return tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([1], tf.float32),
            "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.compute(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=tf.saved_model.REGRESS_INPUTS)])
    def regress_xy(self, inputs):
        return {tf.saved_model.REGRESS_OUTPUTS: self.compute(self.parse(inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=tf.saved_model.CLASSIFY_INPUTS)])
    def classify_xy(self, inputs):
        return {tf.saved_model.CLASSIFY_OUTPUT_SCORES: self.compute(self.parse(inputs))}

    def save(self, path: str) -> str:
        tf.saved_model.save(self, path, signatures={
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: self.predict,
            "regress_x_to_y": self.regress_xy, "classify_x_to_y": self.classify_xy})
        return path


def _save_keras(path: str) -> str:
    """A tf_keras model with two signatures: a float input; float, int64, string, bool and half outputs."""
    from tfmtl.compat import keras

    x = keras.Input(shape=(2,), name="x", dtype="float32")
    score = keras.layers.Dense(1, name="score")(x)
    model = keras.Model(x, score)
    model.get_layer("score").set_weights([np.array([[1.0], [-2.0]], np.float32), np.array([0.25], np.float32)])

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(x):
        s = model(x)
        return {"score": s, "label": tf.cast(s[:, 0] > 0, tf.int64)}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def describe(x):
        s = model(x)[:, 0]
        return {"label_name": tf.where(s > 0, "positive", "negative"), "positive": s > 0,
                "score_half": tf.cast(s, tf.float16)}

    tf.saved_model.save(model, path, signatures={"serving_default": serve, "describe": describe})
    return path


def _census_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Census-like rows: numbers, strings, an integer code; two binary tasks."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 80, size=n)
    return pd.DataFrame({
        "age": age, "hours_per_week": rng.normal(40, 10, size=n).round(1),
        "occupation": rng.choice(["Sales", "Tech-support", "Craft-repair", "Exec-managerial"], size=n),
        "education": rng.choice(["Bachelors", "HS-grad", "Masters"], size=n),
        "industry_code": rng.choice([0, 4, 33, 45], size=n),
        "income_50k": (rng.random(n) < 0.3).astype(int), "never_married": (age < 30).astype(int)})


def _export_census(export_dir_base: str):
    """A tfmtl MMoE fitted one epoch on 200 synthetic rows and exported as a user exports it."""
    from tfmtl.compat import keras
    from tfmtl.export import export_saved_model
    from tfmtl.features import FeatureSpec
    from tfmtl.models import MMoE

    keras.utils.set_random_seed(0)
    df = _census_frame(200)
    spec = FeatureSpec.from_dataframe(df, ["income_50k", "never_married"], categorical=["industry_code"],
                                      embedding_dim=4, numeric_bins=8)
    model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4], cross=None)
    model.compile(run_eagerly=True)  # a few eager batches cost less than tracing train_step
    model.fit(df, epochs=1, batch_size=256, verbose=0)
    export_saved_model(model, export_dir_base, "census", warmup=df.head(4), warmup_records=2)
    return spec


def _example(features: dict) -> bytes:
    feature = {}
    for name, value in features.items():
        if isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, (int, np.integer)):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("clients")


@pytest.fixture(scope="module")
def failing_starts(root):
    """The two processes that must not start; started first, they run while the rest is built."""
    malformed = root / "malformed.config"
    malformed.write_text("improperly formatted file\n")  # TF Serving's testdata/bad_model_config.txt
    bad = root / "only_bad" / "1"
    bad.mkdir(parents=True)
    (bad / "saved_model.pb").write_bytes(b"this is not a SavedModel proto \x00\xff\x13")
    config = root / "bad_model.config"
    config.write_text(_config({"half_plus_two": HALF_PLUS_TWO, "bad": str(root / "only_bad")}))
    servers = {
        "malformed": ServerProcess(f"--model_config_file={malformed}", "--port=0", "--rest_api_port=0"),
        "bad_model": ServerProcess(f"--model_config_file={config}", "--port=0", "--rest_api_port=0",
                            "--file_system_poll_wait_seconds=1"),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def tf2_versions(root):
    """TF Serving's TF2 half_plus_two (b=2) and a version 2 of it with b=3."""
    return {1: HalfPlusTwo(2.0).save(str(root / "tf2_v1")), 2: HalfPlusTwo(3.0).save(str(root / "tf2_v2"))}


class StartUpWatch:
    """Starts the ``late`` process and watches its ports from the first instant.

    Its config holds TF1 half_plus_two (on disk) and ``late``, whose base path is empty; 3 s after
    half_plus_two is AVAILABLE a thread copies a version of ``late`` in. Meanwhile one thread per port
    connects in a loop; the instant a port accepts, it sends a Predict (gRPC) / POST :predict (REST).
    """

    def __init__(self, root, source: str):
        self.grpc_port, self.rest_port = _free_port(), _free_port()
        while self.rest_port == self.grpc_port:
            self.rest_port = _free_port()
        self.base = root / "late"
        self.base.mkdir()
        config = root / "late.config"
        config.write_text(_config({"half_plus_two": HALF_PLUS_TWO, "late": str(self.base)}))
        self.source = source
        self.first_model_at = self.copied_at = self.renamed_at = None
        self.refusals: dict[str, list[float]] = {"grpc": [], "rest": []}
        self.accepted_at: dict[str, float] = {}
        self.answers: dict[str, tuple] = {}
        self.errors: list[str] = []
        self.server = ServerProcess(f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                             f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                             "--enable_signature_method_name_check", "--enable_serialization_as_tensor_content",
                             f"--grpc_channel_arguments={CHANNEL_ARGUMENTS}")
        self.threads = [threading.Thread(target=self._guard(self._copy), daemon=True),
                        threading.Thread(target=self._guard(self._watch_grpc), daemon=True),
                        threading.Thread(target=self._guard(self._watch_rest), daemon=True)]
        for thread in self.threads:
            thread.start()
        self.channel = self.prediction = self.rest = None

    def _guard(self, target):
        def run():
            try:
                target()
            except Exception as e:  # reported by the test
                self.errors.append(f"{target.__name__}: {e!r}")
        return run

    def _copy(self):
        self.first_model_at, _ = self.server.wait_for(r"model 'half_plus_two': version 123 is AVAILABLE")
        time.sleep(3)
        self.copied_at = time.monotonic()
        install(self.source, str(self.base), 1)
        self.renamed_at = time.monotonic()

    def _wait_until_accepting(self, kind: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.server.process.poll() is None:
            with socket.socket() as sock:
                try:
                    sock.connect(("127.0.0.1", port))
                except OSError:
                    self.refusals[kind].append(time.monotonic())
                    time.sleep(0.002)
                    continue
                if sock.getsockname() == sock.getpeername():  # connected to itself: nobody listens
                    continue
                self.accepted_at[kind] = time.monotonic()
                return
        raise AssertionError(f"{kind} port {port} never accepted")

    def _watch_grpc(self):
        self._wait_until_accepting("grpc", self.grpc_port)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "late"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                response = stub.Predict(request, RPC_TIMEOUT)
                self.answers["grpc"] = (grpc.StatusCode.OK, tf.make_ndarray(response.outputs["y"]).tolist(),
                                        response.model_spec.version.value)
            except grpc.RpcError as e:
                self.answers["grpc"] = (e.code(), e.details(), None)

    def _watch_rest(self):
        self._wait_until_accepting("rest", self.rest_port)
        response = httpx.post(f"http://127.0.0.1:{self.rest_port}/v1/models/late:predict",
                              json={"instances": [2.0]}, timeout=RPC_TIMEOUT)
        self.answers["rest"] = (response.status_code, response.json())

    def ready(self) -> "StartUpWatch":
        if self.rest is None:
            for thread in self.threads:
                thread.join(START_TIMEOUT)
            self.server.wait_for("Application startup complete")
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}", options=CHANNEL_OPTIONS)
            self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
            self.rest = httpx.Client(base_url=f"http://127.0.0.1:{self.rest_port}", timeout=RPC_TIMEOUT)
        return self

    def close(self):
        if self.channel is not None:
            self.channel.close()
            self.rest.close()
        self.server.stop()


@pytest.fixture(scope="module")
def late_server(root, tf2_versions):
    watch = StartUpWatch(root, tf2_versions[1])
    yield watch
    watch.close()


@pytest.fixture(scope="module")
def tflite_server(root, tf2_versions):
    """testPredictOnTfLite's server: --prefer_tflite_model=true on a version holding model.tflite only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(tf2_versions[1], signature_keys=["serving_default"])
    version = root / "tflite" / "123"
    version.mkdir(parents=True)
    (version / "model.tflite").write_bytes(converter.convert())
    server = ServerProcess("--model_name=default", f"--model_base_path={root / 'tflite'}", "--prefer_tflite_model=true",
                    "--port=0", "--rest_api_port=0", "--file_system_poll_wait_seconds=1")
    yield server
    server.stop()


class Zoo:
    def __init__(self, server: ServerProcess, config_path, config_text: str, socket_path: str, census_spec):
        self.server, self.config_path, self.config_text = server, config_path, config_text
        self.socket_path, self.census_spec = socket_path, census_spec
        server.wait_for("Application startup complete")
        _, rest = server.wait_for(r"REST API at (http://\S+?)/v1")
        _, port = server.wait_for(r"gRPC API at 127\.0\.0\.1:(\d+)")
        server.wait_for(r"gRPC API at unix:")
        self.grpc_target = f"127.0.0.1:{port.group(1)}"
        self.channel = grpc.insecure_channel(self.grpc_target, options=CHANNEL_OPTIONS)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.rest = httpx.Client(base_url=rest.group(1), timeout=RPC_TIMEOUT)

    def close(self):
        self.channel.close()
        self.rest.close()
        self.server.stop()


@pytest.fixture(scope="module")
def zoo(root, failing_starts, late_server, tflite_server, tf2_versions):
    """The multi-model process (``failing_starts``, ``late_server`` and ``tflite_server`` are asked for
    first so that they start, in the background, before the models here are built)."""
    models = root / "models"
    install(tf2_versions[1], str(models / "tf2"), 1)
    install(tf2_versions[2], str(models / "tf2"), 2)
    _save_keras(str(models / "keras" / "1"))
    census_spec = _export_census(str(models))
    install(tf2_versions[1], str(models / "fallback"), 1)
    broken = models / "fallback" / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"garbage, not a SavedModel")
    config_text = _config(
        {"half_plus_two": HALF_PLUS_TWO, "tf2": str(models / "tf2"), "keras": str(models / "keras"),
         "census": str(models / "census"), "fallback": str(models / "fallback")},
        {"tf2": 'model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
                'version_labels { key: "canary" value: 2 }'})
    config_path = root / "zoo.config"
    config_path.write_text(config_text)
    socket_path = str(root / "grpc.sock")
    server = ServerProcess("--port=0", "--rest_api_port=0", f"--model_config_file={config_path}",
                    "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
                    f"--grpc_socket_path={socket_path}", "--rest_api_timeout_in_ms=30000")
    try:
        zoo = Zoo(server, config_path, config_text, socket_path, census_spec)
    except BaseException:
        server.stop()
        raise
    yield zoo
    zoo.close()


# ------------------------------------------------------------------ requests and answers


def _typed_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto in the typed fields, as TF Serving's test clients fill it (float_val + dims)."""
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == np.float32:
        proto.dtype = types_pb2.DT_FLOAT
        proto.float_val.extend(array.ravel().tolist())
    elif array.dtype == np.int64:
        proto.dtype = types_pb2.DT_INT64
        proto.int64_val.extend(array.ravel().tolist())
    else:
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in array.ravel())
    return proto


def _json_value(name: str, value):
    """A string tensor's value in REST JSON: text as is, binary (serialized tf.Examples) as {"b64": ...}."""
    if isinstance(value, bytes):
        try:
            if name != "examples":
                return value.decode()
        except UnicodeDecodeError:
            pass
        return {"b64": base64.b64encode(value).decode()}
    return value.item() if isinstance(value, np.generic) else value


def _rest_inputs(inputs: dict[str, np.ndarray]):
    """The same inputs as REST row ("instances") and columnar ("inputs") bodies."""
    def column(name, array):
        return [_json_value(name, v) for v in array.tolist()] if array.dtype == object else array.tolist()

    columns = {name: column(name, array) for name, array in inputs.items()}
    n = len(next(iter(inputs.values())))
    if len(inputs) == 1:
        ((name, values),) = columns.items()
        return values, values
    return [{name: values[i] for name, values in columns.items()} for i in range(n)], columns


def _rest_outputs(rows, columns, names: list[str]) -> tuple[dict, dict]:
    """REST "predictions" (rows) and "outputs" (columnar) as {name: array}."""
    if len(names) == 1:
        return {names[0]: rows}, {names[0]: columns}
    return {name: [row[name] for row in rows] for name in names}, columns


def _as_array(values, like: np.ndarray) -> np.ndarray:
    if like.dtype == object:
        return np.array([v.encode() if isinstance(v, str) else v for v in np.ravel(np.array(values, object))],
                        object).reshape(np.shape(values))
    return np.array(values, dtype=like.dtype)


def _assert_same(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=1e-7,
                                   err_msg=what)
    else:
        assert got.tolist() == expected.tolist(), what


def _x_is_two(model: str, signature: str = "serving_default") -> predict_pb2.PredictRequest:
    """VerifyPredictRequest's request (tensorflow_model_server_test.py): ``x`` = [2.0] in ``float_val``."""
    request = predict_pb2.PredictRequest()
    _spec(request.model_spec, model, signature)
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    return request


def _predict_request(model: str, signature: str, inputs: dict, *, typed: bool = False, label: str = "",
                     version: int | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    _spec(request.model_spec, model, signature, label)
    if version is not None:
        request.model_spec.version.value = version
    for name, array in inputs.items():
        if typed:
            request.inputs[name].CopyFrom(_typed_tensor(array))
        else:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def _census_rows() -> pd.DataFrame:
    rows = _census_frame(5, seed=7).drop(columns=["income_50k", "never_married"])
    rows["age"] = rows["age"].astype(float)  # a numeric feature: a float_list in the tf.Example
    rows.loc[4, "occupation"] = "never-seen"
    return rows


def _predict_cases(zoo) -> dict[str, tuple[str, str, dict]]:
    """id -> (model, signature, inputs) for every test model; the census rows as a user's DataFrame."""
    x2 = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]], np.float32)
    rows = _census_rows()
    examples = np.array([_example(row) for row in rows.to_dict("records")], object)
    return {
        "tf1_half_plus_two": ("half_plus_two", "serving_default", {"x": np.array([1.0, 2.0, 5.0], np.float32)}),
        "tf2_module": ("tf2", "serving_default", {"x": np.array([1.0, 2.0, 5.0], np.float32)}),
        "keras_default": ("keras", "serving_default", {"x": x2}),
        "keras_describe": ("keras", "describe", {"x": x2}),
        "tfmtl_raw_features": ("census", "serving_default", zoo.census_spec.feature_arrays(rows)),
        "tfmtl_tf_example": ("census", "serving_tf_example", {"examples": examples}),
    }


PREDICT_CASE_IDS = ["tf1_half_plus_two", "tf2_module", "keras_default", "keras_describe", "tfmtl_raw_features",
                    "tfmtl_tf_example"]
# Expected answers where the model's arithmetic is known (the others are checked against each other).
EXPECTED = {
    "tf1_half_plus_two": {"y": [2.5, 3.0, 4.5]},
    "tf2_module": {"y": [3.5, 4.0, 5.5]},  # version 2: x/2 + 3
    "keras_default": {"score": [[-2.75], [-3.75], [0.25]], "label": [0, 0, 1]},
    "keras_describe": {"label_name": [b"negative", b"negative", b"positive"], "positive": [False, False, True],
                       "score_half": [-2.75, -3.75, 0.25]},
}


def _rest(zoo, model: str, signature: str, inputs: dict, names: list[str]):
    instances, columns = _rest_inputs(inputs)
    rows = zoo.rest.post(f"/v1/models/{model}:predict", json={"signature_name": signature, "instances": instances})
    assert rows.status_code == 200, rows.text
    cols = zoo.rest.post(f"/v1/models/{model}:predict", json={"signature_name": signature, "inputs": columns})
    assert cols.status_code == 200, cols.text
    return _rest_outputs(rows.json()["predictions"], cols.json()["outputs"], names)


# ------------------------------------------------------------------ Predict: gRPC as TF Serving's clients, and REST


@pytest.mark.parametrize("case", PREDICT_CASE_IDS)
def test_grpc_predict_equals_rest_predict_for_every_model(zoo, case):
    model, signature, inputs = _predict_cases(zoo)[case]
    response = zoo.prediction.Predict(_predict_request(model, signature, inputs), RPC_TIMEOUT)
    typed = zoo.prediction.Predict(_predict_request(model, signature, inputs, typed=True), RPC_TIMEOUT)
    names = sorted(response.outputs)
    assert names == sorted(typed.outputs) and names
    rows, columns = _rest(zoo, model, signature, inputs, names)
    assert sorted(rows) == names and sorted(columns) == names
    for name in names:
        grpc_answer = tf.make_ndarray(response.outputs[name])
        _assert_same(tf.make_ndarray(typed.outputs[name]), grpc_answer, f"{case}/{name}: typed request")
        _assert_same(_as_array(rows[name], grpc_answer), grpc_answer, f"{case}/{name}: REST rows vs gRPC")
        _assert_same(_as_array(columns[name], grpc_answer), grpc_answer, f"{case}/{name}: REST columns vs gRPC")
        if name in EXPECTED.get(case, {}):
            _assert_same(grpc_answer, _as_array(EXPECTED[case][name], grpc_answer), f"{case}/{name}: value")
    assert response.model_spec.name == model and response.model_spec.signature_name == signature


_TYPED_FIELD = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
                types_pb2.DT_INT64: "int64_val", types_pb2.DT_STRING: "string_val", types_pb2.DT_BOOL: "bool_val",
                types_pb2.DT_HALF: "half_val"}


@pytest.mark.parametrize("case", PREDICT_CASE_IDS)
def test_grpc_outputs_are_in_the_typed_fields_as_tf_serving_writes_them(zoo, case):
    """TF Serving's Predict writes each output with ``Tensor::AsProtoField`` (tensor_content only with
    --enable_serialization_as_tensor_content), so ``list(response.outputs['y'].float_val)`` is the answer,
    as mnist_client.py and resnet_client_grpc.py read it."""
    model, signature, inputs = _predict_cases(zoo)[case]
    response = zoo.prediction.Predict(_predict_request(model, signature, inputs), RPC_TIMEOUT)
    names = sorted(response.outputs)
    _, columns = _rest(zoo, model, signature, inputs, names)
    for name in names:
        output = response.outputs[name]
        field = _TYPED_FIELD[output.dtype]
        assert output.tensor_content == b"", f"{case}/{name}: tensor_content instead of {field}"
        values = list(getattr(output, field))
        expected = np.ravel(np.array(columns[name], dtype=object)).tolist()
        assert len(values) == int(np.prod([d.size for d in output.tensor_shape.dim])), f"{case}/{name}"
        if output.dtype == types_pb2.DT_HALF:  # half_val holds the float16 bit patterns
            values = np.array(values, np.uint16).view(np.float16).astype(np.float64).tolist()
        if output.dtype == types_pb2.DT_STRING:
            expected = [v.encode() if isinstance(v, str) else v for v in expected]
        if output.dtype in (types_pb2.DT_FLOAT, types_pb2.DT_HALF, types_pb2.DT_DOUBLE):
            np.testing.assert_allclose(values, np.array(expected, np.float64), rtol=1e-6, err_msg=f"{case}/{name}")
        else:
            assert values == expected, f"{case}/{name}"


def test_mnist_client_style_read_and_model_spec(zoo):
    """Version, label and signature name in the answer; the TF2 model answered by version and label."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf2"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.extend([2.0])
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.output_filter.append("y")
    cases = [({}, 2, 4.0), ({"version_label": "stable"}, 1, 3.0), ({"version_label": "canary"}, 2, 4.0),
             ({"version": 1}, 1, 3.0)]
    for spec, version, y in cases:
        request.model_spec.ClearField("version_choice")
        if "version" in spec:
            request.model_spec.version.value = spec["version"]
        if "version_label" in spec:
            request.model_spec.version_label = spec["version_label"]
        response = zoo.prediction.Predict(request, RPC_TIMEOUT)
        assert response.outputs["y"].dtype == types_pb2.DT_FLOAT
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [y], spec
        assert response.model_spec.version.value == version, spec
        # TF Serving answers with the signature it ran: serving_default when the request names none.
        assert (response.model_spec.name, response.model_spec.signature_name) == ("tf2", "serving_default"), spec


def test_mnist_client_reads_the_answer_from_float_val(zoo):
    """mnist_client.py's ``numpy.array(result.outputs['scores'].float_val)`` and VerifyPredictRequest's
    ``result.outputs['y'].float_val[0]``: TF Serving writes outputs in the typed fields."""
    request = _x_is_two("half_plus_two")
    request.output_filter.append("y")
    result = zoo.prediction.Predict(request, RPC_TIMEOUT)
    assert types_pb2.DT_FLOAT == result.outputs["y"].dtype
    assert 1 == len(result.outputs["y"].float_val)
    assert 3.0 == result.outputs["y"].float_val[0]
    assert np.array(result.outputs["y"].float_val).tolist() == [3.0]


def test_large_messages_with_client_channel_options(zoo):
    """8 MB each way: past gRPC's 4 MB default, so the client raises its limits as TF Serving's users do;
    the server takes it, as TF Serving's (server.cc: SetMaxMessageSize(INT_MAX))."""
    x = np.arange(2_000_000, dtype=np.float32)
    response = zoo.prediction.Predict(_predict_request("tf2", "", {"x": x}, label="stable"), RPC_TIMEOUT)
    y = tf.make_ndarray(response.outputs["y"])
    assert y.shape == x.shape and y[0] == 2.0 and y[-1] == np.float32(0.5 * x[-1] + 2.0)


def test_predict_over_the_unix_socket(zoo):
    """testPredictUDS: VerifyPredictRequest over ``unix:<--grpc_socket_path>``."""
    with grpc.insecure_channel(f"unix:{zoo.socket_path}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = _x_is_two("half_plus_two")
        result = stub.Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs and result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert tf.make_ndarray(result.outputs["y"]).tolist() == [3.0]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "half_plus_two", "serving_default", 123)


def test_profiler_service_on_the_grpc_port(zoo, tmp_path):
    """test_profiler_service_with_valid_trace_request: a 1 s trace while REST predicts are sent."""
    logdir = str(tmp_path / "logs")
    os.makedirs(logdir)
    done = threading.Event()

    def predict_until_done():
        while not done.is_set():
            zoo.rest.post("/v1/models/half_plus_two:predict", json={"instances": [2.0, 3.0, 4.0]})
            time.sleep(0.05)

    worker = threading.Thread(target=predict_until_done)
    worker.start()
    try:
        tf.profiler.experimental.client.trace(f"grpc://{zoo.grpc_target}", logdir, 1000, "", 10)
    finally:
        done.set()
        worker.join()
    found = [name for _, _, names in os.walk(logdir) for name in names if name.endswith(".xplane.pb")]
    assert found, list(os.walk(logdir))


def test_predict_on_a_tf_lite_model(tflite_server):
    """testPredictOnTfLite: VerifyPredictRequest on a model.tflite served with --prefer_tflite_model=true.
    (TF Serving's test reads ``float_val[0]``; the typed fields are checked by the tests above, so the
    answer is read here with tf.make_ndarray.)"""
    tflite_server.wait_for("Application startup complete")
    _, port = tflite_server.wait_for(r"gRPC API at 127\.0\.0\.1:(\d+)")
    _, rest = tflite_server.wait_for(r"REST API at (http://\S+?)/v1")
    request = _x_is_two("default")
    with grpc.insecure_channel(f"127.0.0.1:{port.group(1)}") as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs and result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert tf.make_ndarray(result.outputs["y"]).tolist() == [3.0]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "default", "serving_default", 123)
    response = httpx.post(f"{rest.group(1)}/v1/models/default:predict", json={"instances": [2.0]},
                          timeout=RPC_TIMEOUT)
    assert response.status_code == 200 and response.json() == {"predictions": [3.0]}, response.text


# ------------------------------------------------------------------ metadata and status, gRPC against REST


ALL_MODELS = {"half_plus_two": 123, "tf2": 2, "keras": 1, "census": 1}


@pytest.mark.parametrize("model", list(ALL_MODELS))
def test_get_model_metadata_grpc_equals_rest(zoo, model):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    result = zoo.prediction.GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == model and result.model_spec.version.value == ALL_MODELS[model]
    assert list(result.metadata) == ["signature_def"]
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    result.metadata["signature_def"].Unpack(signature_map)
    assert "serving_default" in signature_map.signature_def
    rest = zoo.rest.get(f"/v1/models/{model}/metadata")
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["model_spec"] == {"name": model, "signature_name": "", "version": str(ALL_MODELS[model])}
    rest_signatures = body["metadata"]["signature_def"]["signature_def"]
    assert sorted(rest_signatures) == sorted(signature_map.signature_def)
    for key, signature in signature_map.signature_def.items():
        rest_signature = rest_signatures[key]
        assert rest_signature.get("method_name", "") == signature.method_name, key
        for side in ("inputs", "outputs"):
            grpc_side = {name: (types_pb2.DataType.Name(info.dtype), info.name)
                         for name, info in getattr(signature, side).items()}
            rest_side = {name: (info["dtype"], info["name"]) for name, info in rest_signature[side].items()}
            assert rest_side == grpc_side, (key, side)
    # The REST document is the SignatureDefMap's proto JSON (TF Serving: MessageToJsonString).
    # TF Serving's handler prints every field (always_print_primitive_fields): "unknown_rank": false,
    # "defaults": {}, and int64 sizes as strings, as in its testdata/*_metadata.json.
    assert body["metadata"]["signature_def"] == message_to_dict(signature_map)
    if model == "tf2":
        # tf.saved_model.save's method names; __saved_model_init_op is listed too, as TF Serving lists it
        # (testdata/saved_model_half_plus_two_tf2_2_versions_metadata.json).
        methods = {k: s.method_name for k, s in signature_map.signature_def.items()}
        assert methods == {"serving_default": PREDICT, "regress_x_to_y": PREDICT, "classify_x_to_y": PREDICT,
                           "__saved_model_init_op": ""}


def _grpc_status(zoo, model: str) -> list[tuple]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    result = zoo.models.GetModelStatus(request, RPC_TIMEOUT)
    code_names = result.model_version_status[0].status.DESCRIPTOR.fields_by_name["error_code"].enum_type
    return sorted((s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                   code_names.values_by_number[s.status.error_code].name, s.status.error_message)
                  for s in result.model_version_status)


def _rest_status(zoo, model: str) -> list[tuple]:
    response = zoo.rest.get(f"/v1/models/{model}")
    assert response.status_code == 200, response.text
    return sorted((int(s["version"]), s["state"], s["status"]["error_code"], s["status"]["error_message"])
                  for s in response.json()["model_version_status"])


@pytest.mark.parametrize("model", [*ALL_MODELS, "fallback"])
def test_get_model_status_grpc_equals_rest(zoo, model):
    grpc_status = _grpc_status(zoo, model)
    assert grpc_status == _rest_status(zoo, model)
    if model == "tf2":
        assert grpc_status == [(1, "AVAILABLE", "OK", ""), (2, "AVAILABLE", "OK", "")]
    elif model != "fallback":
        assert grpc_status == [(ALL_MODELS[model], "AVAILABLE", "OK", "")]


# ------------------------------------------------------------------ Classify / Regress / MultiInference, no check


def _examples_input(request, *xs: float) -> None:
    for x in xs:
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.extend([x])


def _spec(model_spec, model: str, signature: str = "", label: str = "") -> None:
    """Fill a ModelSpec as TF Serving's clients do: name, signature, optional version label."""
    model_spec.name = model
    if signature:
        model_spec.signature_name = signature
    if label:
        model_spec.version_label = label


def _classify(stub, model: str, label: str = ""):
    request = classification_pb2.ClassificationRequest()
    _spec(request.model_spec, model, "classify_x_to_y", label)
    _examples_input(request, 2.0)
    return stub.Classify(request, RPC_TIMEOUT)


def _regress(stub, model: str, label: str = ""):
    request = regression_pb2.RegressionRequest()
    _spec(request.model_spec, model, "regress_x_to_y", label)
    _examples_input(request, 2.0)
    return stub.Regress(request, RPC_TIMEOUT)


def _multi_inference(stub, model: str, label: str = ""):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY)):
        task = request.tasks.add()
        _spec(task.model_spec, model, signature, label)
        task.method_name = method
    _examples_input(request, 2.0)
    return stub.MultiInference(request, RPC_TIMEOUT)


def test_classify_regress_multi_inference_on_tf2_predict_method_signatures(zoo):
    """testClassifyTf2 / testRegressTf2 / testMultiInferenceTf2: without the method name check TF Serving
    serves tf.saved_model.save's predict-method signatures to Classify, Regress and MultiInference."""
    result = _classify(zoo.prediction, "tf2", "stable")
    assert len(result.result.classifications) == 1 and len(result.result.classifications[0].classes) == 1
    assert (result.result.classifications[0].classes[0].label, result.result.classifications[0].classes[0].score) \
        == ("", 3.0)
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "tf2", "classify_x_to_y", 1)
    result = _regress(zoo.prediction, "tf2", "stable")
    assert [r.value for r in result.result.regressions] == [3.0]
    assert (result.model_spec.signature_name, result.model_spec.version.value) == ("regress_x_to_y", 1)
    result = _multi_inference(zoo.prediction, "tf2", "stable")
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for i, signature in enumerate(("regress_x_to_y", "classify_x_to_y")):
        spec = result.results[i].model_spec
        assert (spec.name, spec.signature_name, spec.version.value) == ("tf2", signature, 1)
    # The latest version (b=3) when no version is asked for.
    assert [r.value for r in _regress(zoo.prediction, "tf2").result.regressions] == [4.0]


def test_rest_classify_and_regress_on_tf2_predict_method_signatures(zoo):
    """testClassifyREST / testRegressREST's bodies, on the TF2 model."""
    response = zoo.rest.post("/v1/models/tf2/labels/stable:classify",
                             json={"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
    assert response.status_code == 200 and response.json() == {"results": [[["", 3.0]]]}, response.text
    response = zoo.rest.post("/v1/models/tf2/versions/1:regress",
                             json={"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
    assert response.status_code == 200 and response.json() == {"results": [3.0]}, response.text


def test_classify_the_tfmtl_export_over_grpc_and_rest(zoo):
    rows = _census_rows()
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "census"
    request.model_spec.signature_name = "classify_income_50k"
    for row in rows.to_dict("records"):
        request.input.example_list.examples.add().ParseFromString(_example(row))
    result = zoo.prediction.Classify(request, RPC_TIMEOUT)
    grpc_answer = [[(c.label, c.score) for c in classes.classes] for classes in result.result.classifications]
    response = zoo.rest.post("/v1/models/census:classify", json={
        "signature_name": "classify_income_50k",
        "examples": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                     for row in rows.to_dict("records")]})
    assert response.status_code == 200, response.text
    rest_answer = [[(label, score) for label, score in classes] for classes in response.json()["results"]]
    assert [[label for label, _ in r] for r in grpc_answer] == [[label for label, _ in r] for r in rest_answer]
    assert [[label for label, _ in r] for r in grpc_answer] == [["0", "1"]] * len(rows)
    np.testing.assert_allclose([[s for _, s in r] for r in grpc_answer], [[s for _, s in r] for r in rest_answer],
                               rtol=1e-6)


# ------------------------------------------------------------------ a bad version next to a good one


def test_a_bad_version_2_next_to_a_good_version_1_serves_version_1(zoo):
    """Our server's documented difference (docs/serving.md, "Differences from TF Serving"): a version that
    fails to load is skipped and the latest-version policy falls back to version 1. TF Serving would not
    fall back: its latest policy wants version 2 only, version 2 goes to END with the error, and the model
    has no available version (at start-up the process exits: "1 model(s) did not become available")."""
    response = zoo.prediction.Predict(_predict_request("fallback", "", {"x": np.array([2.0], np.float32)}),
                                      RPC_TIMEOUT)
    assert response.model_spec.version.value == 1 and tf.make_ndarray(response.outputs["y"]).tolist() == [3.0]
    status = dict((version, (state, code)) for version, state, code, _ in _grpc_status(zoo, "fallback"))
    assert status[1] == ("AVAILABLE", "OK")
    assert status[2][0] == "END" and status[2][1] != "OK"


# ------------------------------------------------------------------ error wording


def test_error_wording_as_tf_serving(zoo):
    response = zoo.rest.get("/v1/models")
    assert response.status_code == 400 and response.json() == {"error": "Missing model name in request."}
    response = zoo.rest.post("/v1/models/half_plus_two:predict", json={"instances": ["abc"]})
    assert response.status_code == 400
    assert response.json()["error"].startswith('JSON Value: "abc" Type: String is not of expected type: float')
    request = _predict_request("half_plus_two", "nope", {"x": np.array([1.0], np.float32)})
    with pytest.raises(grpc.RpcError) as info:
        zoo.prediction.Predict(request, RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details().startswith('Serving signature key "nope" not found.'), info.value.details()
    request = _predict_request("half_plus_two", "serving_default",
                               {"x": np.array([1.0], np.float32), "z": np.array([1.0], np.float32)})
    with pytest.raises(grpc.RpcError) as info:
        zoo.prediction.Predict(request, RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("input size does not match signature"), info.value.details()
    request = _predict_request("intentionally_missing_model", "", {})  # WaitForServerReady's probe
    with pytest.raises(grpc.RpcError) as info:
        zoo.prediction.Predict(request, RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "Servable" in info.value.details()


# ------------------------------------------------------------------ config reload by polling (the zoo's last test)


def _wait_until(call, done, what: str, timeout: float = 30.0):
    """Calls ``call`` until ``done(result)``; returns that result."""
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}: last answer {result}"
        time.sleep(0.2)


def _predict_code(zoo, model: str) -> tuple:
    request = _x_is_two(model, signature="")
    try:
        response = zoo.prediction.Predict(request, RPC_TIMEOUT)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, tf.make_ndarray(response.outputs["y"]).tolist()


def test_model_config_file_is_polled_models_come_and_go(zoo):
    """testModelConfigReload: the edited config file is applied while the other models keep serving."""
    assert _predict_code(zoo, "half_plus_three")[0] == grpc.StatusCode.NOT_FOUND
    added = zoo.config_text[:zoo.config_text.rindex("}")] + (
        f'  config {{ name: "half_plus_three" base_path: "{HALF_PLUS_THREE}" model_platform: "tensorflow" }}\n}}\n')
    started = time.monotonic()
    _write_atomically(zoo.config_path, added)
    try:
        answer = _wait_until(lambda: _predict_code(zoo, "half_plus_three"),
                             lambda r: r[0] == grpc.StatusCode.OK, "half_plus_three to serve")
        assert answer == (grpc.StatusCode.OK, [4.0])
        assert time.monotonic() - started < 15
        assert _rest_status(zoo, "half_plus_three") == [(123, "AVAILABLE", "OK", "")]
        assert _predict_code(zoo, "half_plus_two") == (grpc.StatusCode.OK, [3.0])
    finally:
        _write_atomically(zoo.config_path, zoo.config_text)
    code, details = _wait_until(lambda: _predict_code(zoo, "half_plus_three"),
                                lambda r: r[0] != grpc.StatusCode.OK, "half_plus_three to go")
    assert code == grpc.StatusCode.NOT_FOUND and "Servable not found" in details, details
    response = zoo.rest.post("/v1/models/half_plus_three:predict", json={"instances": [2.0]})
    assert response.status_code == 404 and "Servable not found" in response.json()["error"]
    assert _predict_code(zoo, "half_plus_two") == (grpc.StatusCode.OK, [3.0])
    assert zoo.server.process.poll() is None


# ------------------------------------------------------------------ start-up order


def test_ports_open_only_once_every_model_serves_and_the_first_request_is_answered(late_server):
    watch = late_server.ready()
    assert not watch.errors, watch.errors
    assert watch.copied_at is not None and watch.renamed_at is not None, watch.server.log
    for kind in ("grpc", "rest"):
        # Both ports were refused while half_plus_two served and "late" had no version yet ...
        waiting = [t for t in watch.refusals[kind] if watch.first_model_at < t < watch.copied_at]
        assert len(waiting) > 10, (kind, len(watch.refusals[kind]))
        # ... and neither accepted before the version was copied in.
        assert watch.accepted_at[kind] > watch.copied_at, kind
    # The first request, sent the instant each port accepted, finds the model (never NOT_FOUND).
    assert watch.answers["grpc"] == (grpc.StatusCode.OK, [3.0], 1), watch.answers["grpc"]
    assert watch.answers["rest"] == (200, {"predictions": [3.0]}), watch.answers["rest"]
    log = watch.server.log
    assert log.index("model 'late': version 1 is AVAILABLE") < log.index("gRPC API at 127.0.0.1:")
    assert log.index("gRPC API at 127.0.0.1:") < log.index("REST API at http://")


# ------------------------------------------------------------------ with --enable_signature_method_name_check


def test_method_name_check_refuses_predict_method_signatures(late_server):
    watch = late_server.ready()
    for call, message in ((_classify, "Expected classification signature method_name to be "
                                      "tensorflow/serving/classify. Was: tensorflow/serving/predict"),
                          (_regress, "Expected regression signature method_name to be "
                                     "tensorflow/serving/regress. Was: tensorflow/serving/predict"),
                          (_multi_inference, "Expected regression signature method_name to be "
                                             "tensorflow/serving/regress. Was: tensorflow/serving/predict")):
        with pytest.raises(grpc.RpcError) as info:
            call(watch.prediction, "late")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, call.__name__
        assert info.value.details().startswith(message), info.value.details()
    for verb, kind in (("classify", "classification"), ("regress", "regression")):
        response = watch.rest.post(f"/v1/models/late:{verb}",
                                   json={"signature_name": f"{verb}_x_to_y", "examples": [{"x": 2.0}]})
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(
            f"Expected {kind} signature method_name to be tensorflow/serving/{verb}. Was: tensorflow/serving/predict")
    # TF1 half_plus_two's signatures carry the real method names: served with the check on.
    assert _classify(watch.prediction, "half_plus_two").result.classifications[0].classes[0].score == 3.0
    assert [r.value for r in _regress(watch.prediction, "half_plus_two").result.regressions] == [3.0]
    response = watch.rest.post("/v1/models/half_plus_two:regress",
                               json={"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
    assert response.status_code == 200 and response.json() == {"results": [3.0]}, response.text


# ------------------------------------------------------------------ --grpc_channel_arguments, tensor_content


def test_grpc_channel_arguments_are_accepted_and_predictions_work(late_server):
    """testGoodGrpcChannelArgs; the connection is recycled after max_connection_age_ms, calls still work."""
    watch = late_server.ready()
    assert f"--grpc_channel_arguments={CHANNEL_ARGUMENTS}" in " ".join(watch.server.process.args)
    request = _predict_request("half_plus_two", "", {"x": np.array([2.0], np.float32)})
    assert tf.make_ndarray(watch.prediction.Predict(request, RPC_TIMEOUT).outputs["y"]).tolist() == [3.0]
    time.sleep(2.5)
    assert tf.make_ndarray(watch.prediction.Predict(request, RPC_TIMEOUT).outputs["y"]).tolist() == [3.0]


def test_serialization_as_tensor_content_flag(late_server):
    watch = late_server.ready()
    request = _predict_request("half_plus_two", "", {"x": np.array([2.0, 4.0], np.float32)}, typed=True)
    output = watch.prediction.Predict(request, RPC_TIMEOUT).outputs["y"]
    assert output.tensor_content and not output.float_val
    assert np.frombuffer(output.tensor_content, np.float32).tolist() == [3.0, 4.0]


def test_handle_reload_config_request_waits_and_reports_failures_in_the_status(late_server, root):
    """ModelService.HandleReloadConfigRequest (TF Serving's ModelServiceImpl): it returns once the new
    models serve; a model that cannot load is reported in ``response.status`` (the call itself is OK)."""
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2

    watch = late_server.ready()
    stub = model_service_pb2_grpc.ModelServiceStub(watch.channel)
    models = {"half_plus_two": HALF_PLUS_TWO, "late": str(watch.base), "half_plus_three": HALF_PLUS_THREE}

    def reload(models):
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(_config(models), request.config)
        return stub.HandleReloadConfigRequest(request, 120).status

    status = reload(models)
    assert (status.error_code, status.error_message) == (0, "")
    request = _predict_request("half_plus_three", "", {"x": np.array([2.0], np.float32)})
    assert tf.make_ndarray(watch.prediction.Predict(request, RPC_TIMEOUT).outputs["y"]).tolist() == [4.0]
    bad = root / "reload_bad" / "1"
    bad.mkdir(parents=True)
    (bad / "saved_model.pb").write_bytes(b"not a SavedModel")
    status = reload({**models, "bad": str(bad.parent)})
    assert status.error_code == 2, status  # UNKNOWN, ServerCore::WaitUntilModelsAvailable's
    assert status.error_message.startswith("1 model(s) did not become available: {{name: bad version: 1}"), status
    request = _predict_request("late", "", {"x": np.array([2.0], np.float32)})
    assert tf.make_ndarray(watch.prediction.Predict(request, RPC_TIMEOUT).outputs["y"]).tolist() == [3.0]


# ------------------------------------------------------------------ processes that must not start; --version


def test_malformed_model_config_file_stops_the_process(failing_starts):
    """testBadModelConfig."""
    server = failing_starts["malformed"]
    assert server.wait_exit() != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in server.log, server.log


def test_a_model_whose_only_version_is_garbage_stops_start_up(failing_starts):
    """As TF Serving's ServerCore: the good model loads, the bad one does not, the process exits 1 naming
    it and never opens a port."""
    server = failing_starts["bad_model"]
    assert server.wait_exit() == 1, server.log
    log = server.log
    assert "1 model(s) did not become available" in log and "{name: bad version: 1}" in log, log
    assert "gRPC API at" not in log and "REST API at" not in log, log


def test_version_flag():
    result = subprocess.run([sys.executable, "-m", "serving", "--version"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("TensorFlow ModelServer:") and lines[1].startswith("TensorFlow Library:")
    assert lines[1] == f"TensorFlow Library: {tf.__version__}"
