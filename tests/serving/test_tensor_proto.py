"""serving.tensor_proto gives what tf.make_ndarray / tf.make_tensor_proto give, for every dtype a request carries."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.tensor_proto import fill_tensor_proto, to_ndarray, to_ndarrays, to_tensor_proto

ARRAYS = [
    np.array([[1.5, -2.0], [np.nan, np.inf]], np.float32),
    np.array([1e300, -0.0], np.float64),
    np.array([[7]], np.int32),
    np.array([2**40, -3], np.int64),
    np.array([True, False, True]),
    np.array([[b"a", b""], [b"\xff\x00", b"long text"]], object),
    np.array(3.25, np.float32),  # a scalar
    np.zeros((0, 4), np.float32),  # an empty batch
    np.array([1, 2], np.uint8),  # handed to TensorFlow
    np.array([0.5], np.float16),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_round_trip_equals_tensorflow(array):
    ours, theirs = to_tensor_proto(array), tf.make_tensor_proto(array)
    np.testing.assert_array_equal(tf.make_ndarray(ours), array)
    assert ours.dtype == theirs.dtype and ours.tensor_shape == theirs.tensor_shape
    for proto in (ours, theirs):
        got, want = to_ndarray(proto), tf.make_ndarray(proto)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_values_in_repeated_fields_as_clients_write_them():
    # Clients often fill float_val / string_val instead of tensor_content.
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=1)
    proto.float_val.extend([1.0, 2.5])
    np.testing.assert_array_equal(to_ndarray(proto), np.array([[1.0], [2.5]], np.float32))
    text = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    text.tensor_shape.dim.add(size=2)
    text.string_val.extend([b"x", b"yz"])
    assert to_ndarray(text).tolist() == [b"x", b"yz"]


def test_a_single_value_fills_the_shape_as_in_tensorflow():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64)
    proto.tensor_shape.dim.add(size=3)
    proto.int64_val.append(4)
    np.testing.assert_array_equal(to_ndarray(proto), [4, 4, 4])


def test_content_that_does_not_fit_the_shape_is_an_error():
    proto = to_tensor_proto(np.array([1.0, 2.0, 3.0], np.float32))
    proto.tensor_shape.dim[0].size = 4
    with pytest.raises(ValueError):
        to_ndarray(proto)


def test_a_whole_request_converts_as_tensor_by_tensor():
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    for i, array in enumerate(ARRAYS):
        request.inputs[f"in{i}"].CopyFrom(tf.make_tensor_proto(array))
    request.inputs["second_strings"].CopyFrom(tf.make_tensor_proto(np.array([b"p", b"q", b"r"], object)))
    filled = request.inputs["fill_rule"]  # one value for three elements: TensorFlow repeats it
    filled.dtype = types_pb2.DT_STRING
    filled.tensor_shape.dim.add(size=3)
    filled.string_val.append(b"s")
    names = list(request.inputs)
    got = to_ndarrays(request.inputs, names)
    assert list(got) == names
    for name in names:
        want = tf.make_ndarray(request.inputs[name])
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want)


@pytest.mark.parametrize("array", ARRAYS + [np.array(["text", "ü"])], ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_filling_a_response_entry_equals_copying_tensorflows_proto(array):
    from tensorflow_serving.apis import predict_pb2

    ours, theirs = predict_pb2.PredictResponse(), predict_pb2.PredictResponse()
    fill_tensor_proto(ours.outputs["y"], array)
    theirs.outputs["y"].CopyFrom(tf.make_tensor_proto(array))
    np.testing.assert_array_equal(tf.make_ndarray(ours.outputs["y"]), tf.make_ndarray(theirs.outputs["y"]))
    assert ours.outputs["y"].dtype == theirs.outputs["y"].dtype
    assert ours.outputs["y"].tensor_shape == theirs.outputs["y"].tensor_shape
