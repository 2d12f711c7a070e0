"""JSON <-> tensors for the predict API, in TF Serving's two request formats.

Row format: ``{"instances": [...]}``, one entry per example, answered with
``{"predictions": [...]}``. Columnar format: ``{"inputs": ...}``, one value per
input holding the whole batch, answered with ``{"outputs": ...}``. Binary
strings travel as ``{"b64": "..."}`` both ways (outputs whose key ends in
``_bytes`` are always base64-encoded). A signature with one output drops the
output key in the response; one with one input may omit the input key.

Every rejection is an :class:`InvalidArgument` naming the offending field by
its JSON path (``instances[3]['age']``) and saying what was wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import tensorflow as tf

from serving.errors import InvalidArgument, Unimplemented, quoted
from serving.servable import TensorInfo

ROW_FORMAT = "row"
COLUMNAR_FORMAT = "columnar"

@dataclass(frozen=True)
class PredictRequest:
    """A predict body split into its parts; the payload is decoded once the signature is known."""

    signature_name: str
    body_format: str  # ROW_FORMAT or COLUMNAR_FORMAT
    payload: Any


def parse_predict_request(body: Any) -> PredictRequest:
    """Check the top level of a predict body: exactly one of ``instances`` / ``inputs``."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"predict request must be a JSON object, got {json_type(body)}")
    # Other top-level keys are ignored, as TF Serving ignores them.
    signature_name = signature_name_of(body)
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise InvalidArgument("predict request has both 'instances' (row format) and 'inputs' (columnar format); "
                              "send exactly one")
    if not has_instances and not has_inputs:
        raise InvalidArgument("predict request has neither 'instances' (row format) nor 'inputs' (columnar format)")
    if has_instances:
        return PredictRequest(signature_name, ROW_FORMAT, body["instances"])
    return PredictRequest(signature_name, COLUMNAR_FORMAT, body["inputs"])


def signature_name_of(body: Mapping[str, Any]) -> str:
    """The optional ``signature_name`` field, checked to be a string."""
    name = body.get("signature_name", "")
    if name is None:
        return ""
    if not isinstance(name, str):
        raise InvalidArgument(f"'signature_name' must be a string, got {json_type(name)}")
    return name


# --------------------------------------------------------------------------- decoding


def decode_instances(instances: Any, inputs: Mapping[str, TensorInfo]) -> dict[str, np.ndarray]:
    """Row format -> one array per input, stacked along a new batch axis."""
    if not isinstance(instances, list):
        raise InvalidArgument(f"'instances' must be a JSON array, got {json_type(instances)}")
    if not instances:
        raise InvalidArgument("'instances' is empty; send at least one instance")
    keys = list(inputs)
    named = [isinstance(x, dict) and not is_b64(x) for x in instances]
    if len(keys) == 1 and not any(named):
        per_input = {keys[0]: (instances, "instances[{}]")}
    elif len(keys) == 1 and not all(named):
        first_bare = named.index(False)
        raise InvalidArgument(f"instances[{first_bare}] is a bare value but instances[{named.index(True)}] is an "
                              f"object of named inputs; use one form for every instance")
    else:
        for i, (instance, is_named) in enumerate(zip(instances, named)):
            if not is_named:
                raise InvalidArgument(f"instances[{i}] must be a JSON object mapping input names to values "
                                      f"(the signature has inputs {keys}), got {json_type(instance)}")
            _check_keys(instance, keys, where=f"instances[{i}]")
        # Paths are templates, formatted only when a value is walked (an error or a string input).
        per_input = {k: ([x[k] for x in instances], "instances[{}][" + repr(k).replace("{", "{{").replace("}", "}}")
                         + "]") for k in keys}
    return {k: _stack_rows(values, path, inputs[k]) for k, (values, path) in per_input.items()}


def decode_columnar(value: Any, inputs: Mapping[str, TensorInfo]) -> dict[str, np.ndarray]:
    """Columnar format -> one array per input, each value holding the whole batch."""
    keys = list(inputs)
    if isinstance(value, dict) and not is_b64(value):
        # Extra keys are ignored (TF Serving looks up the signature's inputs only).
        missing = [k for k in keys if k not in value]
        if missing:
            raise InvalidArgument(f"Missing named input: {missing[0]} in 'inputs' object; the signature's inputs "
                                  f"are {keys}")
        named = {k: (value[k], f"inputs[{k!r}]") for k in keys}
    elif len(keys) == 1:
        named = {keys[0]: (value, "inputs")}
    else:
        raise InvalidArgument(f"'inputs' must be a JSON object mapping input names to values "
                              f"(the signature has inputs {keys}), got {json_type(value)}")
    return {key: to_array(item, inputs[key], path) for key, (item, path) in named.items()}


def to_array(value: Any, spec: TensorInfo, path: str) -> np.ndarray:
    """A nested JSON list (or scalar) as an array of the input's dtype.

    Numbers and booleans are converted by numpy in one call; only when that
    fails (ragged lists, wrong types, out-of-range values) is the value walked
    leaf by leaf to name the offending element. Shapes are not checked against
    the signature here: the model decides, as in TF Serving.
    """
    kind = _kind(spec)
    if kind != "string":
        array = _bulk_array(value, spec, kind)
        if array is not None:
            return array
    leaves: list = []
    shape = _walk_input(value, path, spec, leaves)
    return _to_array(leaves, shape, spec, path)


def _bulk_array(value: Any, spec: TensorInfo, kind: str) -> np.ndarray | None:
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.ndim > MAX_JSON_RANK:  # numpy 2 builds up to 64 dimensions: the walk names the depth
        return None
    found = array.dtype.kind
    if kind == "bool":
        return array if found == "b" else None
    np_dtype = spec.dtype.as_numpy_dtype
    if found == "i" or (found == "f" and kind == "float"):
        if kind == "int":
            info = _iinfo(np_dtype)
            if array.size and (array.min() < info.min or array.max() > info.max):
                return None  # the walk names the value out of range
            return array.astype(np_dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            narrow = array.astype(np_dtype)
        # A finite value that overflows the narrower float is an error; NaN and Inf sent as such are not.
        if found == "f" and not np.array_equal(np.isfinite(narrow), np.isfinite(array)):
            return None
        return narrow
    if array.size == 0 and found == "f":  # [] or [[]]: an empty tensor of the input's dtype
        return array.astype(np_dtype)
    return None


@functools.cache
def _iinfo(np_dtype) -> np.iinfo:
    return np.iinfo(np_dtype)


def _check_keys(obj: Mapping[str, Any], keys: list[str], *, where: str) -> None:
    missing = [k for k in keys if k not in obj]
    extra = sorted(k for k in obj if k not in keys)
    if missing:
        raise InvalidArgument(f"{where} is missing input(s) {missing}; the signature's inputs are {keys}")
    if extra:
        raise InvalidArgument(f"{where} has unknown input(s) {extra}; the signature's inputs are {keys}")


def _stack_rows(values: list, path_template: str, spec: TensorInfo) -> np.ndarray:
    kind = _kind(spec)
    if kind != "string":
        array = _bulk_array(values, spec, kind)
        if array is not None:
            return array
    elif all(type(v) is str for v in values):  # one string per instance, the common case
        array = np.empty(len(values), dtype=object)
        try:
            array[:] = [v.encode("utf-8") for v in values]
        except UnicodeEncodeError:  # name the instance
            for i, v in enumerate(values):
                _utf8(v, path_template.format(i))
        return array
    leaves: list = []
    first_shape = None
    for i, value in enumerate(values):
        path = path_template.format(i)
        shape = _walk_input(value, path, spec, leaves, depth=1)  # the batch is the first dimension
        if first_shape is None:
            first_shape = shape
        elif shape != first_shape:
            raise InvalidArgument(f"ragged instances: {path} has shape {list(shape)} but {path_template.format(0)} "
                                  f"has shape {list(first_shape)}; every instance must have the same shape for input "
                                  f"{spec.key!r}")
    return _to_array(leaves, (len(values), *first_shape), spec, path_template.format(0))


@functools.cache
def _dtype_kind(dtype: tf.DType) -> str | None:
    if dtype == tf.string:
        return "string"
    if dtype == tf.bool:
        return "bool"
    if dtype.is_floating:
        return "float"
    if dtype.is_integer:
        return "int"
    return None


def _kind(spec: TensorInfo) -> str:
    kind = _dtype_kind(spec.dtype)
    if kind is None:
        raise Unimplemented(f"input {spec.key!r} has dtype {spec.dtype_name}, which the JSON API does not support")
    return kind


# The deepest nesting a JSON tensor may have: numpy 1.x's limit on dimensions (numpy 2 allows 64; the
# limit stays 32 so that a request gets the same answer on either), checked while walking so that a
# deeply nested body is a 400 rather than a RecursionError.
MAX_JSON_RANK = 32


def _walk(value: Any, path: str, kind: str, leaves: list, depth: int = 0) -> tuple[int, ...]:
    """Append the leaves of a nested JSON list to ``leaves`` (checked); return its shape."""
    if isinstance(value, list):
        if depth >= MAX_JSON_RANK:
            raise InvalidArgument(f"{quoted(path)}: nested deeper than {MAX_JSON_RANK} levels; a tensor here has at "
                                  f"most {MAX_JSON_RANK} dimensions")
        if not value:
            return (0,)
        shapes = [_walk(v, f"{path}[{i}]", kind, leaves, depth + 1) for i, v in enumerate(value)]
        for i, shape in enumerate(shapes[1:], start=1):
            if shape != shapes[0]:
                raise InvalidArgument(f"ragged list at {path}: element [{i}] has shape {list(shape)} but element "
                                      f"[0] has shape {list(shapes[0])}; nested lists must be rectangular")
        return (len(value), *shapes[0])
    leaves.append(_leaf(value, path, kind))
    return ()


class _WrongType(Exception):
    """A JSON leaf of the wrong type; the caller, which knows the input's dtype, words the error."""

    def __init__(self, value: Any, path: str, expected: str):
        super().__init__(path)
        self.value, self.path, self.expected = value, path, expected

    def error(self, spec: TensorInfo) -> InvalidArgument:
        # TF Serving's words (json_tensor.cc, TypeError), then where the value is and what it should be.
        return InvalidArgument(f"JSON Value: {_debug_json(self.value)} Type: {_rapidjson_type(self.value)} is not of "
                               f"expected type: {spec.type_string} ({self.path} of input {spec.key!r} must be "
                               f"{self.expected})")


def _leaf(value: Any, path: str, kind: str) -> Any:
    if kind == "string":
        if isinstance(value, str):
            return _utf8(value, path)
        if isinstance(value, dict) and is_b64(value):
            return decode_b64(value["b64"], path)
        raise _WrongType(value, path, 'a string or {"b64": ...}')
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _WrongType(value, path, "true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _WrongType(value, path, "a number")
    if kind == "int" and isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _WrongType(value, path, "an integer")
        return int(value)
    return value


def _utf8(text: str, path: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape, "\\ud800", which the JSON fallback parser lets through
        raise InvalidArgument(f"{quoted(path)}: the string holds a lone surrogate (an unpaired \\uD800-\\uDFFF "
                              f"escape), which is not valid UTF-8") from None


def _walk_input(value: Any, path: str, spec: TensorInfo, leaves: list, depth: int = 0) -> tuple[int, ...]:
    try:
        return _walk(value, path, _kind(spec), leaves, depth)
    except _WrongType as e:
        raise e.error(spec) from None


_MAX_DEBUG_JSON_CHARS = 200  # TF Serving truncates its debug string too (kMaxJsonDebugStringBytes)


def _debug_json(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _MAX_DEBUG_JSON_CHARS else text[:_MAX_DEBUG_JSON_CHARS] + "..."


def _rapidjson_type(value: Any) -> str:
    """The JSON type as TF Serving's rapidjson names it."""
    if value is None:
        return "Null"
    if value is True or value is False:
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


def _to_array(leaves: list, shape: tuple[int, ...], spec: TensorInfo, path: str) -> np.ndarray:
    kind = _kind(spec)
    if kind == "string":
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    np_dtype = spec.dtype.as_numpy_dtype
    if kind == "int":
        info = np.iinfo(np_dtype)
        if leaves and (min(leaves) < info.min or max(leaves) > info.max):
            raise InvalidArgument(f"{path}: a value of input {spec.key!r} is out of range for {spec.dtype_name} "
                                  f"[{info.min}, {info.max}]")
        return np.asarray(leaves, dtype=np_dtype).reshape(shape)
    if kind == "bool":
        return np.asarray(leaves, dtype=bool).reshape(shape)
    try:
        wide = np.asarray(leaves, dtype=np.float64)
    except OverflowError:
        raise InvalidArgument(f"{path}: a value of input {spec.key!r} is too large for {spec.dtype_name}") from None
    with np.errstate(over="ignore", invalid="ignore"):
        array = wide.astype(np_dtype)
    if not np.array_equal(np.isfinite(array), np.isfinite(wide)):
        raise InvalidArgument(f"{path}: a value of input {spec.key!r} is out of range for {spec.dtype_name}")
    return array.reshape(shape)


def is_b64(value: Any) -> bool:
    """Whether a JSON value is a binary string, ``{"b64": "..."}``."""
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def decode_b64(text: Any, path: str) -> bytes:
    """Decode a ``{"b64": ...}`` payload (standard or URL-safe alphabet)."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{path}: the value of 'b64' must be a string, got {json_type(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:  # the URL-safe alphabet, padding optional; still strict: a character outside it is an error
            return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"{quoted(path)}: 'b64' value is not valid base64") from None


def json_type(value: Any) -> str:
    """A JSON value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --------------------------------------------------------------------------- encoding


def encode_predictions(outputs: Mapping[str, np.ndarray]) -> list:
    """Row-format response: one entry per example (an object, unless there is a single output)."""
    sizes = {}
    for key, array in outputs.items():
        if np.ndim(array) == 0:
            raise InvalidArgument(f"output {key!r} is a scalar, so it cannot be split into per-instance "
                                  f"predictions; use the columnar 'inputs' format")
        sizes[key] = len(array)
    if len(set(sizes.values())) > 1:
        raise InvalidArgument(f"outputs have different batch sizes {sizes}, so they cannot be split into "
                              f"per-instance predictions; use the columnar 'inputs' format")
    encoded = {key: _jsonable(array, key) for key, array in outputs.items()}
    if len(encoded) == 1:
        return next(iter(encoded.values()))
    keys = list(encoded)
    rows = len(encoded[keys[0]]) if keys else 0
    return [{k: encoded[k][i] for k in keys} for i in range(rows)]


def encode_outputs(outputs: Mapping[str, np.ndarray]) -> Any:
    """Columnar response: one value per output (the bare value if there is a single output)."""
    encoded = {key: _jsonable(array, key) for key, array in outputs.items()}
    if len(encoded) == 1:
        return next(iter(encoded.values()))
    return encoded


class _Literal:
    """A non-finite float, written as TF Serving writes it (``NaN``, ``Infinity``, ``-Infinity``)."""

    def __init__(self, text: bytes):
        self.fragment = orjson.Fragment(text)


_NAN, _INF, _NINF = _Literal(b"NaN"), _Literal(b"Infinity"), _Literal(b"-Infinity")
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, _Literal):
        return value.fragment
    if isinstance(value, np.ndarray):  # non-contiguous or of a dtype orjson does not write
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(content: Any) -> bytes:
    """JSON bytes of a response, numeric arrays written by orjson in one pass.

    Float32 values are written with the shortest text that reads back to the
    same float32 (``0.1``, not ``0.10000000149011612``); NaN and infinities as
    ``NaN`` / ``Infinity`` / ``-Infinity``, as TF Serving writes them.
    """
    return orjson.dumps(content, default=_default, option=_DUMPS_OPTIONS)


def _jsonable(array: np.ndarray, key: str) -> Any:
    """An output as something :func:`dumps` writes: numeric arrays stay arrays (no per-value Python work)."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        if array.dtype.itemsize < 4 or array.dtype.name == "bfloat16":
            array = array.astype(np.float32)
        finite = np.isfinite(array)
        if not finite.all():
            # float32 -> shortest decimal text -> float64, so 0.1f is written as 0.1 here too.
            values = (array if array.dtype == np.float64 else array.astype(str).astype(np.float64)).astype(object)
            values[np.isnan(array)] = _NAN
            values[np.isposinf(array)] = _INF
            values[np.isneginf(array)] = _NINF
            return values.tolist() if array.ndim else values.item()
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array) if array.ndim else array[()]
    return to_json_value(array, key)


def to_json_value(array: np.ndarray, key: str = "") -> Any:
    """A tensor as nested JSON lists.

    Floats narrower than 64 bits are written with the shortest text that reads
    back to the same value, so ``0.1f`` prints as ``0.1`` rather than
    ``0.10000000149011612``.
    """
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        encode = _b64_text if key.endswith("_bytes") else _text_or_b64
        flat = [encode(v) for v in array.reshape(-1).tolist()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    if array.dtype.kind == "f" and array.dtype.itemsize < 8 or array.dtype.name == "bfloat16":
        return array.astype(np.float32).astype(str).astype(np.float64).tolist()
    if array.dtype.kind in "biuf":
        return array.tolist()
    raise Unimplemented(f"output {key!r} has dtype {array.dtype}, which the JSON API does not support")


def _b64_text(value: Any) -> dict:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return {"b64": base64.b64encode(data).decode("ascii")}


def _text_or_b64(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return _b64_text(value)
    return value
