"""JSON <-> tensor conversion, without a model."""

import base64

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2

from serving import codec, examples
from serving.errors import InvalidArgument, Unimplemented
from serving.servable import TensorInfo

X = {"x": TensorInfo("x", tf.float32, (None, 2))}
TWO = {"ids": TensorInfo("ids", tf.int32, (None,)), "flag": TensorInfo("flag", tf.bool, (None,))}


def test_rows_are_stacked_with_the_signature_dtypes():
    arrays = codec.decode_instances([{"ids": 1, "flag": True}, {"ids": 2.0, "flag": False}], TWO)
    assert arrays["ids"].dtype == np.int32 and arrays["ids"].tolist() == [1, 2]
    assert arrays["flag"].dtype == bool and arrays["flag"].tolist() == [True, False]


def test_unknown_rank_accepts_any_rectangular_shape():
    spec = {"t": TensorInfo("t", tf.float64, None)}
    assert codec.decode_columnar([[[1, 2]], [[3, 4]]], spec)["t"].shape == (2, 1, 2)


@pytest.mark.parametrize("rows,match", [
    ([{"ids": 1.5, "flag": True}],
     r"^JSON Value: 1.5 Type: Number is not of expected type: int32 \(instances\[0\]\['ids'\] of input 'ids' must be "
     r"an integer\)"),
    ([{"ids": 2**40, "flag": True}], "out of range for DT_INT32"),
    ([{"ids": 1, "flag": 1}],
     r"^JSON Value: 1 Type: Number is not of expected type: bool \(instances\[0\]\['flag'\] of input 'flag' must be"),
])
def test_integer_and_bool_checks(rows, match):
    with pytest.raises(InvalidArgument, match=match):
        codec.decode_instances(rows, TWO)


def test_unsupported_input_dtype_is_unimplemented():
    with pytest.raises(Unimplemented, match="DT_COMPLEX64"):
        codec.decode_instances([1], {"c": TensorInfo("c", tf.complex64, (None,))})


def test_encoding_values():
    assert codec.to_json_value(np.array([[0.1, 1e-8]], np.float32)) == [[0.1, 1e-08]]
    assert codec.to_json_value(np.array([1, 2], np.int64)) == [1, 2]
    assert codec.to_json_value(np.array([True])) == [True]
    assert codec.to_json_value(np.array([b"ok", b"\xff"], dtype=object)) == ["ok", {"b64": "/w=="}]
    assert codec.to_json_value(np.array([b"ok"], dtype=object), "raw_bytes") == [{"b64": base64.b64encode(b"ok")
                                                                                  .decode()}]
    assert codec.to_json_value(np.float32(2.5)) == 2.5


def test_row_encoding_needs_a_common_batch_dimension():
    rows = codec.encode_predictions({"a": np.array([1, 2]), "b": np.array([[3], [4]])})
    assert codec.dumps(rows) == b'[{"a":1,"b":[3]},{"a":2,"b":[4]}]'
    with pytest.raises(InvalidArgument, match="different batch sizes"):
        codec.encode_predictions({"a": np.array([1, 2]), "b": np.array([1])})
    with pytest.raises(InvalidArgument, match="is a scalar"):
        codec.encode_predictions({"a": np.float32(1)})
    assert codec.dumps(codec.encode_outputs({"a": np.float32(1)})) == b"1.0"


def test_dumps_writes_float32_shortest_and_non_finite_as_tf_serving():
    values = np.array([[0.1, np.nan], [np.inf, -np.inf]], np.float32)
    assert codec.dumps(codec.encode_outputs({"y": values})) == b"[[0.1,NaN],[Infinity,-Infinity]]"
    assert codec.dumps(codec.encode_outputs({"y": np.array([0.1, 1e-8], np.float32)})) == b"[0.1,1e-8]"
    assert codec.dumps(codec.encode_outputs({"y": np.array([0.1], np.float16)})) == b"[0.099975586]"


def test_bool_and_empty_example_features_are_stored_as_tf_serving_stores_them():
    example = examples.json_to_example({"b": [True, False], "e": []}, "examples[0]")
    assert list(example.features.feature["b"].int64_list.value) == [1, 0]
    assert example.features.feature["e"].WhichOneof("kind") is None and "e" in example.features.feature


def test_examples_infer_feature_types_like_tf_serving():
    example = examples.json_to_example({"s": "x", "b": {"b64": "AAE="}, "i": [1, 2], "f": 1.5, "mixed": [1, 2.5]},
                                       "examples[0]")
    features = example.features.feature
    assert features["s"].bytes_list.value == [b"x"] and features["b"].bytes_list.value == [b"\x00\x01"]
    assert features["i"].int64_list.value == [1, 2]
    assert features["f"].float_list.value == [1.5] and features["mixed"].float_list.value == [1.0, 2.5]


def test_context_is_merged_and_examples_win():
    _, serialized = examples.parse_examples_request(
        {"context": {"a": 1, "b": "ctx"}, "examples": [{"b": "own"}, {}]}, "classify")
    first, second = (example_pb2.Example.FromString(s).features.feature for s in serialized)
    assert first["a"].int64_list.value == [1] and first["b"].bytes_list.value == [b"own"]
    assert second["b"].bytes_list.value == [b"ctx"]


@pytest.mark.parametrize("feature,match", [
    (None, "got null"),
    (2**64, "int64 range"),
    (1e39, "float32 range"),
    ({"x": 1}, "got an object"),
])
def test_bad_example_features(feature, match):
    with pytest.raises(InvalidArgument, match=match):
        examples.json_to_example({"f": feature}, "examples[0]")


def test_classification_results_without_classes_or_scores():
    scores = {"scores": np.array([[0.25, 0.75]], np.float32)}
    assert examples.classification_results(scores, 1) == [[("", 0.25), ("", 0.75)]]
    classes = {"classes": np.array([[b"a", b"b"]], dtype=object)}
    assert examples.classification_results(classes, 1) == [[("a", 0.0), ("b", 0.0)]]
    with pytest.raises(InvalidArgument, match=r"expected \[2, num_classes\]"):
        examples.classification_results(scores, 2)


def test_regression_results_accept_b_and_b_by_1():
    assert examples.regression_results({"outputs": np.array([0.5, 1.5], np.float32)}, 2) == [0.5, 1.5]
    assert examples.regression_results({"outputs": np.array([[0.5]], np.float32)}, 1) == [0.5]
    with pytest.raises(InvalidArgument, match="expected"):
        examples.regression_results({"outputs": np.zeros((1, 2), np.float32)}, 1)
