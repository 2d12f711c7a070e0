"""Bad requests: each gets the right 4xx and a message naming the problem; the server keeps answering."""

import json

import pytest

MULTI = "/v1/models/multi:predict"
SINGLE = "/v1/models/single:predict"
BYTES = "/v1/models/bytes:predict"
CLASSIFY = "/v1/models/multi:classify"
REGRESS = "/v1/models/multi:regress"
ROW = {"occupation": "Sales", "age": 39.0}
CLS = "classify_income_50k"


def _raw(text: str) -> bytes:
    return text.encode("utf-8")


# (id, url, body: dict/list -> JSON, bytes -> sent as is, expected status, fragments the message must contain)
CASES = [
    ("malformed-json", MULTI, _raw('{"instances": ['), 400, ["JSON Parse error", "line 1"]),
    ("empty-body", MULTI, b"", 400, ["JSON Parse error: The document is empty"]),
    ("not-utf8", MULTI, b'{"instances": ["\xff"]}', 400, ["UTF-8"]),
    ("body-is-array", MULTI, [ROW], 400, ["must be a JSON object", "array"]),
    ("both-formats", MULTI, {"instances": [ROW], "inputs": {"age": [1.0]}}, 400, ["both 'instances'", "'inputs'"]),
    ("neither-format", MULTI, {"signature_name": "serving_default"}, 400, ["neither 'instances'", "'inputs'"]),
    ("misspelt-instances-key", MULTI, {"instance": [ROW]}, 400, ["neither 'instances'"]),
    ("signature-name-not-string", MULTI, {"signature_name": 3, "instances": [ROW]}, 400, ["'signature_name'",
                                                                                         "string"]),
    ("unknown-signature", MULTI, {"signature_name": "nope", "instances": [ROW]}, 400,
     ['Serving signature key "nope" not found.', "serving_default"]),
    ("instances-not-array", MULTI, {"instances": ROW}, 400, ["'instances' must be a JSON array"]),
    ("empty-batch-rows", MULTI, {"instances": []}, 400, ["'instances' is empty"]),
    ("instance-not-object", MULTI, {"instances": [["Sales", 39.0]]}, 400, ["instances[0]", "JSON object",
                                                                            "occupation"]),
    ("missing-feature", MULTI, {"instances": [ROW, {"occupation": "Sales"}]}, 400, ["instances[1]", "missing",
                                                                                    "'age'"]),
    ("extra-feature", MULTI, {"instances": [dict(ROW, zip="94110")]}, 400, ["instances[0]", "unknown input",
                                                                            "'zip'"]),
    ("string-for-float", MULTI, {"instances": [dict(ROW, age="39")]}, 400,
     ['JSON Value: "39" Type: String is not of expected type: float', "instances[0]['age']", "a number"]),
    ("number-for-string", MULTI, {"instances": [dict(ROW, occupation=7)]}, 400, ["instances[0]['occupation']",
                                                                                 "must be a string"]),
    ("bool-for-float", MULTI, {"instances": [dict(ROW, age=True)]}, 400,
     ["JSON Value: true Type: True is not of expected type: float", "instances[0]['age']"]),
    ("null-for-float", MULTI, {"instances": [dict(ROW, age=None)]}, 400, ["instances[0]['age']", "null"]),
    ("huge-integer", MULTI, _raw('{"instances": [{"occupation": "a", "age": 1' + "0" * 400 + '}]}'), 400,
     ["instances[0]['age']", "too large"]),
    ("float32-overflow", MULTI, {"instances": [dict(ROW, age=1e39)]}, 400, ["'age'", "out of range", "DT_FLOAT"]),
    ("ragged-rows", SINGLE, {"instances": [[1, 2, 3], [1, 2]]}, 400, ["ragged", "instances[1]"]),
    ("wrong-row-width", SINGLE, {"instances": [[1, 2]]}, 400, ["Incompatible shapes"]),  # the graph decides
    ("ragged-columnar", SINGLE, {"inputs": [[1, 2, 3], [1, 2]]}, 400, ["ragged list", "inputs"]),
    ("mixed-named-and-bare", SINGLE, {"instances": [[1, 2, 3], {"x": [1, 2, 3]}]}, 400, ["instances[0]",
                                                                                       "one form"]),
    ("columnar-missing-input", MULTI, {"inputs": {"occupation": ["a"]}}, 400, ["Missing named input: age",
                                                                             "'inputs'"]),
    ("columnar-bare-for-two-inputs", MULTI, {"inputs": [1.0, 2.0]}, 400, ["'inputs' must be a JSON object",
                                                                        "occupation"]),
    ("columnar-wrong-rank", SINGLE, {"inputs": [1.0, 2.0, 3.0]}, 400, ["Invalid reduction dimension"]),
    ("bad-base64", BYTES, {"instances": [{"b64": "not base64!!"}]}, 400, ["instances[0]", "not valid base64"]),
    ("b64-not-string", BYTES, {"instances": [{"b64": 12}]}, 400, ["'b64' must be a string"]),
    ("deeply-nested-json", SINGLE, _raw('{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}"), 400,
     ["nested too deeply"]),
    ("classify-without-examples", CLASSIFY, {"signature_name": CLS}, 400, ["no 'examples'"]),
    ("classify-empty-examples", CLASSIFY, {"signature_name": CLS, "examples": []}, 400, ["'examples' is empty"]),
    ("classify-example-not-object", CLASSIFY, {"signature_name": CLS, "examples": [[1, 2]]}, 400,
     ["examples[0]", "JSON object"]),
    ("classify-mixed-feature-types", CLASSIFY, {"signature_name": CLS, "examples": [{"age": [1.0, "x"]}]}, 400,
     ["examples[0]['age']", "mixes strings and numbers"]),
    ("classify-nested-feature", CLASSIFY, {"signature_name": CLS, "examples": [{"age": [[1.0]]}]}, 400,
     ["examples[0]['age'][0]", "flat list"]),
    ("classify-bad-context", CLASSIFY, {"signature_name": CLS, "context": [1], "examples": [ROW]}, 400,
     ["context", "JSON object"]),
    ("classify-null-feature", CLASSIFY, {"signature_name": CLS, "examples": [dict(ROW, age=None)]}, 400,
     ["examples[0]['age']", "null"]),
    # Without --enable_signature_method_name_check (TF Serving's default) the signature's shape decides.
    ("classify-on-predict-signature", CLASSIFY, {"examples": [ROW]}, 400, ["Expected one input Tensor.",
                                                                          "'serving_default'"]),
    ("regress-on-classify-signature", REGRESS, {"signature_name": CLS, "examples": [ROW]}, 400,
     ["Expected one output Tensor.", "'classify_income_50k'"]),
    ("unknown-model", "/v1/models/nope:predict", {"instances": [ROW]}, 404,
     ["Servable not found for request: Latest(nope)"]),
    ("unknown-version", "/v1/models/multi/versions/7:predict", {"instances": [ROW]}, 404,
     ["Servable not found for request: Specific(multi, 7)"]),
    ("unknown-label", "/v1/models/multi/labels/beta:predict", {"instances": [ROW]}, 400,
     ["Unrecognized servable version label: beta"]),
    ("dot-dot-name", "/v1/models/%2E%2E:predict", {"instances": [ROW]}, 400, ["model name '..'", "invalid"]),
    ("encoded-slash-name", "/v1/models/multi%2F..%2Fsingle:predict", {"instances": [ROW]}, 400,
     ["model name 'multi/../single'", "separators"]),
    ("encoded-slash-label", "/v1/models/multi/labels/a%2Fb:predict", {"instances": [ROW]}, 400,
     ["label 'a/b'", "invalid"]),
    ("non-integer-version", "/v1/models/multi/versions/1.5:predict", {"instances": [ROW]}, 400,
     ["Malformed request: POST /v1/models/multi/versions/1.5:predict"]),
    ("bad-percent-encoding", "/v1/models/%ff:predict", {"instances": [ROW]}, 400, ["percent-encoded UTF-8"]),
]


@pytest.mark.parametrize("url,body,status,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_refused_with_a_precise_message(app_client, url, body, status, fragments):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = app_client.post(url, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # The server is still answering, and correctly.
    ok = app_client.post(MULTI, json={"instances": [ROW]})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 28 and len({c[0] for c in CASES}) == len(CASES)


# What TF Serving accepts and this server must accept too (it feeds the tensors and lets the graph decide).
LENIENT = [
    ("nan-literal", MULTI, _raw('{"instances": [{"occupation": "a", "age": NaN}]}'), {"predictions": [
        {"income_50k": [float("nan")], "never_married": [float("nan")]}]}),
    ("infinity-literal", MULTI, _raw('{"instances": [{"occupation": "a", "age": -Infinity}]}'), None),
    ("unknown-top-level-key", MULTI, {"instances": [ROW], "model_version": 3}, None),
    ("columnar-extra-input", MULTI, {"inputs": {"occupation": ["a"], "age": [1.0], "zip": [1]}}, None),
    ("columnar-empty-batch", MULTI, {"inputs": {"occupation": [], "age": []}},
     {"outputs": {"income_50k": [], "never_married": []}}),
    ("classify-empty-feature", CLASSIFY, {"signature_name": CLS, "examples": [{"age": [], "occupation": "a"}]},
     None),
    ("classify-bool-feature", CLASSIFY, {"signature_name": CLS, "examples": [dict(ROW, married=True)]}, None),
    ("classify-nan-feature", CLASSIFY, {"signature_name": CLS, "examples": [dict(ROW, age=float("nan"))]}, None),
    ("classify-unknown-key", CLASSIFY, {"signature_name": CLS, "examples": [ROW], "instances": []}, None),
]


@pytest.mark.parametrize("url,body,expected", [c[1:] for c in LENIENT], ids=[c[0] for c in LENIENT])
def test_what_tf_serving_accepts_is_accepted(app_client, url, body, expected):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = app_client.post(url, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    if expected is not None:
        assert json.dumps(response.json(), sort_keys=True) == json.dumps(expected, sort_keys=True)
