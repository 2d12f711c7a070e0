"""Fuzzed codecs: random and mutated requests through the real decoding paths never get INTERNAL / 500.

The property, for the REST JSON decoder (body bytes -> JSON -> tensors or tf.Examples) and for the
gRPC TensorProto and tf.Example decoders (request protos -> the servicer): every input is answered,
or refused with a ServingError whose code is a client's (INVALID_ARGUMENT, NOT_FOUND, ...), never
INTERNAL or UNKNOWN, with a message of bounded length. What a request may make the server allocate
is bounded by --max_fill_elements (traced with tracemalloc below). ``TFMTL_FUZZ_EXAMPLES`` sets the
cases per test (CI: 1,500; the closing runs of issue 34 used 10,000). The ``*_CORPUS`` lists keep the
hostile cases found by hand and by the fuzzer as regression tests.
"""

from __future__ import annotations

import json
import os
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import codec
from serving.app import parse_json_body
from serving.errors import ServingError
from serving.grpc_server import _PredictionServicer
from serving.manager import ModelManager
from serving.rest import RestApi
from serving.service import PredictionService
from serving.urls import ModelPath

from .conftest import install, server_config

EXAMPLES = int(os.environ.get("TFMTL_FUZZ_EXAMPLES", "1500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
HALF_PLUS_THREE = os.path.join(os.path.dirname(__file__), "testdata", "tf_serving", "saved_model_half_plus_three")
CLIENT_CODES = {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "OUT_OF_RANGE", "RESOURCE_EXHAUSTED",
                "UNIMPLEMENTED"}
FILL_LIMIT = 10_000  # small, so that a case that reaches the limit stays cheap


class Mixed(tf.Module):
    """Inputs of five dtypes; classify and regress over tf.Examples with three kinds of features."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable([0.5, -1.0])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="f"),
                                  tf.TensorSpec([None, 2], tf.int64, name="i"),
                                  tf.TensorSpec([None], tf.string, name="s"),
                                  tf.TensorSpec([None], tf.bool, name="b"),
                                  tf.TensorSpec([None], tf.float64, name="d")])
    def serve(self, f, i, s, b, d):
        score = f + tf.reduce_sum(tf.cast(i, tf.float32) * self.w, axis=1) + tf.cast(tf.strings.length(s), tf.float32)
        return {"y": score * tf.cast(b, tf.float32) + tf.cast(d, tf.float32), "ids": i}

    def _parse(self, serialized):
        features = tf.io.parse_example(serialized, {
            "f": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
            "i": tf.io.FixedLenFeature([2], tf.int64, default_value=[0, 0]),
            "s": tf.io.FixedLenFeature([], tf.string, default_value="")})
        return features["f"] + tf.reduce_sum(tf.cast(features["i"], tf.float32) * self.w, axis=1) + tf.cast(
            tf.strings.length(features["s"]), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        p = tf.sigmoid(self._parse(inputs))[:, None]
        classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(p)[0], 1])
        return {"scores": tf.concat([1.0 - p, p], axis=1), "classes": classes}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._parse(inputs)[:, None]}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    module = Mixed()
    tf.saved_model.save(module, str(root / "mixed_src"), signatures={
        "serving_default": module.serve, "classify": module.classify, "regress": module.regress})
    install(str(root / "mixed_src"), str(root / "mixed"), 1)
    manager = ModelManager(server_config({"mixed": str(root / "mixed"), "tf1": HALF_PLUS_THREE}),
                           poll_wait_seconds=0, enable_warmup=False)
    manager.start()
    manager.wait_until_available()
    yield PredictionService(manager, max_fill_elements=FILL_LIMIT)
    manager.stop()


def _answered(call) -> str:
    """Run one request: 'OK', or the client's error code; anything else fails the property."""
    try:
        call()
    except ServingError as e:
        assert e.code in CLIENT_CODES, f"{e.code}: {e.message}"
        assert len(e.message) <= 2100, len(e.message)
        event(f"{e.code}: {e.message[:25]}")  # --hypothesis-show-statistics: what the cases reached
        return e.code
    event("OK")
    return "OK"


class _Aborted(Exception):
    def __init__(self, code, details: str):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class _Context:
    """The part of grpc.ServicerContext the servicers use."""

    def abort(self, code, details):
        raise _Aborted(code, details)

    def is_active(self) -> bool:
        return True


def _rpc(method, request) -> str:
    try:
        method(request, _Context())
    except _Aborted as e:
        assert e.code.name in CLIENT_CODES, f"{e.code.name}: {e.details}"
        assert len(e.details) <= 2100, len(e.details)
        event(f"{e.code.name}: {e.details[:25]}")
        return e.code.name
    event("OK")
    return "OK"


# ---------------------------------------------------------------------------- REST

def _mostly(common: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """``common`` nine times in ten (``a | b`` would draw each half the time)."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 0 else common)


NAMES = ["f", "i", "s", "b", "d", "x", "y", "inputs", ""]
REST_NAMES = _mostly(st.sampled_from(["f", "i", "s", "b", "d", "x"]), st.sampled_from(NAMES) | st.text(max_size=4))
SIGNATURES = ["serving_default", "classify", "regress", "tensorflow/serving/predict", "nope", "", "x" * 5000]


# Mostly what the models serve, so that most cases get past the lookups into the decoders.
MODEL_NAMES = _mostly(st.sampled_from(["mixed"] * 2 + ["tf1"]), st.sampled_from(["", "missing", "m" * 300])
                      | st.text(max_size=6))
PREDICT_SIGNATURES = _mostly(st.sampled_from(["", "serving_default"]), st.sampled_from(SIGNATURES))
EXAMPLE_SIGNATURES = _mostly(st.sampled_from(["classify", "regress", "tensorflow/serving/regress"]),
                             st.sampled_from(SIGNATURES))
INPUT_NAMES = {"mixed": ["b", "d", "f", "i", "s"], "tf1": ["x"]}
JSON_LEAVES = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | st.floats()
               | st.text(max_size=8) | st.sampled_from(["\ud800", "NaN", "1.0", "abc"])
               | st.fixed_dictionaries({"b64": st.text(max_size=8) | st.integers()}))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=4), inner, max_size=4),
                           max_leaves=24)
BODIES = st.one_of(
    st.fixed_dictionaries({"instances": JSON_VALUES}, optional={"signature_name": st.sampled_from(SIGNATURES)}),
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(REST_NAMES, JSON_VALUES, max_size=6),
                                                 max_size=3)},
                          optional={"signature_name": st.sampled_from(SIGNATURES)}),
    st.fixed_dictionaries({"inputs": st.dictionaries(REST_NAMES, JSON_VALUES, max_size=6) | JSON_VALUES},
                          optional={"signature_name": st.sampled_from(SIGNATURES)}),
    st.fixed_dictionaries({"examples": st.lists(st.dictionaries(REST_NAMES, JSON_VALUES, max_size=4)
                                                | JSON_VALUES, max_size=3)},
                          optional={"signature_name": st.sampled_from(SIGNATURES), "context": JSON_VALUES}),
    JSON_VALUES,
)
VALID_BODIES = [
    b'{"instances": [{"f": 1.0, "i": [1, 2], "s": "a", "b": true, "d": 2.5}]}',
    b'{"inputs": {"f": [1.0], "i": [[1, 2]], "s": [{"b64": "YWJj"}], "b": [false], "d": [0.5]}}',
    b'{"signature_name": "classify", "examples": [{"f": 1.0, "i": [3, 4], "s": "z"}]}',
    b'{"instances": [1.0, 2.0, NaN]}',
]
TARGETS = [("mixed", None)] * 4 + [("tf1", None)] * 3 + [("mixed", 1), ("mixed", 7), ("missing", None)]


def _rest_call(service, model, version, verb: str, raw: bytes):
    api = RestApi(service)
    path = ModelPath(name=model, version=version, endpoint=verb)

    def call():
        codec.dumps(getattr(api, verb)(path, parse_json_body(raw, "", 1_000_000)))

    return call


def _mutated(data: st.DataObject, raw: bytes) -> bytes:
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(raw)), st.sampled_from(["flip", "insert", "delete"]),
                                         st.binary(min_size=1, max_size=3)), min_size=1, max_size=4))
    buffer = bytearray(raw)
    for position, kind, chunk in edits:
        position = min(position, len(buffer))
        if kind == "flip" and position < len(buffer):
            buffer[position] ^= chunk[0]
        elif kind == "insert":
            buffer[position:position] = chunk
        else:
            del buffer[position:position + len(chunk)]
    return bytes(buffer)


@FUZZ
@given(data=st.data())
def test_rest_json_decoder(service, data):
    kind = data.draw(st.sampled_from(["structured"] * 3 + ["mutated"] * 2 + ["raw"]))
    if kind == "structured":
        raw = json.dumps(data.draw(BODIES)).encode()  # ASCII, surrogates escaped, NaN as NaN
    elif kind == "mutated":
        raw = _mutated(data, data.draw(st.sampled_from(VALID_BODIES)))
    else:
        raw = data.draw(st.binary(max_size=64))
    model, version = data.draw(st.sampled_from(TARGETS))
    verb = data.draw(st.sampled_from(["predict", "classify", "regress"]))
    _answered(_rest_call(service, model, version, verb, raw))


# ---------------------------------------------------------------------------- gRPC TensorProto

DTYPES = sorted(set(types_pb2.DataType.values()) - {0}) + [0, 99, 1000]
FIELD_VALUES = {
    "float_val": st.floats(width=32), "double_val": st.floats(), "int_val": st.integers(-2**31, 2**31 - 1),
    "int64_val": st.integers(-2**63, 2**63 - 1), "bool_val": st.booleans(), "string_val": st.binary(max_size=6),
    "half_val": st.integers(0, 2**16 - 1), "scomplex_val": st.floats(width=32), "dcomplex_val": st.floats(),
    "uint32_val": st.integers(0, 2**32 - 1), "uint64_val": st.integers(0, 2**64 - 1),
}
COMMON_DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_STRING, types_pb2.DT_BOOL, types_pb2.DT_DOUBLE]


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(COMMON_DTYPES) | st.sampled_from(DTYPES)))
    if draw(st.integers(0, 20)) == 0:
        proto.tensor_shape.unknown_rank = True
    dims = draw(st.lists(st.integers(0, 4) | st.sampled_from([-1, -7, 2**20, 2**40, 2**62, 2**63 - 1]), max_size=4))
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    if draw(st.booleans()):
        proto.tensor_content = draw(st.binary(max_size=48))
    for field in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=2)):
        getattr(proto, field).extend(draw(st.lists(FIELD_VALUES[field], max_size=10)))
    return proto


VALID_INPUTS = {"f": np.array([1.0], np.float32), "i": np.array([[1, 2]], np.int64), "s": np.array([b"a"], object),
                "b": np.array([True]), "d": np.array([0.5])}


@st.composite
def predict_requests(draw) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model = draw(MODEL_NAMES)
    request.model_spec.signature_name = draw(PREDICT_SIGNATURES)
    if draw(st.integers(0, 4)) == 0:
        request.model_spec.version.value = draw(st.sampled_from([1, 123, 7, -1, 0]))
    if model in INPUT_NAMES and draw(st.integers(0, 4)):
        names = INPUT_NAMES[model]
    else:
        names = draw(st.lists(st.sampled_from(NAMES), max_size=6, unique=True))
    for name in names:
        choice = draw(st.integers(0, 4))
        if choice <= 1 and name in VALID_INPUTS:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(VALID_INPUTS[name]))
        elif choice == 2 and name in VALID_INPUTS:  # the right dtype, a fuzzed shape and values
            proto = draw(tensor_protos())
            proto.dtype = tf.make_tensor_proto(VALID_INPUTS[name]).dtype
            request.inputs[name].CopyFrom(proto)
        else:
            request.inputs[name].CopyFrom(draw(tensor_protos()))
    request.output_filter.extend(draw(st.lists(st.sampled_from(["y", "ids", "nope", "y"]), max_size=3)))
    return request


def _valid_predict() -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mixed"
    for name, value in VALID_INPUTS.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request.SerializeToString()


@pytest.fixture(scope="module")
def prediction(service):
    return _PredictionServicer(service)


@FUZZ
@given(request=predict_requests())
def test_grpc_tensor_proto_decoder(prediction, request):
    _rpc(prediction.Predict, request)


@FUZZ
@given(data=st.data())
def test_grpc_mutated_predict_requests(prediction, data):
    raw = _mutated(data, _valid_predict())
    try:
        request = predict_pb2.PredictRequest.FromString(raw)
    except Exception:  # noqa: BLE001 - grpcio refuses it before the servicer sees it
        return
    _rpc(prediction.Predict, request)


# ---------------------------------------------------------------------------- gRPC tf.Example

@st.composite
def features(draw) -> feature_pb2.Feature:
    feature = feature_pb2.Feature()
    kind = draw(st.sampled_from(["float", "int64", "bytes", "empty"]))
    if kind == "float":
        feature.float_list.value.extend(draw(st.lists(st.floats(width=32), max_size=4)))
    elif kind == "int64":
        feature.int64_list.value.extend(draw(st.lists(st.integers(-2**63, 2**63 - 1), max_size=4)))
    elif kind == "bytes":
        feature.bytes_list.value.extend(draw(st.lists(st.binary(max_size=6), max_size=4)))
    return feature


@st.composite
def example_protos(draw) -> example_pb2.Example:
    example = example_pb2.Example()
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=4, unique=True)):
        example.features.feature[name].CopyFrom(draw(features()))
    return example


@st.composite
def example_inputs(draw, request):
    if draw(st.booleans()):
        examples_ = request.input.example_list.examples
    else:
        with_context = request.input.example_list_with_context
        examples_ = with_context.examples
        if draw(st.booleans()):
            with_context.context.CopyFrom(draw(example_protos()))
    for example in draw(st.lists(example_protos(), max_size=3)):
        examples_.add().CopyFrom(example)
    return request


@st.composite
def example_requests(draw):
    api = draw(st.sampled_from(["Classify", "Regress", "MultiInference"]))
    model = draw(MODEL_NAMES)
    if api == "MultiInference":
        request = inference_pb2.MultiInferenceRequest()
        for _ in range(draw(st.integers(0, 3))):
            task = request.tasks.add()
            task.model_spec.name = model if draw(st.integers(0, 4)) else draw(st.sampled_from(["tf1", "mixed", ""]))
            task.model_spec.signature_name = draw(EXAMPLE_SIGNATURES)
            task.method_name = draw(st.sampled_from(["tensorflow/serving/classify", "tensorflow/serving/regress",
                                                     "tensorflow/serving/predict", "x"]))
    else:
        request = (classification_pb2.ClassificationRequest() if api == "Classify"
                   else regression_pb2.RegressionRequest())
        request.model_spec.name = model
        request.model_spec.signature_name = draw(EXAMPLE_SIGNATURES)
    return api, draw(example_inputs(request))


@FUZZ
@given(case=example_requests())
def test_grpc_example_decoder(prediction, case):
    api, request = case
    _rpc(getattr(prediction, api), request)


@FUZZ
@given(name=st.sampled_from(["mixed", "tf1", "missing", ""]) | st.text(max_size=6),
       field=st.sampled_from(["signature_def", "other", ""]), version=st.sampled_from([None, 1, 123, 5]))
def test_grpc_metadata_requests(service, name, field, version):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.metadata_field.append(field)
    _rpc(_PredictionServicer(service).GetModelMetadata, request)


# ---------------------------------------------------------------------------- corpus and memory

def _tensor(dtype: int, shape, **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    for name, values in fields.items():
        if name == "tensor_content":
            proto.tensor_content = values
        else:
            getattr(proto, name).extend(values)
    return proto


# Issue 34's cases (and what the fuzzer found), with the answer TF Serving gives them.
GRPC_CORPUS = [
    ("resource-input", "mixed", "f", _tensor(types_pb2.DT_RESOURCE, [1]), "Expects arg[2] to be float but resource"),
    ("variant-input", "mixed", "f", _tensor(types_pb2.DT_VARIANT, [1]), "Expects arg[2] to be float but variant"),
    ("unknown-dtype", "mixed", "f", _tensor(1000, [1]), "but unknown dtype 1000 is provided"),
    ("2^40-from-one-value", "mixed", "f", _tensor(types_pb2.DT_FLOAT, [2**40, 1], float_val=[1.0]),
     "--max_fill_elements"),
    ("2^26-amplifier", "mixed", "f", _tensor(types_pb2.DT_FLOAT, [2**26], float_val=[1.0]), "--max_fill_elements"),
    ("string-to-tf1-float", "tf1", "x", _tensor(types_pb2.DT_STRING, [1], string_val=[b"abc"]),
     "Expects arg[0] to be float but string is provided (input 'x')"),
    ("string-1.0-to-float", "mixed", "f", _tensor(types_pb2.DT_STRING, [1], string_val=[b"1.0"]),
     "but string is provided"),
    ("int64-to-float", "mixed", "f", _tensor(types_pb2.DT_INT64, [1], int64_val=[1]), "but int64 is provided"),
    ("bool-to-float", "mixed", "f", _tensor(types_pb2.DT_BOOL, [1], bool_val=[True]), "but bool is provided"),
    ("half-to-float", "mixed", "f", _tensor(types_pb2.DT_HALF, [1], half_val=[15360]), "but half is provided"),
    ("negative-dimension", "mixed", "f", _tensor(types_pb2.DT_FLOAT, [-5], float_val=[1.0]),
     "dimension 0 of its shape is -5"),
    ("int64-overflowing-shape", "mixed", "f", _tensor(types_pb2.DT_FLOAT, [2**62, 4], float_val=[1.0]),
     "more than 2^63 - 1 elements"),
    ("short-tensor-content", "mixed", "f", _tensor(types_pb2.DT_FLOAT, [3], tensor_content=b"abcd"),
     "tensor_content holds 4 bytes"),
]


@pytest.mark.parametrize("case", GRPC_CORPUS, ids=[c[0] for c in GRPC_CORPUS])
def test_grpc_corpus(prediction, case):
    _, model, name, proto, words = case
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    inputs = dict(VALID_INPUTS) if model == "mixed" else {"x": np.array([1.0], np.float32)}
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    request.inputs[name].CopyFrom(proto)
    with pytest.raises(_Aborted) as caught:
        prediction.Predict(request, _Context())
    assert caught.value.code.name == "INVALID_ARGUMENT" and words in caught.value.details, caught.value.details


def test_values_past_the_shape_are_ignored_as_tensorflow_does(prediction):
    """Tensor::FromProto copies as many values as the shape holds (tf.make_ndarray raises instead)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf1"
    request.inputs["x"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [2], float_val=[2.0, 4.0, 6.0]))
    response = prediction.Predict(request, _Context())
    assert list(response.outputs["y"].float_val) == [4.0, 5.0]


def test_a_one_megabyte_model_name_is_quoted_in_part(prediction):
    """The whole name would pass gRPC's 16 KB metadata limit: the client would see RESOURCE_EXHAUSTED."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m" * 1_000_000
    request.inputs["x"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [1], float_val=[1.0]))
    with pytest.raises(_Aborted) as caught:
        prediction.Predict(request, _Context())
    assert caught.value.code.name == "NOT_FOUND" and "(999800 more characters)" in caught.value.details
    assert len(caught.value.details) < 1000


STRINGS = b'"signature_name": "classify", "inputs": {"inputs": '  # mixed's classify signature takes strings
REST_CORPUS = [
    ("nested-40", "tf1", "predict", b'{"instances": ' + b"[" * 40 + b"1.5" + b"]" * 40 + b"}",
     "nested deeper than 32"),
    ("nested-1000", "tf1", "predict", b'{"instances": ' + b"[" * 1000 + b"1.5" + b"]" * 1000 + b"}",
     "nested deeper than 32"),
    ("nested-columnar-40", "tf1", "predict", b'{"inputs": ' + b"[" * 40 + b"1.5" + b"]" * 40 + b"}",
     "nested deeper than 32"),
    ("nested-100000", "tf1", "predict", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested too deeply"),
    ("integer-of-5000-digits", "tf1", "predict", b'{"instances": [' + b"7" * 5000 + b"]}",
     "an integer of 5000 digits"),
    ("number-past-double", "tf1", "predict", b'{"instances": [1e400]}', "Number too big to be stored in double"),
    ("lone-surrogate", "mixed", "predict", b"{" + STRINGS + b'["\\ud800"]}}',
     "The surrogate pair in string is invalid."),
    ("lone-surrogate-beside-nan", "tf1", "predict", b'{"instances": [NaN], "x": "\\udc00"}', "surrogate"),
    ("bad-base64", "mixed", "predict", b"{" + STRINGS + b'[{"b64": "!!!"}]}}', "'b64' value is not valid base64"),
    ("classify-a-tensor-signature", "mixed", "classify", b'{"examples": [{"f": 1.0}]}', "Expected one input Tensor"),
    ("regress-a-tensor-signature", "mixed", "regress", b'{"examples": [{"f": 1.0}]}', "Expected one input Tensor"),
]


@pytest.mark.parametrize("case", REST_CORPUS, ids=[c[0] for c in REST_CORPUS])
def test_rest_corpus(service, case):
    _, model, verb, raw, words = case
    with pytest.raises(ServingError) as caught:
        _rest_call(service, model, None, verb, raw)()
    assert caught.value.http_status == 400 and words in caught.value.message, caught.value.message


def test_a_megabyte_signature_name_is_quoted_in_part(service):
    raw = b'{"signature_name": "' + b"s" * 1_000_000 + b'", "instances": [1.0]}'
    with pytest.raises(ServingError) as caught:
        _rest_call(service, "mixed", None, "predict", raw)()
    assert caught.value.http_status == 400 and len(caught.value.message) < 1000, caught.value.message[:300]


def _traced_peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("declared", [2**26, FILL_LIMIT + 2])
def test_a_tiny_request_cannot_make_the_server_allocate_past_the_limit(prediction, declared):
    """numpy's allocations are traced: a request refused by --max_fill_elements allocates nothing large."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf1"
    request.inputs["x"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [declared], float_val=[1.0]))
    assert request.ByteSize() < 40

    def refused():
        with pytest.raises(_Aborted, match="--max_fill_elements"):
            prediction.Predict(request, _Context())

    assert _traced_peak_bytes(refused) < 1_000_000


def test_at_the_limit_a_fill_costs_what_the_limit_allows(prediction):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf1"
    request.inputs["x"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [FILL_LIMIT + 1], float_val=[1.0]))
    peak = _traced_peak_bytes(lambda: prediction.Predict(request, _Context()))
    # the filled input and the output, float32 each, plus the response's own copy: a few times 40 KB
    assert 4 * FILL_LIMIT <= peak < 20 * 4 * FILL_LIMIT, peak
