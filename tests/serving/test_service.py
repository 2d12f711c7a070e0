"""The typed core (serving.service) and the method-name check, through the service and both codecs.

TF2's ``tf.saved_model.save`` writes every signature with method_name ``tensorflow/serving/predict``;
TF Serving's Classify and Regress then check only the signature's inputs and outputs
(classifier.cc / regressor.cc, PreProcessClassification / PreProcessRegression) unless
``--enable_signature_method_name_check`` is on. The module below is built like TF Serving's own
``saved_model_half_plus_two_tf2`` test model: y = x / 2 + 2.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from starlette.testclient import TestClient
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.app import create_app
from serving.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, Unimplemented
from serving.grpc_server import start_grpc_server
from serving.manager import ModelManager, ModelsUnavailable
from serving.service import InferenceTask, PredictionService, Target

from .conftest import install, server_config

CLASSIFY, REGRESS, PREDICT = "tensorflow/serving/classify", "tensorflow/serving/regress", "tensorflow/serving/predict"


class HalfPlusTwo(tf.Module):
    """TF Serving's half_plus_two as a TF2 module: every signature is a predict signature."""

    def __init__(self):
        super().__init__()
        self.a, self.b = tf.Variable(0.5), tf.Variable(2.0)

    def _y(self, serialized):
        x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
        return self.a * x + self.b

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._y(inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        return {"scores": self._y(inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def two_inputs_shape(self, inputs):
        return {"outputs": self._y(inputs), "extra": self._y(inputs)}


@pytest.fixture(scope="module")
def tf2_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf2")
    module = HalfPlusTwo()
    tf.saved_model.save(module, str(root / "saved"), signatures={
        "serving_default": module.predict, "regress_x_to_y": module.regress, "classify_x_to_y": module.classify,
        "two_outputs": module.two_inputs_shape})
    install(str(root / "saved"), str(root / "base"), 1)
    return str(root / "base")


def _example(x: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})).SerializeToString()


@pytest.fixture(scope="module")
def manager(tf2_base):
    manager = ModelManager(server_config({"tf2": tf2_base}), poll_wait_seconds=0)
    manager.start()
    yield manager
    manager.stop()


def _service(manager, check: bool) -> PredictionService:
    return PredictionService(manager, method_name_check=check)


TF2 = Target("tf2")


def test_predict_reads_inputs_for_the_signature_and_filters_outputs(manager):
    seen = {}

    def read(inputs):
        seen.update(inputs)
        return {"x": np.array([2.0, 4.0], np.float32)}

    answer = _service(manager, False).predict(TF2, "", read, ["y"])
    assert list(seen) == ["x"] and seen["x"].dtype == tf.float32
    assert (answer.servable.version, answer.signature.key) == (1, "serving_default")
    np.testing.assert_allclose(answer.outputs["y"], [3.0, 4.0])


@pytest.mark.parametrize("inputs,message", [
    ({"x": np.ones(1, np.float32), "z": np.ones(1)},
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}."),
    ({}, "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}."),
])
def test_predict_names_extra_and_missing_inputs_in_tf_servings_words(manager, inputs, message):
    with pytest.raises(InvalidArgument) as info:
        _service(manager, False).predict(TF2, "", lambda _: inputs)
    assert info.value.message == message


@pytest.mark.parametrize("output_filter,message", [
    (["nope"], "output tensor alias not found in signature: nope Outputs expected to be in the set {y}."),
    (["y", "y"], "duplicate output tensor alias: y"),
])
def test_output_filter_errors(manager, output_filter, message):
    with pytest.raises(InvalidArgument, match=f"^{message}$"):
        _service(manager, False).predict(TF2, "", lambda _: {"x": np.ones(1, np.float32)}, output_filter)


@pytest.mark.parametrize("call,error,words", [
    (lambda s: s.predict(TF2, "nope", lambda _: {}), FailedPrecondition, 'Serving signature key "nope" not found.'),
    (lambda s: s.classify(TF2, "nope", [_example(1.0)]), InvalidArgument, "No signature was found with the name: nope"),
    (lambda s: s.regress(TF2, "nope", [_example(1.0)]), InvalidArgument, "No signature was found with the name: nope"),
    (lambda s: s.multi_inference([InferenceTask(TF2, "nope", REGRESS)], [_example(1.0)]), InvalidArgument,
     "Requested signature not found in model graph: nope"),
])
def test_an_unknown_signature_gets_each_apis_words(manager, call, error, words):
    with pytest.raises(error) as info:
        call(_service(manager, False))
    assert info.value.message.startswith(words) and "'classify_x_to_y'" in info.value.message


def test_tf2_predict_method_signatures_classify_and_regress_without_the_check(manager):
    service = _service(manager, False)
    assert service.regress(TF2, "regress_x_to_y", [_example(2.0), _example(4.0)]).values == [3.0, 4.0]
    assert service.classify(TF2, "classify_x_to_y", [_example(2.0)]).classes == [[("", 3.0)]]
    regression, classification = service.multi_inference(
        [InferenceTask(TF2, "regress_x_to_y", REGRESS), InferenceTask(TF2, "classify_x_to_y", CLASSIFY)],
        [_example(2.0)])
    assert (regression.values, classification.classes) == ([3.0], [[("", 3.0)]])


def test_the_check_refuses_them_with_tf_servings_words(manager):
    service = _service(manager, True)
    with pytest.raises(InvalidArgument, match="^Expected regression signature method_name to be "
                                              f"{REGRESS}. Was: {PREDICT}$"):
        service.regress(TF2, "regress_x_to_y", [_example(2.0)])
    with pytest.raises(InvalidArgument, match="^Expected classification signature method_name to be "
                                              f"{CLASSIFY}. Was: {PREDICT}$"):
        service.classify(TF2, "classify_x_to_y", [_example(2.0)])
    with pytest.raises(InvalidArgument, match="^Expected regression signature method_name"):
        service.multi_inference([InferenceTask(TF2, "regress_x_to_y", REGRESS)], [_example(2.0)])
    # Predict still serves predict, classify and regress signatures under the check.
    np.testing.assert_allclose(service.predict(TF2, "", lambda _: {"x": np.ones(1, np.float32)}).outputs["y"], [2.5])


def test_without_the_check_the_signatures_shape_decides(manager):
    service = _service(manager, False)
    with pytest.raises(InvalidArgument, match="^Expected one output Tensor."):
        service.regress(TF2, "two_outputs", [_example(1.0)])
    with pytest.raises(InvalidArgument, match="^No classification inputs found in SignatureDef: signature "
                                              "'serving_default'"):
        service.classify(TF2, "", [_example(1.0)])
    with pytest.raises(InvalidArgument, match='^Expected classification signature outputs to contain at least one of '
                                              '"classes" or "scores"'):
        service.classify(TF2, "two_outputs", [_example(1.0)])


def test_multi_inference_checks_in_tf_servings_order(manager):
    service = _service(manager, False)
    with pytest.raises(InvalidArgument, match="^ModelSpec has no name specified.$"):
        service.multi_inference([], [_example(1.0)])
    with pytest.raises(InvalidArgument, match="must access the same model name"):
        service.multi_inference([InferenceTask(TF2, "regress_x_to_y", REGRESS),
                                 InferenceTask(Target("other"), "classify_x_to_y", CLASSIFY)], [_example(1.0)])
    with pytest.raises(Unimplemented, match=f"^Unsupported signature method_name: {PREDICT}$"):
        service.multi_inference([InferenceTask(TF2, "serving_default", PREDICT)], [_example(1.0)])
    with pytest.raises(InvalidArgument, match="^Input is empty$"):
        service.multi_inference([InferenceTask(TF2, "regress_x_to_y", REGRESS)], [])


def test_status_and_metadata_are_protos(manager):
    service = _service(manager, False)
    assert [(s.version, s.state) for s in service.status(TF2).model_version_status] == [(1, 30)]
    servable, signatures = service.metadata(TF2)
    assert servable.version == 1 and signatures.signature_def["regress_x_to_y"].method_name == PREDICT
    with pytest.raises(NotFound, match="^Could not find any versions of model nope"):
        service.status(Target("nope"))


def test_predict_under_the_check_refuses_a_signature_of_another_method(manager, monkeypatch):
    service = _service(manager, True)
    signature = manager.resolve("tf2").signatures["serving_default"]
    monkeypatch.setattr(signature, "method_name", "tensorflow/serving/other")
    with pytest.raises(Internal, match=r"^Expected prediction signature method_name to be one of \{"
                                       f"{PREDICT}, {CLASSIFY}, {REGRESS}" r"\}. Was: tensorflow/serving/other$"):
        service.predict(TF2, "", lambda _: {"x": np.ones(1, np.float32)})


# ------------------------------------------------------------------ the same behaviour through both codecs

@pytest.mark.parametrize("check", [False, True])
def test_rest_and_grpc_agree_on_the_check(tf2_base, check):
    manager = ModelManager(server_config({"tf2": tf2_base}), poll_wait_seconds=0)
    app = create_app(manager, method_name_check=check)
    with TestClient(app) as client:
        server, port, _ = start_grpc_server(manager, app.state.service, "127.0.0.1", 0, max_workers=2)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            regress = regression_pb2.RegressionRequest()
            regress.model_spec.name, regress.model_spec.signature_name = "tf2", "regress_x_to_y"
            regress.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
            classify = classification_pb2.ClassificationRequest(model_spec=regress.model_spec, input=regress.input)
            classify.model_spec.signature_name = "classify_x_to_y"
            multi = inference_pb2.MultiInferenceRequest(input=regress.input)
            multi.tasks.add(model_spec=regress.model_spec, method_name=REGRESS)
            rest_regress = client.post("/v1/models/tf2:regress", json={
                "signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
            rest_classify = client.post("/v1/models/tf2:classify", json={
                "signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
            if not check:
                assert stub.Regress(regress, timeout=30).result.regressions[0].value == 3.0
                assert stub.Classify(classify, timeout=30).result.classifications[0].classes[0].score == 3.0
                assert stub.MultiInference(multi, timeout=30).results[0].regression_result.regressions[0].value == 3.0
                assert rest_regress.json() == {"results": [3.0]}
                assert rest_classify.json() == {"results": [[["", 3.0]]]}
            else:
                for call, request in ((stub.Regress, regress), (stub.Classify, classify),
                                      (stub.MultiInference, multi)):
                    with pytest.raises(grpc.RpcError) as info:
                        call(request, timeout=30)
                    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert info.value.details().startswith("Expected ")
                    assert f"Was: {PREDICT}" in info.value.details()
                assert rest_regress.status_code == rest_classify.status_code == 400
                assert rest_regress.json()["error"] == f"Expected regression signature method_name to be {REGRESS}. " \
                                                       f"Was: {PREDICT}"
            predict = predict_pb2.PredictRequest()
            predict.model_spec.name = "tf2"
            predict.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
            assert tf.make_ndarray(stub.Predict(predict, timeout=30).outputs["y"]).tolist() == [3.0]
        finally:
            channel.close()
            server.stop(0)


# ------------------------------------------------------------------ start-up: waiting for the configured models

def test_wait_until_available_waits_for_a_version_that_appears(tmp_path, zoo):
    import threading

    base = str(tmp_path / "later")
    manager = ModelManager(server_config({"later": base}), poll_wait_seconds=0.05)
    manager.start()
    try:
        timer = threading.Timer(0.5, install, (zoo["single"], base, 3))
        timer.start()
        manager.wait_until_available()
        assert manager.resolve("later").version == 3
        timer.join()
    finally:
        manager.stop()


def test_wait_until_available_reports_a_model_whose_versions_all_failed(tmp_path, zoo):
    bad = tmp_path / "bad" / "1"
    bad.mkdir(parents=True)
    (bad / "saved_model.pb").write_bytes(b"garbage")
    install(zoo["single"], str(tmp_path / "good"), 1)
    manager = ModelManager(server_config({"good": str(tmp_path / "good"), "bad": str(bad.parent)}),
                           poll_wait_seconds=0.05)
    manager.start()
    try:
        with pytest.raises(ModelsUnavailable) as info:
            manager.wait_until_available()
        assert info.value.message.startswith("1 model(s) did not become available: {{name: bad version: 1} due to "
                                             "error: ")
        manager.wait_until_available(["good"])  # the others are unaffected
    finally:
        manager.stop()


def test_wait_until_available_does_not_wait_when_nothing_polls(tmp_path):
    manager = ModelManager(server_config({"empty": str(tmp_path / "empty")}), poll_wait_seconds=0)
    manager.start()
    with pytest.raises(ModelsUnavailable, match=r"\{name: empty\} has no version under"):
        manager.wait_until_available()
    manager.stop()
