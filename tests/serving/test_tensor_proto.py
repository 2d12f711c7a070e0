"""serving.tensor_proto gives what tf.make_ndarray / tf.make_tensor_proto give, for every dtype a request carries."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.tensor_proto import fill_tensor_proto, fill_typed_tensor_proto, to_ndarray, to_ndarrays, to_tensor_proto

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


# ------------------------------------------------------------------ outputs as TF Serving writes them

BFLOAT16 = tf.bfloat16.as_numpy_dtype
# (array, the field Tensor::AsProtoField fills (tensorflow/core/framework/tensor.cc), the values a client
# reads from it): small integers share int_val, half and bfloat16 keep their 16-bit patterns in half_val,
# a complex number is two consecutive reals.
TYPED = [
    (np.array([[1.5, -2.0], [np.nan, np.inf]], np.float32), "float_val", [1.5, -2.0, np.nan, np.inf]),
    (np.array([1e300, -0.0], np.float64), "double_val", [1e300, -0.0]),
    (np.array([[7, -2**31]], np.int32), "int_val", [7, -2**31]),
    (np.array([-128, 127], np.int8), "int_val", [-128, 127]),
    (np.array([-5], np.int16), "int_val", [-5]),
    (np.array([0, 255], np.uint8), "int_val", [0, 255]),
    (np.array([65535], np.uint16), "int_val", [65535]),
    (np.array([2**40, -3, 2**63 - 1], np.int64), "int64_val", [2**40, -3, 2**63 - 1]),
    (np.array([2**32 - 1], np.uint32), "uint32_val", [2**32 - 1]),
    (np.array([2**64 - 1], np.uint64), "uint64_val", [2**64 - 1]),
    (np.array([True, False, True]), "bool_val", [True, False, True]),
    (np.array([[b"a", b""], [b"\xff\x00", b"long text"]], object), "string_val",
     [b"a", b"", b"\xff\x00", b"long text"]),
    (np.array(["text", "ü"]), "string_val", [b"text", "ü".encode()]),
    (np.array([0.5, -2.0, np.inf], np.float16), "half_val", [0x3800, 0xC000, 0x7C00]),
    (np.array([1.0, -0.5], BFLOAT16), "half_val", [0x3F80, 0xBF00]),
    (np.array([1 + 2j, -3.5j], np.complex64), "scomplex_val", [1.0, 2.0, -0.0, -3.5]),
    (np.array([[0.25 - 1j]], np.complex128), "dcomplex_val", [0.25, -1.0]),
    (np.array(3.25, np.float32), "float_val", [3.25]),  # a scalar
]


@pytest.mark.parametrize("array,field,values", TYPED, ids=lambda a: f"{a.dtype}{list(a.shape)}"
                         if isinstance(a, np.ndarray) else None)
def test_outputs_go_into_the_typed_field_tf_serving_clients_read(array, field, values):
    proto = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(proto, array)
    assert proto.tensor_content == b""
    assert [d.size for d in proto.tensor_shape.dim] == list(array.shape)
    got = list(getattr(proto, field))
    if field == "string_val":
        assert got == values
    else:
        np.testing.assert_array_equal(got, values)
    others = [f.name for f, _ in proto.ListFields() if f.name not in (field, "dtype", "tensor_shape")]
    assert others == [], others  # nothing written twice
    want = np.array([v.encode() for v in array.ravel()]).reshape(array.shape) if array.dtype.kind == "U" else array
    back = tf.make_ndarray(proto)
    assert back.dtype == (np.dtype(object) if array.dtype.kind == "U" else array.dtype)
    np.testing.assert_array_equal(back.astype(object) if array.dtype.kind == "U" else back, want)
    assert to_ndarray(proto).shape == array.shape  # and the server reads its own output back


def test_float_outputs_are_the_same_message_as_extending_the_field():
    # The float fields are written as their packed wire bytes in one parse: the message must be the
    # one that appending each value builds.
    array = np.random.default_rng(0).normal(size=(33, 5)).astype(np.float32)
    ours, slow = tensor_pb2.TensorProto(), tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    fill_typed_tensor_proto(ours, array)
    slow.tensor_shape.dim.add(size=33)
    slow.tensor_shape.dim.add(size=5)
    for value in array.ravel().tolist():
        slow.float_val.append(value)
    assert ours == slow and ours.SerializeToString() == slow.SerializeToString()


def test_an_empty_output_has_its_shape_and_no_values():
    proto = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(proto, np.zeros((0, 3), np.float32))
    assert (proto.dtype, [d.size for d in proto.tensor_shape.dim], list(proto.float_val)) == (types_pb2.DT_FLOAT,
                                                                                               [0, 3], [])
    assert tf.make_ndarray(proto).shape == (0, 3)
