"""TF1 graph SavedModels (tf.compat.v1 graph + SavedModelBuilder) served beside TF2 ones, warmup included."""

import os

import numpy as np
import pytest
import tensorflow as tf
from starlette.testclient import TestClient
from tensorflow_serving.apis import input_pb2, model_pb2, prediction_log_pb2, regression_pb2

from serving.app import create_app
from serving.manager import ModelManager

from .conftest import install, server_config, write_warmup

v1 = tf.compat.v1


def _example(x: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})).SerializeToString()


def export_tf1(path: str) -> None:
    """y = w * x + b with w = 2, b = 1 in variables; predict on x, classify/regress on tf.Examples."""
    graph = tf.Graph()
    with graph.as_default():
        w = v1.get_variable("w", initializer=2.0)
        b = v1.get_variable("b", initializer=1.0)
        x = v1.placeholder(tf.float32, [None], name="x")
        y = tf.identity(w * x + b, name="y")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = v1.io.parse_example(serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})
        outputs = w * parsed["x"] + b  # [batch, 1]
        scores = tf.concat([tf.sigmoid(-outputs), tf.sigmoid(outputs)], axis=1)
        classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(outputs)[0], 1])
        info = v1.saved_model.utils.build_tensor_info
        sigs = v1.saved_model.signature_def_utils
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": sigs.build_signature_def({"x": info(x)}, {"y": info(y)},
                                                            "tensorflow/serving/predict"),
                "classify": sigs.build_signature_def({"inputs": info(serialized)},
                                                     {"scores": info(scores), "classes": info(classes)},
                                                     "tensorflow/serving/classify"),
                "regress": sigs.build_signature_def({"inputs": info(serialized)}, {"outputs": info(outputs)},
                                                    "tensorflow/serving/regress"),
            })
            builder.save()
    examples = input_pb2.Input()
    examples.example_list.examples.add().ParseFromString(_example(3.0))
    regress = regression_pb2.RegressionRequest(model_spec=model_pb2.ModelSpec(name="tf1", signature_name="regress"),
                                               input=examples)
    write_warmup(path, [prediction_log_pb2.PredictionLog(
        regress_log=prediction_log_pb2.RegressLog(request=regress))])


@pytest.fixture(scope="module")
def client(zoo, tmp_path_factory):
    root = tmp_path_factory.mktemp("tf1")
    export_tf1(str(root / "export"))
    install(str(root / "export"), str(root / "tf1"), 1)
    install(zoo["single"], str(root / "single"), 1)
    manager = ModelManager(server_config({"tf1": str(root / "tf1"), "single": str(root / "single")}),
                           poll_wait_seconds=0)
    with TestClient(create_app(manager)) as test_client:
        yield test_client, manager


def test_tf1_predict_classify_regress_beside_a_tf2_model(client):
    test_client, _ = client
    response = test_client.post("/v1/models/tf1:predict", json={"instances": [1.0, 2.5]})
    assert response.status_code == 200 and response.json() == {"predictions": [3.0, 6.0]}
    response = test_client.post("/v1/models/tf1:regress", json={"signature_name": "regress",
                                                                "examples": [{"x": 1.0}, {"x": -1.0}]})
    assert response.json() == {"results": [3.0, -1.0]}
    results = test_client.post("/v1/models/tf1:classify", json={"signature_name": "classify",
                                                                 "examples": [{"x": 0.0}]}).json()["results"]
    assert [label for label, _ in results[0]] == ["no", "yes"]
    assert np.allclose([score for _, score in results[0]], [1 / (1 + np.e), 1 / (1 + np.exp(-1.0))], atol=1e-6)
    response = test_client.post("/v1/models/single:predict", json={"instances": [[1.0, 2.0, 3.0]]})
    assert response.json() == {"predictions": [4.75]}  # the TF2 model beside it


def test_tf1_warmup_ran_and_metadata_reads(client):
    test_client, manager = client
    assert manager.version_states("tf1")[0].warmup_records == 1
    signatures = test_client.get("/v1/models/tf1/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert signatures["regress"]["method_name"] == "tensorflow/serving/regress"
    assert os.path.basename(signatures["serving_default"]["inputs"]["x"]["name"]) == "x:0"
