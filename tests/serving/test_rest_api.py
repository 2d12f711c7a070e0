"""The REST API over Starlette's TestClient: every endpoint and status, answers equal to in-process calls."""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from serving.compat import message_to_dict
from serving.servable import read_meta_graph

from .conftest import MAX_REQUEST_BYTES, close, example_proto

ROWS = [{"occupation": "Sales", "age": 39.0}, {"occupation": "Exec-managerial", "age": 52.5},
        {"occupation": "", "age": 17.0}]


def _columns(rows):
    return {"occupation": [r["occupation"] for r in rows], "age": [float(r["age"]) for r in rows]}


def _reference_multi(reference, version, rows=ROWS):
    fn = reference[f"multi_v{version}"].signatures["serving_default"]
    cols = _columns(rows)
    out = fn(occupation=tf.constant(cols["occupation"]), age=tf.constant(cols["age"], tf.float32))
    return {k: v.numpy() for k, v in out.items()}


# ------------------------------------------------------------------ status and metadata


def test_status_has_tf_serving_shape(app_client):
    response = app_client.get("/v1/models/single")
    assert response.status_code == 200
    assert response.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_status_of_versions_and_labels(app_client):
    both = app_client.get("/v1/models/multi").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in both] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    one = app_client.get("/v1/models/multi/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]
    assert app_client.get("/v1/models/multi/labels/canary").json()["model_version_status"][0]["version"] == "2"
    assert app_client.get("/v1/models/multi/labels/stable").json()["model_version_status"][0]["version"] == "1"


def test_metadata_matches_saved_model_signature_defs(app_client, served):
    response = app_client.get("/v1/models/multi/versions/1/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": "multi", "version": "1", "signature_name": ""}
    signature_defs = body["metadata"]["signature_def"]["signature_def"]
    path = next(c.base_path for c in served.model_config_list.config if c.name == "multi") + "/1"
    expected = {k: message_to_dict(v) for k, v in read_meta_graph(path).signature_def.items()}
    assert signature_defs == expected
    assert signature_defs["classify_income_50k"]["method_name"] == "tensorflow/serving/classify"
    age = signature_defs["serving_default"]["inputs"]["age"]
    assert age["dtype"] == "DT_FLOAT" and age["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


def test_metadata_by_label_and_latest(app_client):
    assert app_client.get("/v1/models/multi/labels/stable/metadata").json()["model_spec"]["version"] == "1"
    assert app_client.get("/v1/models/multi/metadata").json()["model_spec"]["version"] == "2"


# ------------------------------------------------------------------ predict


@pytest.mark.parametrize("version", [1, 2])
def test_row_predictions_equal_in_process_call(app_client, reference, version):
    response = app_client.post(f"/v1/models/multi/versions/{version}:predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = _reference_multi(reference, version)
    assert len(predictions) == len(ROWS)
    for key in ("income_50k", "never_married"):
        assert close([p[key] for p in predictions], expected[key])


def test_columnar_predictions_equal_in_process_call(app_client, reference):
    response = app_client.post("/v1/models/multi:predict", json={"inputs": _columns(ROWS)})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    expected = _reference_multi(reference, 2)  # no version: the latest
    assert set(outputs) == {"income_50k", "never_married"}
    for key, value in expected.items():
        assert close(outputs[key], value)


def test_single_output_drops_the_output_name(app_client, reference):
    x = [[1.0, 2.0, 3.0], [0.1, -0.2, 0.3]]
    expected = reference["single"].signatures["serving_default"](x=tf.constant(x))["y"].numpy()
    rows = app_client.post("/v1/models/single:predict", json={"instances": x}).json()
    assert isinstance(rows["predictions"][0], float) and close(rows["predictions"], expected)
    named_rows = app_client.post("/v1/models/single:predict", json={"instances": [{"x": v} for v in x]}).json()
    assert close(named_rows["predictions"], expected)
    columns = app_client.post("/v1/models/single:predict", json={"inputs": x}).json()
    assert close(columns["outputs"], expected)
    named_columns = app_client.post("/v1/models/single:predict", json={"inputs": {"x": x}}).json()
    assert close(named_columns["outputs"], expected)


def test_binary_inputs_and_outputs_as_b64(app_client, reference):
    payloads = [b"\x00\x01\xff\xfe", "héllo".encode(), b"z"]
    instances = [{"b64": base64.b64encode(p).decode()} for p in payloads]
    response = app_client.post("/v1/models/bytes:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    expected = reference["bytes"].signatures["serving_default"](payload=tf.constant(payloads))
    predictions = response.json()["predictions"]
    assert [p["length"] for p in predictions] == expected["length"].numpy().tolist()
    # Outputs named *_bytes always come back base64-encoded.
    prefixes = [base64.b64decode(p["prefix_bytes"]["b64"]) for p in predictions]
    assert prefixes == expected["prefix_bytes"].numpy().tolist()


def test_serialized_tf_example_signature(app_client, reference):
    serialized = [example_proto(r["occupation"], float(r["age"])) for r in ROWS]
    instances = [{"b64": base64.b64encode(s).decode()} for s in serialized]
    body = {"signature_name": "serving_tf_example", "instances": instances}
    predictions = app_client.post("/v1/models/multi:predict", json=body).json()["predictions"]
    expected = _reference_multi(reference, 2)
    for key, value in expected.items():
        assert close([p[key] for p in predictions], value)
    columnar = {"signature_name": "serving_tf_example", "inputs": {"examples": instances}}
    outputs = app_client.post("/v1/models/multi:predict", json=columnar).json()["outputs"]
    assert close(outputs["income_50k"], expected["income_50k"])


def test_label_routes_to_its_version(app_client, reference):
    stable = app_client.post("/v1/models/multi/labels/stable:predict", json={"instances": ROWS}).json()
    assert close([p["income_50k"] for p in stable["predictions"]], _reference_multi(reference, 1)["income_50k"])


def test_float32_outputs_are_written_shortest(app_client):
    text = app_client.post("/v1/models/single:predict", json={"instances": [[0.1, 0.0, 0.0]]}).text
    assert text == '{"predictions":[0.3]}'  # 0.5 * 0.1 + 0.25 in float32, not 0.30000001192092896


# ------------------------------------------------------------------ classify and regress


def test_classify_equals_in_process_call(app_client, reference):
    body = {"signature_name": "classify_income_50k", "examples": ROWS}
    response = app_client.post("/v1/models/multi:classify", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    serialized = tf.constant([example_proto(r["occupation"], float(r["age"])) for r in ROWS])
    expected = reference["multi_v2"].signatures["classify_income_50k"](inputs=serialized)
    assert [[c[0] for c in row] for row in results] == [["<=50K", ">50K"]] * len(ROWS)
    assert close([[c[1] for c in row] for row in results], expected["scores"].numpy())


def test_classify_context_is_merged_into_each_example(app_client):
    merged = {"signature_name": "classify_income_50k", "context": {"occupation": "Sales"},
              "examples": [{"age": 39.0}, {"age": 60.0, "occupation": "Tech"}]}
    explicit = {"signature_name": "classify_income_50k",
                "examples": [{"age": 39.0, "occupation": "Sales"}, {"age": 60.0, "occupation": "Tech"}]}
    a = app_client.post("/v1/models/multi:classify", json=merged).json()["results"]
    b = app_client.post("/v1/models/multi:classify", json=explicit).json()["results"]
    assert a == b


def test_integer_feature_for_a_float_column_is_a_400_from_the_model(app_client):
    # As in TF Serving, 17 (no decimal point) is an int64_list; the model's parser wants floats.
    body = {"signature_name": "classify_income_50k", "examples": [{"occupation": "a", "age": 17}]}
    message = _error(app_client.post("/v1/models/multi:classify", json=body), 400)
    assert "age" in message and "int64" in message


def test_regress_equals_in_process_call(app_client, reference):
    body = {"signature_name": "regress_never_married", "examples": ROWS}
    response = app_client.post("/v1/models/multi/versions/1:regress", json=body)
    assert response.status_code == 200, response.text
    serialized = tf.constant([example_proto(r["occupation"], float(r["age"])) for r in ROWS])
    expected = reference["multi_v1"].signatures["regress_never_married"](inputs=serialized)["outputs"].numpy()
    assert close(response.json()["results"], expected[:, 0])


# ------------------------------------------------------------------ error statuses


def _error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


def test_unknown_model_version_and_label_as_tf_serving_answers(app_client):
    assert "model 'nope' not found" in _error(app_client.get("/v1/models/nope"), 404)
    assert "Specific(multi, 9)" in _error(app_client.post("/v1/models/multi/versions/9:predict",
                                                          json={"instances": ROWS}), 404)
    assert "Unrecognized servable version label: beta" in _error(
        app_client.get("/v1/models/multi/labels/beta/metadata"), 400)


def test_a_model_without_a_loaded_version_is_404_servable_not_found(app_client):
    message = _error(app_client.post("/v1/models/empty:predict", json={"instances": [1]}), 404)
    assert message.startswith("Servable not found for request: Latest(empty)")
    assert "Could not find any versions" in _error(app_client.get("/v1/models/empty"), 404)


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/models/multi:multi_inference"), ("GET", "/v1/models/single:predict"),
    ("POST", "/v1/models/single"), ("GET", "/v1/models/multi/versions"), ("GET", "/v2/anything"),
    ("PUT", "/v1/models/single:predict"), ("POST", "/monitoring/prometheus/metrics"),
])
def test_outside_the_grammar_is_400_malformed_request(app_client, method, path):
    response = app_client.request(method, path, content=b"{}")
    assert _error(response, 400) == f"Malformed request: {method} {path}"


def test_url_keywords_match_case_insensitively(app_client):
    response = app_client.post("/V1/Models/single/VERSIONS/1:PREDICT", json={"instances": [[1.0, 2.0, 3.0]]})
    assert response.status_code == 200 and response.json() == {"predictions": [4.75]}
    assert _error(app_client.get("/v1/models/SINGLE"), 404)  # names stay case-sensitive


def test_500_for_an_internal_failure_inside_the_model(app_client):
    message = _error(app_client.post("/v1/models/broken:predict", json={"instances": [1.0]}), 500)
    assert "internal error" in message and "/nonexistent/tfmtl-serving-test/file" in message


def test_429_when_too_many_requests_are_in_flight(app_client):
    limiter = app_client.app.state.limiter
    held = 0
    while limiter.try_acquire():  # occupy every slot, as concurrent slow requests would
        held += 1
    try:
        assert held == limiter.limit
        assert "too many requests" in _error(app_client.post("/v1/models/single:predict",
                                                             json={"instances": [[1, 2, 3]]}), 429)
        assert app_client.get("/v1/models/single").status_code == 200  # status is not rate limited
    finally:
        for _ in range(held):
            limiter.release()
    assert app_client.post("/v1/models/single:predict", json={"instances": [[1, 2, 3]]}).status_code == 200


def test_413_for_a_body_over_the_limit(app_client):
    body = b'{"instances": [' + b"[1,2,3]," * (MAX_REQUEST_BYTES // 8) + b"[1,2,3]]}"
    assert "limit" in _error(app_client.post("/v1/models/single:predict", content=body), 413)


def test_413_for_a_streamed_body_without_content_length(app_client):
    def chunks():
        yield b'{"instances": ['
        for _ in range(MAX_REQUEST_BYTES // 8000 + 1):
            yield b"[1,2,3]," * 1000

    assert "limit" in _error(app_client.post("/v1/models/single:predict", content=chunks()), 413)


def test_metrics_endpoint(app_client):
    app_client.post("/v1/models/single:predict", json={"instances": [[1, 2, 3]]})
    app_client.get("/v1/models/nope")
    text = app_client.get("/monitoring/prometheus/metrics").text
    assert 'tfmtl_serving_requests_total{api="predict",model="single",status="200"}' in text
    assert 'tfmtl_serving_requests_total{api="status",model="-",status="404"}' in text  # unknown names unlabelled
    assert 'tfmtl_serving_warmup_records_total{model="multi"} 3.0' in text
    assert "tfmtl_serving_request_latency_seconds_bucket" in text


def test_non_finite_outputs_are_written_as_tf_serving_does(app_client):
    # A finite input overflowing in the model: float32 max * 2 -> inf; the answer is still JSON-ish, not a 500.
    big = float(np.finfo(np.float32).max)
    response = app_client.post("/v1/models/single:predict", json={"instances": [[0.0, 0.0, big]]})
    assert response.status_code == 200 and response.json()["predictions"] == [float("inf")]


def test_gzip_and_deflate_request_bodies(app_client):
    import gzip
    import zlib

    body = json.dumps({"instances": [[1.0, 2.0, 3.0]]}).encode()
    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        response = app_client.post("/v1/models/single:predict", content=data,
                                   headers={"content-type": "application/json", "content-encoding": encoding})
        assert response.status_code == 200 and response.json() == {"predictions": [4.75]}, response.text
    bomb = gzip.compress(b" " * (MAX_REQUEST_BYTES + 10))  # small on the wire, over the limit inflated
    response = app_client.post("/v1/models/single:predict", content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413 and "inflated" in response.json()["error"]


def test_rest_api_timeout_answers_504(zoo, tmp_path):
    import time

    from starlette.testclient import TestClient

    from serving.app import create_app
    from serving.manager import ModelManager

    from .conftest import install, server_config

    install(zoo["single"], str(tmp_path / "single"), 1)
    app = create_app(ModelManager(server_config({"single": str(tmp_path / "single")}), poll_wait_seconds=0),
                     timeout_ms=200)
    slow = app.state.rest.predict
    app.state.rest.predict = lambda path, body: (time.sleep(1.0), slow(path, body))[1]  # a hung model
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.post("/v1/models/single:predict", json={"instances": [[1.0, 2.0, 3.0]]})
        assert response.status_code == 504 and "Deadline exceeded" in response.json()["error"]
        assert time.monotonic() - started < 0.9
