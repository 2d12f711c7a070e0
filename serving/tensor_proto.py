"""TensorProto <-> numpy for the gRPC API, with ``tf.make_ndarray``'s semantics at a fraction of its cost.

``tf.make_ndarray`` and ``tf.make_tensor_proto`` spend 20-30 us per tensor on
dtype lookups and argument handling; a census request has 39 inputs, so the
two cost about 1 ms of a 5 ms request. :func:`to_ndarray` reads every dtype
with a numeric or string field directly (from ``tensor_content`` or the typed
field); the writers handle the common dtypes themselves; everything else goes
to TensorFlow's functions, so the result is always the one TensorFlow gives.
Responses are written as TF Serving writes them (:func:`fill_typed_tensor_proto`:
every value in its dtype's typed field), or in ``tensor_content``
(:func:`fill_tensor_proto`, ``--enable_serialization_as_tensor_content``).

Example:

>>> import numpy as np
>>> proto = to_tensor_proto(np.array([[1.5, 2.0]], np.float32))
>>> to_ndarray(proto)
array([[1.5, 2. ]], dtype=float32)
>>> typed = tensor_pb2.TensorProto()
>>> fill_typed_tensor_proto(typed, np.array([[1.5, 2.0]], np.float32))
>>> list(typed.float_val), typed.tensor_content
([1.5, 2.0], b'')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

# The dtypes fill_tensor_proto writes itself (the rest: tf.make_tensor_proto).
_ENUM_OF_NUMPY = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
                  np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64,
                  np.dtype(np.bool_): types_pb2.DT_BOOL}
BFLOAT16 = np.dtype(tf.bfloat16.as_numpy_dtype)
_QUANTIZED = {types_pb2.DT_QINT8: tf.qint8, types_pb2.DT_QUINT8: tf.quint8, types_pb2.DT_QINT16: tf.qint16,
              types_pb2.DT_QUINT16: tf.quint16, types_pb2.DT_QINT32: tf.qint32}
# Every dtype Tensor::AsProtoField writes into a numeric field (tensorflow/core/framework/tensor.cc,
# ProtoHelper and PROTO_TRAITS): dtype enum -> (numpy dtype, the field, the numpy dtype of what the field
# holds per value, values per element). The integers narrower than 32 bits (and the quantized ones) share
# int_val; half and bfloat16 keep their 16-bit patterns in half_val; a complex number is two reals.
_FIELDS: dict[int, tuple[np.dtype, str, np.dtype, int]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val", np.dtype(np.float32), 1),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val", np.dtype(np.float64), 1),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val", np.dtype(np.int32), 1),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val", np.dtype(np.int16), 1),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val", np.dtype(np.int8), 1),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val", np.dtype(np.uint16), 1),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val", np.dtype(np.uint8), 1),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val", np.dtype(np.int64), 1),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val", np.dtype(np.uint32), 1),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val", np.dtype(np.uint64), 1),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val", np.dtype(np.bool_), 1),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half_val", np.dtype(np.uint16), 1),
    types_pb2.DT_BFLOAT16: (BFLOAT16, "half_val", np.dtype(np.uint16), 1),
    types_pb2.DT_COMPLEX64: (np.dtype(np.complex64), "scomplex_val", np.dtype(np.float32), 2),
    types_pb2.DT_COMPLEX128: (np.dtype(np.complex128), "dcomplex_val", np.dtype(np.float64), 2),
    **{enum: (np.dtype(q.as_numpy_dtype), "int_val", np.dtype(q.as_numpy_dtype).fields[q.name][0], 1)
       for enum, q in _QUANTIZED.items()},
}


MAX_DIMS = 254  # TensorShape's kMaxDimensions
_MAX_ELEMENTS = 2**63 - 1  # a shape's element count is an int64 in TensorFlow


def declared_elements(proto: tensor_pb2.TensorProto) -> int:
    """The element count a TensorProto's shape declares, checked as TensorFlow's ``TensorShape`` checks it.

    Raises:
        ValueError: an unknown rank, a negative dimension, more than 254 dimensions or more
            than 2^63 - 1 elements (TensorFlow refuses to parse such a proto).
    """
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise ValueError("its shape has an unknown rank")
    if len(shape.dim) > MAX_DIMS:
        raise ValueError(f"its shape has {len(shape.dim)} dimensions, more than {MAX_DIMS}")
    count = 1
    for i, dim in enumerate(shape.dim):
        if dim.size < 0:
            raise ValueError(f"dimension {i} of its shape is {dim.size}; sizes must be >= 0")
        count *= dim.size
        if count > _MAX_ELEMENTS:
            raise ValueError("its shape has more than 2^63 - 1 elements")
    return count


def filled_elements(proto: tensor_pb2.TensorProto) -> int:
    """The elements a request tensor leaves to TensorFlow's fill rule (its shape minus the values it carries).

    A typed field with fewer values than the shape declares has its last value repeated
    (zeros when it has none): those elements cost the server memory the request does not
    carry. Values past the shape are ignored, as TensorFlow's ``Tensor::FromProto`` ignores them.

    Raises:
        ValueError: the shape is invalid (:func:`declared_elements`), or ``tensor_content``
            does not hold exactly the shape's bytes.
    """
    count = declared_elements(proto)
    if proto.dtype == types_pb2.DT_STRING:
        return max(0, count - len(proto.string_val))
    fast = _FIELDS.get(proto.dtype)
    if fast is None:
        return 0  # tf.make_ndarray's rules and errors
    np_dtype, field, _, per_element = fast
    if proto.tensor_content:
        if len(proto.tensor_content) != count * np_dtype.itemsize:
            raise ValueError(f"its tensor_content holds {len(proto.tensor_content)} bytes, but its shape "
                             f"{[d.size for d in proto.tensor_shape.dim]} of {np_dtype.name} needs "
                             f"{count * np_dtype.itemsize}")
        return 0
    return max(0, count - len(getattr(proto, field)) // per_element)


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The numpy array a TensorProto holds (as ``tf.make_ndarray``), from ``tensor_content`` or the typed
    field TF Serving's clients fill (``float_val``, ``half_val`` bit patterns, ``scomplex_val`` pairs ...).

    Raises:
        TypeError: the dtype has no numpy equivalent.
        ValueError: the values do not fit the shape.
    """
    if proto.dtype == types_pb2.DT_STRING:
        shape = [d.size for d in proto.tensor_shape.dim]
        count = math.prod(shape)
        if len(proto.string_val) >= count:  # values past the shape are ignored, as in Tensor::FromProto
            array = np.empty(count, dtype=object)
            array[:] = proto.string_val[:count]
            return array.reshape(shape)
        return tf.make_ndarray(proto)  # TensorFlow's fill rule or its error
    fast = _FIELDS.get(proto.dtype)
    if fast is None:
        return tf.make_ndarray(proto)
    np_dtype, field, stored, per_element = fast
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()
    values = getattr(proto, field)
    count = math.prod(shape) * per_element
    if len(values) >= count:  # values past the shape are ignored, as in Tensor::FromProto
        # As tf.make_ndarray: np.fromiter into the stored type (half_val's patterns as uint16), then a view.
        return np.fromiter(values, dtype=stored, count=count).view(np_dtype).reshape(shape)
    # Fewer values than elements: TensorFlow repeats the last one (and zeros for none).
    return tf.make_ndarray(proto)


def to_ndarrays(tensors: Mapping[str, tensor_pb2.TensorProto], names: Iterable[str]) -> dict[str, np.ndarray]:
    """``{name: to_ndarray(tensors[name])}``, with every string tensor's values in one object array.

    A request's many small string tensors (one per categorical feature) each cost a numpy
    allocation; gathering their values into one array and handing out views of it takes a
    census request's conversion from about 200 to 148 us. The views share that array: read
    them, do not write them.
    """
    arrays: dict[str, np.ndarray | None] = {}
    strings: list[tuple[str, int, int, list[int]]] = []
    values: list[bytes] = []
    for name in names:
        proto = tensors[name]
        if proto.dtype != types_pb2.DT_STRING:
            arrays[name] = to_ndarray(proto)
            continue
        shape = [d.size for d in proto.tensor_shape.dim]
        start = len(values)
        values.extend(proto.string_val)
        if len(values) - start != math.prod(shape):
            del values[start:]
            arrays[name] = to_ndarray(proto)  # TensorFlow's fill rule or its error
            continue
        strings.append((name, start, len(values), shape))
        arrays[name] = None  # keeps the names' order; filled below
    if strings:
        flat = np.empty(len(values), dtype=object)
        flat[:] = values
        for name, start, end, shape in strings:
            arrays[name] = flat[start:end].reshape(shape)
    return arrays  # type: ignore[return-value] - every None was filled


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto of ``array`` (as ``tf.make_tensor_proto``: numbers in tensor_content, strings in string_val)."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array)
    return proto


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Write ``array`` into the empty ``proto`` in place (a response's map entry: no copy of the message), in
    ``tf.make_tensor_proto``'s layout: numbers in ``tensor_content`` (TF Serving's
    ``--enable_serialization_as_tensor_content``; :func:`fill_typed_tensor_proto` is its default)."""
    array = np.asarray(array)
    if array.dtype.kind in ("O", "S"):
        values = array.ravel().tolist()
        if all(isinstance(v, bytes) for v in values):
            proto.dtype = types_pb2.DT_STRING
            _fill_shape(proto, array.shape)
            proto.string_val.extend(values)
            return
    enum = _ENUM_OF_NUMPY.get(array.dtype)
    if enum is None:  # unicode, str objects and the rarer dtypes: TensorFlow's own conversion
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    proto.dtype = enum
    _fill_shape(proto, array.shape)
    proto.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


# numpy dtype -> (dtype enum, the field Tensor::AsProtoField writes, the numpy view of what it stores there).
_TYPED_FIELDS: dict[np.dtype, tuple[int, str, np.dtype]] = {
    np_dtype: (enum, field, stored) for enum, (np_dtype, field, stored, _) in _FIELDS.items()}


def fill_typed_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Write ``array`` into the empty ``proto`` as TF Serving writes Predict outputs (``Tensor::AsProtoField``).

    Every value goes into its dtype's repeated field (``float_val``, ``int64_val``, ``string_val``,
    ``half_val`` ...), none into ``tensor_content``: clients written for TF Serving read
    ``response.outputs[key].float_val`` directly. Dtypes TF Serving cannot return in a typed field
    (resource, variant) keep TensorFlow's own conversion.
    """
    array = np.asarray(array)
    if array.dtype.kind in ("O", "S", "U"):
        values = array.ravel().tolist()
        if all(isinstance(v, bytes) for v in values) or all(isinstance(v, str) for v in values):
            proto.dtype = types_pb2.DT_STRING
            _fill_shape(proto, array.shape)
            proto.string_val.extend(v if isinstance(v, bytes) else v.encode("utf-8") for v in values)
            return
    if array.dtype.byteorder == ">":  # the table holds native (little-endian) dtypes
        array = array.astype(array.dtype.newbyteorder("="))
    typed = _TYPED_FIELDS.get(array.dtype)
    if typed is None:
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    enum, field, stored = typed
    proto.dtype = enum
    _fill_shape(proto, array.shape)
    flat = np.ascontiguousarray(array).reshape(-1).view(stored)
    if not flat.size:
        return
    # The field as protobuf's packed wire bytes, parsed in one call: extending it from Python costs
    # 2.1-2.6 ms for 65,536 values (a [1024, 64] output), the bytes 0.03 ms for floats, 0.2 ms for bools,
    # 0.65 ms for half and 1.6 ms for int64 ids below 2**21 (bench/serving.py's encoding section).
    # A few values are cheaper to extend than to encode with numpy.
    if field in _FIXED_WIDTH:
        payload = flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
    elif flat.size < _VARINT_MIN:
        getattr(proto, field).extend(flat.tolist())
        return
    else:
        payload = _varints(flat)
    proto.MergeFromString(_PACKED_TAGS[field] + _varint(len(payload)) + payload)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varints(values: np.ndarray) -> bytes:
    """The protobuf varints of integer (or bool) values, concatenated: 7 bits a byte, low bits first, the
    top bit set on every byte but a value's last; a negative value as its 64-bit two's complement (ten
    bytes), as protobuf writes an int32 or int64 field."""
    wide = values.astype(np.int64, copy=False).view(np.uint64) if values.dtype.kind in "ib" \
        else values.astype(np.uint64, copy=False)
    width = max(1, (int(wide.max()).bit_length() + 6) // 7)  # bytes the largest value takes
    if width == 1:
        return wide.astype(np.uint8).tobytes()
    lengths = np.ones(wide.size, np.intp)
    for k in range(1, width):
        lengths += wide >= np.uint64(1 << (7 * k))
    ends = np.cumsum(lengths)
    total = int(ends[-1])
    starts = ends - lengths
    # Byte k of every value at once, k from the highest down: a value shorter than k+1 bytes writes
    # past its end, into a later value's byte < k (rewritten afterwards) or the spare tail (cut off).
    # No per-k compaction: ~1.5x faster than masking out the finished values.
    out = np.empty(total + width, np.uint8)
    for k in reversed(range(width)):
        byte = (wide >> np.uint64(7 * k)).astype(np.uint8) & np.uint8(0x7F)
        byte |= (lengths > k + 1).view(np.uint8) << np.uint8(7)
        out[starts + k] = byte
    return out[:total].tobytes()


# Fields of little-endian fixed-width values; the others are varints (bool as 0/1).
_FIXED_WIDTH = {"float_val", "double_val", "scomplex_val", "dcomplex_val"}
# The tag (wire type 2: a packed repeated field) of each field the typed layout writes.
_PACKED_TAGS = {field: _varint(tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name[field].number << 3 | 2)
                for _, field, _ in _TYPED_FIELDS.values()}
# Below this many values, extending the repeated field beats encoding varints with numpy.
_VARINT_MIN = 64


def _fill_shape(proto: tensor_pb2.TensorProto, shape: tuple[int, ...]) -> None:
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow's AsProto* and make_tensor_proto
    dims = proto.tensor_shape.dim
    for size in shape:
        dims.add(size=size)
