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


# ------------------------------------------------------------------ byte for byte against TensorFlow's C++

# Where Python reaches Tensor::AsProtoField: SetAttrValue(const Tensor&) (tensorflow/core/framework/
# attr_value_util.cc) calls it for a tensor of at most one element, and a tf.data graph's Const nodes are
# written with SetAttrValue; SerializeTensor (tf.io.serialize_tensor) calls it for strings of any size.
# Numbers with more elements only ever reach AsProtoTensorContent from Python, so for those the test below
# compares with the message protobuf itself builds by appending every value (AsProtoField's Fill copies
# all n values into the field: no trailing-value compression as make_tensor_proto does).
def _as_proto_field(array: np.ndarray) -> bytes:
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef.FromString(tf.data.Dataset.from_tensors(tf.constant(array))
                                          ._as_serialized_graph().numpy())
    (const,) = [node for node in graph.node if node.op == "Const"]
    return const.attr["value"].tensor.SerializeToString()


ONE_ELEMENT = [np.array(value, dtype) for value, dtype in [
    (3.25, np.float32), (-1e300, np.float64), (-7, np.int32), (-2, np.int16), (-128, np.int8), (200, np.uint8),
    (65535, np.uint16), (-2**62, np.int64), (2**32 - 1, np.uint32), (2**64 - 1, np.uint64), (True, np.bool_),
    (-0.5, np.float16), (1.0 + 2.0j, np.complex64), (-0.25j, np.complex128)]] + [
    np.array(-3.0, BFLOAT16), np.array(b"\x00text", object)]


@pytest.mark.parametrize("array", [a.reshape(shape) for a in ONE_ELEMENT for shape in ((), (1,), (1, 1))]
                         + [np.zeros((0, 3), a.dtype) for a in ONE_ELEMENT],
                         ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_typed_encoding_is_tensorflows_as_proto_field_byte_for_byte(array):
    proto = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(proto, array)
    assert proto.SerializeToString() == _as_proto_field(array)


def test_strings_of_any_size_are_serialize_tensors_as_proto_field_byte_for_byte():
    array = np.array([[b"a", b""], [b"\xff\x00", b"long " * 40], [b"x", b"x"]], object)
    proto = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(proto, array)
    assert proto.SerializeToString() == tf.io.serialize_tensor(tf.constant(array)).numpy()


def _values_of_every_width(dtype: np.dtype) -> np.ndarray:
    """Values around every varint length boundary (1 to 10 bytes) that ``dtype`` holds, plus its extremes."""
    info = np.iinfo(dtype)
    edges = [0, 1, info.min, info.max, info.min + 1, info.max - 1]
    for bits in range(7, 64, 7):
        edges += [2**bits - 1, 2**bits, -(2**bits), -(2**bits) + 1]
    values = [v for v in edges if info.min <= v <= info.max]
    return np.array(values * 20, dtype)  # above the size where the numpy varint encoder takes over


@pytest.mark.parametrize("array", [_values_of_every_width(np.dtype(d)) for d in
                                   (np.int32, np.int16, np.int8, np.uint8, np.uint16, np.int64, np.uint32,
                                    np.uint64)]
                         + [np.random.default_rng(1).random(300) > 0.5,
                            np.random.default_rng(2).normal(size=(40, 7)).astype(np.float16),
                            np.random.default_rng(3).normal(size=(40, 7)).astype(BFLOAT16),
                            np.random.default_rng(4).integers(0, 2**21, size=(64, 16)),
                            np.zeros(100, np.int64),
                            (np.arange(70) - 35).astype(np.complex64) * (1 - 2j),
                            np.random.default_rng(5).normal(size=(9, 11))],
                         ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_large_outputs_are_the_message_appending_every_value_builds(array):
    # Big fields are written as packed wire bytes parsed in one call: they must be the message (and the
    # bytes) that appending each value to AsProtoField's field gives.
    ours = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(ours, array)
    enum, field, stored = _typed_field(array.dtype)
    slow = tensor_pb2.TensorProto(dtype=enum)
    for size in array.shape:
        slow.tensor_shape.dim.add(size=size)
    repeated = getattr(slow, field)
    for value in np.ascontiguousarray(array).reshape(-1).view(stored).tolist():
        repeated.append(value)
    assert ours == slow and ours.SerializeToString() == slow.SerializeToString()
    assert ours.tensor_content == b""
    back = tf.make_ndarray(ours)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back.view(stored), array.view(stored))  # bit for bit (NaN payloads too)


def _typed_field(dtype: np.dtype) -> tuple[int, str, np.dtype]:
    from serving.tensor_proto import _TYPED_FIELDS

    return _TYPED_FIELDS[dtype]


QUANTIZED = [(tf.qint8, [-128, 5]), (tf.quint8, [0, 255]), (tf.qint16, [-3, 300]), (tf.quint16, [65535, 1]),
             (tf.qint32, [-2**31, 7])]


@pytest.mark.parametrize("dtype,values", QUANTIZED, ids=lambda d: getattr(d, "name", None))
def test_quantized_outputs_go_into_int_val(dtype, values):
    array = np.array([(v,) for v in values], dtype.as_numpy_dtype)
    proto = tensor_pb2.TensorProto()
    fill_typed_tensor_proto(proto, array)
    assert (proto.dtype, list(proto.int_val), proto.tensor_content) == (dtype.as_datatype_enum, values, b"")
    assert tf.make_ndarray(proto).tolist() == array.tolist() == to_ndarray(proto).tolist()


# Every dtype a client may send in its typed field (as a TF Serving client fills it), read as TensorFlow reads it.
@pytest.mark.parametrize("array,field,values", TYPED + [
    (np.array([(-3,), (9,)], tf.qint8.as_numpy_dtype), "int_val", [-3, 9]),
    (np.array([[1.5]], np.float16), "half_val", [0x3E00]),
], ids=lambda a: f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else None)
def test_inputs_in_typed_fields_read_as_tensorflow_reads_them(array, field, values):
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype if array.dtype.kind != "U" else object)
                                   .as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(values)
    got, want = to_ndarray(proto), tf.make_ndarray(proto)
    assert got.dtype == want.dtype and got.shape == want.shape == array.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))
    content = tensor_pb2.TensorProto()  # and the tensor_content layout of the same dtype
    fill_tensor_proto(content, want)
    np.testing.assert_array_equal(_bits(to_ndarray(content)), _bits(want))


def _bits(array: np.ndarray) -> np.ndarray:
    """What to compare bit for bit: a numeric array as the values its typed field stores."""
    return array if array.dtype == object else array.view(_typed_field(array.dtype)[2])


def test_a_single_half_value_fills_the_shape_as_in_tensorflow():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_HALF)
    proto.tensor_shape.dim.add(size=3)
    proto.half_val.append(0x3C00)  # 1.0
    got = to_ndarray(proto)
    assert got.dtype == np.float16 and got.tolist() == [1.0, 1.0, 1.0]
