"""TF Serving's own test models and request/response pairs, replayed against the real server process.

The models are TF Serving's TF1 test SavedModels (tests/serving/testdata/tf_serving, see PROVENANCE.md);
the cases come from its REST documentation (g3doc/api_rest.md) and its handler tests
(model_servers/http_rest_api_handler_test.cc). The server is started with tensorflow_model_server's
flags, as a launch script written for TF Serving passes them.
"""

import gzip
import json
import os
import re

import httpx
import pytest

from .conftest import server_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "tests", "serving", "testdata", "tf_serving")
TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    config = root / "models.config"
    config.write_text(f"""model_config_list {{
  config {{ name: "half_plus_two" base_path: "{DATA}/saved_model_half_plus_two_cpu" model_platform: "tensorflow" }}
  config {{ name: "half_plus_three" base_path: "{DATA}/saved_model_half_plus_three" model_platform: "tensorflow" }}
  config {{ name: "{TWO_VERSIONS}" base_path: "{DATA}/{TWO_VERSIONS}" model_platform: "tensorflow"
           model_version_policy {{ specific {{ versions: 123 }} }}
           version_labels {{ key: "Version_Label" value: 123 }} }}
}}
""")
    monitoring = root / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    flags = ["--port=0", "--rest_api_port=0", f"--model_config_file={config}",
             "--model_config_file_poll_wait_seconds=60", "--enable_batching=false", "--enable_model_warmup",
             "--rest_api_timeout_in_ms=30000", "--saved_model_tags=serve", f"--monitoring_config_file={monitoring}",
             "--rest_api_num_threads=8", "--tensorflow_intra_op_parallelism=1", "--file_system_poll_wait_seconds=0"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    with server_process(flags, env=env) as process:
        assert process.grpc_target.startswith("127.0.0.1:"), process.log
        with httpx.Client(base_url=process.rest_url, timeout=30) as client:
            client.grpc_target = process.grpc_target
            yield client, process


def _post(client, path, body):
    response = client.post(path, content=body if isinstance(body, bytes) else json.dumps(body).encode())
    return response.status_code, response.json()


# (path, body, expected JSON): g3doc/api_rest.md's examples and the handler tests' OK cases.
OK_CASES = [
    ("/v1/models/half_plus_two:predict", b'{"instances": [1.0, 2.0, 5.0]}', {"predictions": [2.5, 3.0, 4.5]}),
    ("/v1/models/half_plus_three:predict", b'{"instances": [1.0, 2.0, 5.0]}', {"predictions": [3.5, 4.0, 5.5]}),
    ("/v1/models/half_plus_three:regress",
     {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}, {"results": [3.5, 4.0]}),
    (f"/v1/models/{TWO_VERSIONS}:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]},
     {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    (f"/v1/models/{TWO_VERSIONS}/versions/123:predict", {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{TWO_VERSIONS}/labels/Version_Label:predict", {"instances": [1.0, 2.0]},
     {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{TWO_VERSIONS}/versions/123:predict", {"signature_name": "serving_default", "instances": [3.0, 4.0]},
     {"predictions": [3.5, 4.0]}),
    (f"/v1/models/{TWO_VERSIONS}/versions/123:predict", {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
     {"outputs": [3.5, 4.0]}),
    (f"/v1/models/{TWO_VERSIONS}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
     {"results": [42]}),
    (f"/v1/models/{TWO_VERSIONS}/labels/Version_Label:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    (f"/v1/models/{TWO_VERSIONS}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]},
     {"results": [[["", 12]]]}),
    (f"/v1/models/{TWO_VERSIONS}/labels/Version_Label:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]}, {"results": [[["", 7]]]}),
]

# (method, path, body, status, fragment): the handler tests' error cases.
ERROR_CASES = [
    ("GET", "/v1/foo", b"", 400, "Malformed request"),
    ("POST", "/v1/foo", b"", 400, "Malformed request"),
    ("GET", "/v1/models/debug/model_name", b"", 400, "Malformed request"),
    ("POST", "/v1/models", b"", 400, "Malformed request"),
    ("GET", "/v1/models/foo:predict", b"", 400, "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", b"", 400, "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", b"", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", b"", 400, "Malformed request"),
    ("POST", "/v1/models/foo/metadata", b"", 400, "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", b"", 400, "Malformed request"),
    ("POST", "/v1/models/foo:predict", b'{ "instances": [1] }', 404, "Servable not found"),
    ("POST", "/v1/models/foo/versions/50:predict", b'{ "instances": [1] }', 404, "Servable not found"),
    ("POST", f"/v1/models/{TWO_VERSIONS}99:predict", b'{ "instances": [1] }', 404, "Servable not found"),
    ("POST", f"/v1/models/{TWO_VERSIONS}/versions/124:predict", b'{ "instances": [1] }', 404, "Servable not found"),
    ("POST", f"/v1/models/{TWO_VERSIONS}:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", f"/v1/models/{TWO_VERSIONS}:predict", b"instances = [1, 2]", 400, "JSON Parse error"),
    ("POST", f"/v1/models/{TWO_VERSIONS}:predict", b'{ "instances": ["x", "y"] }', 400, "number"),
    ("POST", f"/v1/models/{TWO_VERSIONS}/labels/nope:predict", b'{ "instances": [1] }', 400,
     "Unrecognized servable version label"),
    ("POST", f"/v1/models/{TWO_VERSIONS}:predict", b'{ "signature_name": 100 }', 400, "'signature_name'"),
]


@pytest.mark.parametrize("path,body,expected", OK_CASES, ids=[f"ok{i}" for i in range(len(OK_CASES))])
def test_tf_serving_examples_answer_as_documented(server, path, body, expected):
    client, _ = server
    status, answer = _post(client, path, body)
    assert status == 200 and answer == expected, answer


@pytest.mark.parametrize("method,path,body,status,fragment", ERROR_CASES,
                         ids=[f"err{i}" for i in range(len(ERROR_CASES))])
def test_tf_serving_error_cases(server, method, path, body, status, fragment):
    client, _ = server
    response = client.request(method, path, content=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_status_and_metadata_of_a_tf1_model(server):
    client, _ = server
    assert client.get("/v1/models/half_plus_three").json() == {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    metadata = client.get(f"/v1/models/{TWO_VERSIONS}/versions/123/metadata").json()
    assert metadata["model_spec"] == {"name": TWO_VERSIONS, "signature_name": "", "version": "123"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(signatures)


def test_gzip_body_and_metrics_under_tf_serving_names(server):
    client, _ = server
    response = client.post("/v1/models/half_plus_two:predict", content=gzip.compress(b'{"instances": [1.0]}'),
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {"predictions": [2.5]}
    text = client.get("/monitoring/prometheus/metrics").text
    assert re.search(r':tensorflow:serving:request_count\{model_name="half_plus_two",status="OK"\} [1-9]', text)
    assert ':tensorflow:serving:request_latency_bucket{model_name="half_plus_two",API="predict"' in text


def test_start_up_is_quiet(server):
    _, process = server
    log = process.log
    for noise in ("Traceback", "FutureWarning", "DeprecationWarning", "cuda", "CUDA", "is deprecated"):
        assert noise not in log, log


# ------------------------------------------------------------------ gRPC, with TF Serving's own client stubs


@pytest.fixture(scope="module")
def stubs(server):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    client, _ = server
    with grpc.insecure_channel(client.grpc_target) as channel:
        yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))


def test_grpc_predict_as_tf_serving_clients_call_it(stubs):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0], [2.0], [5.0]], dtype=tf.float32))
    response = prediction.Predict(request, timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0], [4.5]]
    assert (response.model_spec.name, response.model_spec.version.value) == ("half_plus_two", 123)
    request.model_spec.name = TWO_VERSIONS
    request.model_spec.version_label = "Version_Label"
    assert tf.make_ndarray(prediction.Predict(request, timeout=30).outputs["y"]).tolist() == [[2.5], [3.0], [4.5]]


def test_grpc_classify_regress_metadata_and_status(stubs):
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        regression_pb2,
    )

    prediction, model = stubs
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = TWO_VERSIONS
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(80.0)
    assert [r.value for r in prediction.Regress(request, timeout=30).result.regressions] == [42.0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = TWO_VERSIONS
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(20.0)
    result = prediction.Classify(request, timeout=30).result.classifications[0].classes[0]
    assert (result.label, result.score) == ("", 12.0)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_three"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    prediction.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signature_map)
    assert "serving_default" in signature_map.signature_def
    status = model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "half_plus_three"}), timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [(123, 30)]  # 30: AVAILABLE


def test_grpc_errors_carry_tf_serving_codes(stubs):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "Servable not found" in info.value.details()
    request.model_spec.name = "half_plus_two"
    request.model_spec.version_label = "beta"
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _multi_inference_request(tasks):
    from tensorflow_serving.apis import inference_pb2

    request = inference_pb2.MultiInferenceRequest()
    for name, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = name
        task.model_spec.signature_name = signature
    for x in (20.0, 80.0):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


def test_grpc_multi_inference_runs_each_task_on_the_same_examples(stubs):
    prediction, _ = stubs
    classify, regress = "tensorflow/serving/classify", "tensorflow/serving/regress"
    response = prediction.MultiInference(_multi_inference_request(
        [(TWO_VERSIONS, "classify_x_to_y", classify), (TWO_VERSIONS, "regress_x_to_y", regress)]), timeout=30)
    first, second = response.results
    assert [c.classes[0].score for c in first.classification_result.classifications] == [12.0, 42.0]
    assert [r.value for r in second.regression_result.regressions] == [12.0, 42.0]
    assert (first.model_spec.signature_name, second.model_spec.version.value) == ("classify_x_to_y", 123)


@pytest.mark.parametrize("tasks,code,fragment", [
    ([("half_plus_two", "classify_x_to_y", "tensorflow/serving/classify"),
      ("half_plus_three", "classify_x_to_y", "tensorflow/serving/classify")], "INVALID_ARGUMENT", "same model name"),
    ([(TWO_VERSIONS, "regress_x_to_y", "tensorflow/serving/regress")] * 2, "INVALID_ARGUMENT",
     "Duplicate evaluation of signature: regress_x_to_y"),
    ([(TWO_VERSIONS, "serving_default", "tensorflow/serving/predict")], "UNIMPLEMENTED",
     "Unsupported signature method_name: tensorflow/serving/predict"),
])
def test_grpc_multi_inference_refuses_what_tf_serving_refuses(stubs, tasks, code, fragment):
    import grpc

    prediction, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        prediction.MultiInference(_multi_inference_request(tasks), timeout=30)
    assert info.value.code() == getattr(grpc.StatusCode, code) and fragment in info.value.details()
