"""SavedModels for the serving tests, built with plain TensorFlow (the server never imports tfmtl).

The zoo is saved once per session; a test that needs its own base path copies
versions out of it (a copy is much cheaper than a save).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from serving import config as config_lib
from serving.app import create_app
from serving.manager import ModelManager
from serving.net import http_protocol, listen_socket

MAX_REQUEST_BYTES = 1_000_000
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


class MultiTask(tf.Module):
    """Two binary tasks from a string and a float feature, like a tiny census model."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale)

    def _scores(self, occupation, age):
        bucket = tf.cast(tf.strings.to_hash_bucket_fast(occupation, 7), tf.float32)
        z1 = self.scale * (0.03 * age - 1.0 + 0.1 * bucket)
        z2 = self.scale * (-0.02 * age + 0.5 - 0.05 * bucket)
        return {"income_50k": tf.sigmoid(z1)[:, None], "never_married": tf.sigmoid(z2)[:, None]}

    def _parse(self, serialized):
        features = tf.io.parse_example(serialized, {
            "occupation": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "age": tf.io.FixedLenFeature([], tf.float32, default_value=0.0)})
        return features["occupation"], features["age"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="occupation"),
                                  tf.TensorSpec([None], tf.float32, name="age")])
    def serve(self, occupation, age):
        return self._scores(occupation, age)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        return self._scores(*self._parse(examples))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        p = self._scores(*self._parse(inputs))["income_50k"]
        classes = tf.tile(tf.constant([["<=50K", ">50K"]]), [tf.shape(p)[0], 1])
        return {"scores": tf.concat([1.0 - p, p], axis=1), "classes": classes}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._scores(*self._parse(inputs))["never_married"]}


class Single(tf.Module):
    """One [None, 3] float input, one [None] float output."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable([0.5, -1.0, 2.0])

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.reduce_sum(x * self.w, axis=1) + 0.25}


class Bytes(tf.Module):
    """A binary string input; a length and a binary prefix output."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="payload")])
    def serve(self, payload):
        return {"length": tf.strings.length(payload), "prefix_bytes": tf.strings.substr(payload, 0, 2)}


class Broken(tf.Module):
    """Loads fine, fails at run time inside the graph (a missing file): an internal error."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        data = tf.io.read_file("/nonexistent/tfmtl-serving-test/file")
        return {"y": x + tf.cast(tf.strings.length(data), tf.float32)}


def set_method_names(path: str, methods: dict[str, str]) -> None:
    """tf.saved_model.save writes every signature as 'predict'; classify/regress need their method name."""
    pb_path = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for key, method in methods.items():
        saved_model.meta_graphs[0].signature_def[key].method_name = method
    with open(pb_path, "wb") as f:
        f.write(saved_model.SerializeToString())


def save_multi_task(path: str, scale: float = 1.0) -> MultiTask:
    module = MultiTask(scale)
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.serve, "serving_tf_example": module.serve_examples,
        "classify_income_50k": module.classify, "regress_never_married": module.regress})
    set_method_names(path, {"classify_income_50k": CLASSIFY, "regress_never_married": REGRESS})
    return module


def example_proto(occupation: str, age: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "occupation": tf.train.Feature(bytes_list=tf.train.BytesList(value=[occupation.encode()])),
        "age": tf.train.Feature(float_list=tf.train.FloatList(value=[age]))})).SerializeToString()


def warmup_logs(model_name: str = "multi") -> list[prediction_log_pb2.PredictionLog]:
    """One record of each kind: predict, classify, regress."""
    predict = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name))
    predict.inputs["occupation"].CopyFrom(tf.make_tensor_proto([b"Sales", b"Tech"]))
    predict.inputs["age"].CopyFrom(tf.make_tensor_proto([39.0, 50.0], dtype=tf.float32))
    examples = input_pb2.Input()
    examples.example_list.examples.add().ParseFromString(example_proto("Sales", 39.0))
    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name="classify_income_50k"), input=examples)
    regress = regression_pb2.RegressionRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name="regress_never_married"), input=examples)
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict)),
        prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=classify)),
        prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=regress)),
    ]


def write_warmup(version_path: str, logs: list[prediction_log_pb2.PredictionLog]) -> None:
    os.makedirs(os.path.join(version_path, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(version_path, "assets.extra", "tf_serving_warmup_requests")) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """Saved versions: multi (scale 1 and 2, with warmup), single, bytes, broken."""
    root = tmp_path_factory.mktemp("zoo")
    paths = {
        "multi_v1": str(root / "multi_v1"), "multi_v2": str(root / "multi_v2"), "single": str(root / "single"),
        "bytes": str(root / "bytes"), "broken": str(root / "broken"),
    }
    save_multi_task(paths["multi_v1"], scale=1.0)
    write_warmup(paths["multi_v1"], warmup_logs())
    save_multi_task(paths["multi_v2"], scale=2.0)
    module = Single()
    tf.saved_model.save(module, paths["single"], signatures={"serving_default": module.serve})
    module = Bytes()
    tf.saved_model.save(module, paths["bytes"], signatures={"serving_default": module.serve})
    module = Broken()
    tf.saved_model.save(module, paths["broken"], signatures={"serving_default": module.serve})
    return paths


def install(src: str, base_path: str, version: int) -> str:
    """Copy a saved version into ``base_path/<version>`` atomically (write aside, then rename)."""
    os.makedirs(base_path, exist_ok=True)
    target = os.path.join(base_path, str(version))
    staging = os.path.join(base_path, f".staging-{version}")
    shutil.copytree(src, staging)
    os.rename(staging, target)
    return target


def server_config(models: dict[str, str], extra: dict[str, str] | None = None) -> config_lib.ModelServerConfig:
    """A ModelServerConfig text for {name: base_path}, with optional extra text per model."""
    extra = extra or {}
    text = "model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" {extra.get(name, "")} }}\n'
        for name, path in models.items()) + "}\n"
    return config_lib.parse_model_server_config(text)


@pytest.fixture(scope="session")
def served(zoo, tmp_path_factory):
    """One base directory holding every zoo model, versions as named; plus an empty model."""
    root = tmp_path_factory.mktemp("served")
    layout = {"multi": [("multi_v1", 1), ("multi_v2", 2)], "single": [("single", 1)], "bytes": [("bytes", 3)],
              "broken": [("broken", 1)]}
    for name, versions in layout.items():
        for src, version in versions:
            install(zoo[src], str(root / name), version)
    os.makedirs(root / "empty", exist_ok=True)
    models = {name: str(root / name) for name in [*layout, "empty"]}
    extra = {"multi": 'model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
                      'version_labels { key: "canary" value: 2 }'}
    return server_config(models, extra)


@pytest.fixture(scope="session")
def app_client(served):
    """A TestClient over one app serving the whole zoo (lifespan started once for the session)."""
    from starlette.testclient import TestClient

    manager = ModelManager(served, poll_wait_seconds=0)
    app = create_app(manager, max_concurrent_requests=8, max_request_bytes=MAX_REQUEST_BYTES)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def reference(zoo):
    """The in-process SavedModels the REST answers are compared with."""
    return {name: tf.saved_model.load(path) for name, path in zoo.items() if name != "broken"}


def close(a, b, tol: float = 1e-6) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=0)


@contextmanager
def running_server(app, *, timeout: float = 60.0):
    """Run ``app`` under a real uvicorn server on 127.0.0.1 (a free port) in a thread; yield its URL."""
    import uvicorn

    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                           http=http_protocol()))
    app.state.uvicorn_server = server  # tests inspect its live connections
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


START_TIMEOUT = 240.0  # seconds for a server process to come up on 2 busy cores


class ServerProcess:
    """One ``python -m serving FLAGS`` process in the repository; its stderr is read line by line, with
    arrival times. ``wait_ready`` waits for the REST API and fills ``rest_url`` / ``grpc_target``."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None):
        self.process = subprocess.Popen([sys.executable, "-m", "serving", *flags], cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env=env if env is not None else dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        self.lines: list[tuple[float, str]] = []
        self.rest_url = ""  # http://host:port
        self.grpc_target = ""  # host:port, when a gRPC TCP port is open
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.process.stderr.readline, ""):
            self.lines.append((time.monotonic(), line))

    @property
    def log(self) -> str:
        return "".join(line for _, line in list(self.lines))

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> tuple[float, re.Match]:
        """The arrival time and match of the first log line matching ``pattern``."""
        deadline, seen = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            lines = list(self.lines)
            for at, line in lines[seen:]:
                match = re.search(pattern, line)
                if match:
                    return at, match
            seen = len(lines)
            if self.process.poll() is not None and not self._reader.is_alive() and seen == len(self.lines):
                break
            time.sleep(0.02)
        raise AssertionError(f"no log line matches {pattern!r} (exit status {self.process.poll()}):\n{self.log}")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        """Wait until the REST API is up (the last port to open); note where both APIs listen."""
        self.wait_for("Application startup complete", timeout)
        self.rest_url = self.wait_for(r"REST API at (http://\S+?)/v1", 1)[1].group(1)
        grpc_at = re.search(r"gRPC API at (\S+:\d+) ", self.log)
        self.grpc_target = grpc_at.group(1) if grpc_at else ""
        return self

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        returncode = self.process.wait(timeout)
        self._reader.join(10)
        return returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(10)


@contextmanager
def server_process(flags: Sequence[str], *, env: dict[str, str] | None = None,
                   timeout: float = START_TIMEOUT) -> Iterator[ServerProcess]:
    """A :class:`ServerProcess` whose REST API is up; stopped (terminated, then killed) on exit."""
    server = ServerProcess(*flags, env=env)
    try:
        yield server.wait_ready(timeout)
    finally:
        server.stop()
