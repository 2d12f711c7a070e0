"""TF Lite versions: ``<base_path>/<version>/model.tflite`` served with ``tf.lite.Interpreter``.

TF Serving loads ``model.tflite`` instead of ``saved_model.pb`` when started with
``--prefer_tflite_model`` (``saved_model_bundle_factory.cc``: the TF Lite file wins
when it exists, else the SavedModel loads) and runs it in a ``TfLiteSession``
(``tflite_session.cc``) over a pool of interpreters (``tflite_interpreter_pool.cc``).
This module does the same with the Python interpreter, so the rest of the server
sees an ordinary :class:`~serving.servable.Servable`:

* Signatures come from, in this order: SignatureDefs stored in the model's
  ``signature_defs_metadata`` buffer (the only kind TF Serving reads), the
  flatbuffer's own SignatureDefs (what ``TFLiteConverter`` writes today; run with
  signature runners), or, with neither, one generated ``serving_default`` over the
  main subgraph's inputs and outputs keyed by tensor name without its ``:0`` suffix
  (TF Serving's fallback).
* Every signature's method is ``tensorflow/serving/predict`` unless a metadata
  SignatureDef says otherwise; its TensorInfos carry the tensor's dtype and its
  ``shape_signature`` (-1 for a dynamic dimension).
* Inputs of a new shape resize the interpreter's input tensors (as TF Serving
  does); unlike TF Serving, the rank and the static dimensions after the first are
  checked first, because a resize to a wrong shape can run and silently return
  wrong numbers (a Dense layer flattens any input whose size divides its width).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.errors import Internal, InvalidArgument, ServingError
from serving.servable import (
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    SERVE_TAG,
    TFLITE_FILE,
    TFLITE_OFF,
    Servable,
    Signature,
    SignatureDef,
    TensorInfo,
)

logger = logging.getLogger(__name__)

# TF Lite's name for the metadata entry holding serialized SignatureDefs
# (tensorflow/lite/tools/signature/signature_def_util.h).
_SIGNATURE_DEFS_METADATA = b"signature_defs_metadata"


def load_version(name: str, version: int, path: str, *, tags: Sequence[str] = (SERVE_TAG,),
                 tflite: str = TFLITE_OFF, pool_size: int | None = None) -> Servable:
    """The manager's loader: ``model.tflite`` when the TF Lite mode allows and it exists, else the SavedModel.

    ``tflite`` is one of :data:`serving.servable.TFLITE_MODES`: ``off`` never reads
    ``model.tflite``; ``prefer`` (``--prefer_tflite_model``) reads it when present;
    ``only`` (``--use_tflite_model``) reads nothing else. ``pool_size``: interpreters running at once
    (``--num_tflite_pools``; default: the schedulable CPUs).
    """
    if tflite != TFLITE_OFF and tf.io.gfile.exists(os.path.join(path, TFLITE_FILE)):
        return TfLiteServable.load(name, version, path, pool_size=pool_size)
    return Servable.load(name, version, path, tags=tags)


def schedulable_cpus() -> int:
    """CPUs this process may run on: TF Serving's default number of interpreters (``--num_tflite_pools``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class TfLiteServable(Servable):
    """A ``model.tflite`` version: SignatureDefs from the interpreter, a pool of interpreters to run them."""

    @classmethod
    def load(cls, name: str, version: int, path: str, tags: Sequence[str] = (), *,
             pool_size: int | None = None) -> TfLiteServable:
        """Read ``<path>/model.tflite`` and build its signatures. Raises ValueError on a model TF Lite cannot run.

        ``tags`` (Servable.load's MetaGraph tags) mean nothing to a TF Lite model and are ignored.
        ``pool_size``: the most interpreters running at once (default: the schedulable CPUs).
        """
        file_path = os.path.join(path, TFLITE_FILE)
        with tf.io.gfile.GFile(file_path, "rb") as f:
            content = f.read()
        pool = _InterpreterPool(content, pool_size or schedulable_cpus())
        try:
            first = pool.new_slot()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{file_path} cannot be loaded by tf.lite.Interpreter: {e}") from None
        signature_defs, signatures = _signatures(content, first, pool, name, version)
        pool.give_back(first)
        servable = cls(name, version, path, signature_defs, signatures, pool)
        logger.info("%s version %d: TF Lite model %s, signatures %s", name, version, file_path, sorted(signatures))
        return servable

    def unload(self) -> None:
        pool = self._loaded
        super().unload()
        if isinstance(pool, _InterpreterPool):
            pool.close()  # idle interpreters go now; in-flight ones when their call returns


class TfLiteSignature(Signature):
    """One signature of a TF Lite model: checks the inputs, then runs on an interpreter from the pool.

    ``run`` takes ``{input key: array}`` with each array of the input's dtype (numbers
    of the same kind are converted) and rank; a dimension that is -1 in the model, or
    the first one, may have any size. It returns ``{output key: array}``.
    """

    def __init__(self, key: str, signature_def: SignatureDef, pool: _InterpreterPool,
                 invoke: Callable[[_Slot, dict[str, np.ndarray]], dict[str, np.ndarray]]):
        super().__init__(key, signature_def, fn=None, owner=pool)
        self._pool = pool
        self._invoke = invoke

    def run(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self._checked(tensors)
        try:
            with self._pool.slot() as slot:
                return self._invoke(slot, feeds)
        except ServingError:
            raise
        except (ValueError, RuntimeError) as e:
            # Raised by AllocateTensors (an op's Prepare refused the resized shapes) or Invoke.
            text = str(e).strip()
            if any(word in text.lower() for word in ("allocate", "prepare", "resize")):
                raise InvalidArgument(f"signature {self.key!r} rejected the input shapes "
                                      f"{ {k: list(v.shape) for k, v in feeds.items()} }: {text}") from None
            raise Internal(f"internal error while running TF Lite signature {self.key!r}: {text}") from None

    def _checked(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [k for k in self.inputs if k not in tensors]
        extra = sorted(k for k in tensors if k not in self.inputs)
        if missing or extra:
            detail = "; ".join(part for part in (f"missing input(s) {missing}" if missing else "",
                                                 f"unknown input(s) {extra}" if extra else "") if part)
            raise InvalidArgument(f"signature {self.key!r} takes inputs {list(self.inputs)}: {detail}")
        return {key: _checked_array(self.key, spec, tensors[key]) for key, spec in self.inputs.items()}


def _checked_array(signature: str, spec: TensorInfo, value: Any) -> np.ndarray:
    """``value`` as the array the interpreter takes for ``spec``; InvalidArgument naming the input if it cannot be."""
    array = np.asarray(value)
    if spec.dtype == tf.string:
        if array.dtype.kind == "U":
            array = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
        elif array.dtype.kind not in "OS":
            raise InvalidArgument(f"input {spec.key!r} of signature {signature!r} expects DT_STRING, got "
                                  f"{_dtype_name(array.dtype)}")
    else:
        target = np.dtype(spec.dtype.as_numpy_dtype)
        if array.dtype != target:
            if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, target, casting="same_kind"):
                raise InvalidArgument(f"input {spec.key!r} of signature {signature!r} expects {spec.dtype_name}, "
                                      f"got {_dtype_name(array.dtype)}")
            if target.kind in "iu" and array.size and array.dtype.kind in "iu":
                info = np.iinfo(target)
                if array.min() < info.min or array.max() > info.max:
                    raise InvalidArgument(f"input {spec.key!r} of signature {signature!r}: a value is out of range "
                                          f"for {spec.dtype_name}")
            array = array.astype(target)
    if spec.shape is not None:
        if array.ndim != len(spec.shape) or any(
                want is not None and got != want for i, (got, want) in enumerate(zip(array.shape, spec.shape)) if i):
            raise InvalidArgument(f"input {spec.key!r} of signature {signature!r} has shape {list(array.shape)}; "
                                  f"the model takes {spec.shape_text}")
    return array


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.kind in "OSU":
        return "DT_STRING"
    try:
        return types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)
    except TypeError:
        return str(dtype)


# ---------------------------------------------------------------------------------------- interpreters


class _Slot:
    """One interpreter, its signature runners and the input shapes it was last allocated for."""

    def __init__(self, interpreter: tf.lite.Interpreter):
        self.interpreter = interpreter
        self.runners: dict[str, Any] = {}
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.allocated = False

    def runner(self, key: str):
        runner = self.runners.get(key)
        if runner is None:
            runner = self.runners[key] = self.interpreter.get_signature_runner(key)
        return runner


class _InterpreterPool:
    """At most ``size`` interpreters of one model, created on demand.

    An interpreter is not thread-safe, but ``Invoke`` releases the GIL: two
    interpreters on two cores answer twice as many concurrent calls as one behind a
    lock (6.2 -> 2.9 ms a call, 4 Dense(1024) layers, batch 64, two threads;
    creating one costs about 0.1 ms). TF Serving's default is one single-threaded
    interpreter per schedulable CPU; so is this one's. An interpreter whose call
    failed is dropped rather than reused.
    """

    def __init__(self, content: bytes, size: int):
        self._content = content
        self._size = max(1, size)
        self._idle: list[_Slot] = []
        self._created = 0
        self._closed = False
        self._cond = threading.Condition()

    def new_slot(self) -> _Slot:
        """A new interpreter (counted against the pool's size); give it back with :meth:`give_back`."""
        with self._cond:
            self._created += 1
        return self._build()

    def _build(self) -> _Slot:
        """An interpreter for a place already counted in ``_created`` (given back if this fails)."""
        try:
            # One thread each, as TF Serving: the pool, not the interpreter, uses the cores.
            return _Slot(tf.lite.Interpreter(model_content=self._content, num_threads=1))
        except BaseException:
            self._release(None)
            raise

    def give_back(self, slot: _Slot | None) -> None:
        self._release(slot)

    def _release(self, slot: _Slot | None) -> None:
        with self._cond:
            if slot is not None and not self._closed:
                self._idle.append(slot)
            else:
                self._created -= 1
            self._cond.notify()

    @contextmanager
    def slot(self) -> Iterator[_Slot]:
        """An idle interpreter, a new one while fewer than ``size`` exist, else the next one given back."""
        with self._cond:
            while not self._idle and self._created >= self._size:
                self._cond.wait()
            slot = self._idle.pop() if self._idle else None
            if slot is None:
                self._created += 1  # counted under the lock, so concurrent callers never exceed the size
        if slot is None:
            slot = self._build()
        try:
            yield slot
        except BaseException:
            self._release(None)  # its state after a failed resize or invoke is not trusted
            raise
        self._release(slot)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._created -= len(self._idle)
            self._idle.clear()


# ---------------------------------------------------------------------------------------- signatures


def _signatures(content: bytes, first: _Slot, pool: _InterpreterPool, name: str, version: int,
                ) -> tuple[dict[str, SignatureDef], dict[str, TfLiteSignature]]:
    interpreter = first.interpreter
    main_inputs = {d["name"]: d for d in interpreter.get_input_details()}
    main_outputs = {d["name"]: d for d in interpreter.get_output_details()}
    metadata_defs = _metadata_signature_defs(content)
    defs: dict[str, SignatureDef] = {}
    signatures: dict[str, TfLiteSignature] = {}
    if metadata_defs:
        for key, stored in metadata_defs.items():
            signature_def = SignatureDef(method_name=stored.method_name or PREDICT_METHOD)
            input_index = _fill(signature_def.inputs, stored.inputs, main_inputs, key, "input")
            output_index = _fill(signature_def.outputs, stored.outputs, main_outputs, key, "output")
            defs[key] = signature_def
            signatures[key] = TfLiteSignature(key, signature_def, pool, _by_index(input_index, output_index))
        return defs, signatures
    listed = interpreter.get_signature_list()
    if listed:
        for key in listed:
            runner = first.runner(key)
            signature_def = SignatureDef(method_name=PREDICT_METHOD)
            for tensor_key, detail in runner.get_input_details().items():
                _tensor_info(signature_def.inputs[tensor_key], detail)
            for tensor_key, detail in runner.get_output_details().items():
                _tensor_info(signature_def.outputs[tensor_key], detail)
            defs[key] = signature_def
            signatures[key] = TfLiteSignature(key, signature_def, pool, _by_runner(key))
        return defs, signatures
    logger.warning("%s version %d: the TF Lite model has no SignatureDefs; serving %r over its tensors, keyed by "
                   "tensor name (as TF Serving)", name, version, DEFAULT_SIGNATURE)
    signature_def = SignatureDef(method_name=PREDICT_METHOD)
    input_index, output_index = {}, {}
    for detail in interpreter.get_input_details():
        key = _legacy_name(detail["name"])
        _tensor_info(signature_def.inputs[key], detail)
        input_index[key] = detail["index"]
    for detail in interpreter.get_output_details():
        key = _legacy_name(detail["name"])
        _tensor_info(signature_def.outputs[key], detail)
        output_index[key] = detail["index"]
    defs[DEFAULT_SIGNATURE] = signature_def
    signatures[DEFAULT_SIGNATURE] = TfLiteSignature(DEFAULT_SIGNATURE, signature_def, pool,
                                                    _by_index(input_index, output_index))
    return defs, signatures


def _legacy_name(tensor_name: str) -> str:
    """A TF tensor name without its ``:0`` suffix, as early TF Lite converters wrote them (and TF Serving keys)."""
    return tensor_name.split(":", 1)[0]


def _tensor_info(info, detail: Mapping[str, Any]) -> None:
    """Fill a TensorInfo proto from an interpreter tensor detail: name, dtype, shape_signature (-1: dynamic)."""
    info.name = detail["name"]
    info.dtype = _tf_dtype(detail["dtype"]).as_datatype_enum
    shape = detail.get("shape_signature")
    if shape is None or (len(shape) == 0 and len(detail["shape"]) > 0):
        shape = detail["shape"]
    info.tensor_shape.SetInParent()
    for size in shape:
        info.tensor_shape.dim.add(size=int(size))


def _tf_dtype(np_type) -> tf.DType:
    if np_type in (np.bytes_, np.object_, np.str_):
        return tf.string
    return tf.as_dtype(np_type)


def _fill(target, stored, details: Mapping[str, Mapping[str, Any]], signature: str, kind: str) -> dict[str, int]:
    """Metadata TensorInfos resolved to the main subgraph's tensors (``x:0`` may be stored as ``x``)."""
    index = {}
    for key, info in stored.items():
        detail = details.get(info.name) or details.get(_legacy_name(info.name))
        if detail is None:
            raise ValueError(f"signature {signature!r} {kind} {key!r} references an unknown tensor {info.name!r}; "
                             f"the model's {kind}s are {sorted(details)}")
        _tensor_info(target[key], detail)
        index[key] = detail["index"]
    return index


def _metadata_signature_defs(content: bytes) -> dict[str, SignatureDef]:
    """SignatureDefs stored in the ``signature_defs_metadata`` buffer (a FlexBuffer map of serialized protos)."""
    try:
        from flatbuffers import flexbuffers
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:  # TensorFlow's own dependencies; without them, no metadata SignatureDefs
        return {}
    model = schema.Model.GetRootAsModel(bytearray(content), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() != _SIGNATURE_DEFS_METADATA:
            continue
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        if not isinstance(data, np.ndarray) or not data.size:
            return {}
        stored = flexbuffers.GetRoot(bytearray(data.tobytes())).AsMap
        defs = {}
        for key, value in zip(stored.Keys, stored.Values):
            signature_def = SignatureDef()
            signature_def.ParseFromString(bytes(value.AsStringBytes))
            defs[key.AsKey] = signature_def
        return defs
    return {}


def _by_runner(key: str) -> Callable[[_Slot, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Run a flatbuffer signature with its signature runner (which resizes inputs of a new shape itself)."""

    def invoke(slot: _Slot, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return slot.runner(key)(**feeds)

    return invoke


def _by_index(inputs: Mapping[str, int], outputs: Mapping[str, int],
              ) -> Callable[[_Slot, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Run the main subgraph by tensor index: resize and re-allocate only when an input's shape changed."""

    def invoke(slot: _Slot, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        interpreter = slot.interpreter
        for key, index in inputs.items():
            shape = feeds[key].shape
            if slot.shapes.get(index) != shape:
                interpreter.resize_tensor_input(index, list(shape))
                slot.shapes[index] = shape
                slot.allocated = False
        if not slot.allocated:
            interpreter.allocate_tensors()
            slot.allocated = True
        for key, index in inputs.items():
            interpreter.set_tensor(index, feeds[key])
        interpreter.invoke()
        return {key: interpreter.get_tensor(index) for key, index in outputs.items()}

    return invoke
