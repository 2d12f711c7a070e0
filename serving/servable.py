"""One loaded SavedModel version: its SignatureDefs and its callable signatures.

TensorFlow alone loads the model (``tf.saved_model.load``); the SignatureDefs,
with their method names and tensor specs, are read from ``saved_model.pb``
itself because the loaded object no longer carries the method names that
classify and regress dispatch on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow.python.eager import context
from tensorflow.python.framework import constant_op
from tensorflow.python.util import deprecation

from serving.errors import InvalidArgument, ServingError, from_tf_error

logger = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# TF2 adds this pseudo-signature to every SavedModel; it is metadata, not callable.
INIT_OP_SIGNATURE = "__saved_model_init_op"

SignatureDef = meta_graph_pb2.SignatureDef


def dtype_string(enum: int) -> str:
    """A DataType enum as TensorFlow's DataTypeString spells it: ``float``, ``int64``, ``string``, ``resource``."""
    try:
        return types_pb2.DataType.Name(enum).removeprefix("DT_").lower()
    except ValueError:
        return f"unknown dtype {enum}"


@dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: its key, dtype and static shape."""

    key: str
    dtype: tf.DType
    shape: tuple[int | None, ...] | None  # None: unknown rank; None dims: unknown size

    @classmethod
    def from_proto(cls, key: str, info: meta_graph_pb2.TensorInfo) -> TensorInfo:
        dtype = tf.as_dtype(info.dtype) if info.dtype else tf.float32
        if info.tensor_shape.unknown_rank:
            return cls(key, dtype, None)
        return cls(key, dtype, tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim))

    @property
    def dtype_name(self) -> str:
        """The dtype as SignatureDefs and TF Serving spell it, e.g. ``DT_FLOAT``."""
        return types_pb2.DataType.Name(self.dtype.as_datatype_enum)

    @property
    def type_string(self) -> str:
        """The dtype as TensorFlow's messages spell it, e.g. ``float`` (:func:`dtype_string`)."""
        return dtype_string(self.dtype.as_datatype_enum)

    @property
    def shape_text(self) -> str:
        if self.shape is None:
            return "<unknown rank>"
        return "[" + ", ".join("-1" if d is None else str(d) for d in self.shape) + "]"


class Signature:
    """A callable signature: numpy arrays in, numpy arrays out, errors as ServingError."""

    def __init__(self, key: str, signature_def: SignatureDef, fn, owner: object = None):
        self.key = key
        self.method_name = signature_def.method_name
        self.inputs = {k: TensorInfo.from_proto(k, v) for k, v in sorted(signature_def.inputs.items())}
        self.outputs = {k: TensorInfo.from_proto(k, v) for k, v in sorted(signature_def.outputs.items())}
        self._fn = fn
        self._flat = _flat_inputs(fn, self.inputs) if fn is not None else None
        # The loaded object owns the variables the function reads; a request still
        # running on an unloaded version must keep them alive.
        self._owner = owner

    @property
    def batch_major(self) -> bool:
        """Whether every input and output has an unknown leading (batch) dimension.

        Only such signatures can have requests concatenated and results split
        along axis 0 by the batcher.
        """
        specs = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(s.shape is not None and len(s.shape) >= 1 and s.shape[0] is None
                                         for s in specs)

    def run(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature once. Keys must be exactly the signature's inputs."""
        if set(tensors) != set(self.inputs):
            raise InvalidArgument(f"signature {self.key!r} takes inputs {list(self.inputs)}, got {sorted(tensors)}")
        try:
            if self._flat is not None:
                result = self._run_flat(tensors)
            else:
                feeds = {k: tf.convert_to_tensor(v, dtype=self.inputs[k].dtype) for k, v in tensors.items()}
                result = self._fn(**feeds)
            return {k: v.numpy() for k, v in result.items()}
        except ServingError:
            raise
        except tf.errors.OpError as e:
            raise from_tf_error(e, during=f"running signature {self.key!r}") from e
        except (TypeError, ValueError) as e:
            # Raised while binding arguments, before any op runs: a shape or dtype the
            # concrete function does not accept.
            raise InvalidArgument(f"signature {self.key!r} rejected the inputs: {e}") from e

    def _run_flat(self, tensors: Mapping[str, np.ndarray]) -> dict[str, tf.Tensor]:
        # The structured call re-binds keyword arguments and re-converts every tensor through
        # TensorFlow's dispatch layers: ~70 us per input, 3 ms for the census model's 39 inputs
        # (bench/serving.py). The same conversion, then the graph call. Neither call checks static
        # shapes (a restored function's graph decides, as in TF Serving): tests/serving/test_bad_inputs.py.
        ctx = context.context()
        feeds = [constant_op.convert_to_eager_tensor(tensors[key], ctx, spec.dtype) for key, spec in self._flat]
        return self._fn._call_flat(feeds, self._fn.captured_inputs)


def _flat_inputs(fn, inputs: Mapping[str, TensorInfo]) -> list[tuple[str, tf.TensorSpec]] | None:
    """The (key, TensorSpec) of ``fn``'s flat positional inputs, or None where only the structured call works.

    A restored signature function takes keyword tensors only; its flat inputs are
    those keywords in ``tf.nest`` order, followed by its captured variables.
    Composite inputs (ragged, sparse) and anything else unexpected keep the
    structured call.
    """
    try:
        args, kwargs = fn.structured_input_signature
        flat_count = len(fn.inputs) - len(fn.captured_inputs)
        call_flat = fn._call_flat
    except (AttributeError, TypeError, ValueError):
        return None
    if args or not callable(call_flat) or set(kwargs) != set(inputs) or len(kwargs) != flat_count:
        return None
    if not all(type(spec) is tf.TensorSpec for spec in kwargs.values()):
        return None
    order = tf.nest.flatten({key: key for key in kwargs})
    return [(key, kwargs[key]) for key in order]


class GraphSignature(Signature):
    """A signature of a TF1 graph SavedModel, run with ``Session.run`` on the tensors the SignatureDef names.

    As in TF Serving, the feeds' shapes are checked by the graph's placeholders
    only, not against the SignatureDef's (informational) shapes.
    """

    def __init__(self, key: str, signature_def: SignatureDef, owner: _SessionOwner):
        super().__init__(key, signature_def, fn=None, owner=owner)  # the Session closes after the last call
        self._input_keys = sorted(signature_def.inputs)
        # Feed what the graph's tensor takes: a SignatureDef's dtype may be wrong (TF Serving's own
        # half_plus_three declares its serialized-Example input DT_FLOAT) and TF Serving ignores it.
        graph = owner.session.graph
        # What the graph takes is what a request must send (the gRPC reader checks it, as Session::Run does).
        self.inputs = {k: dataclasses.replace(self.inputs[k],
                                              dtype=graph.get_tensor_by_name(signature_def.inputs[k].name).dtype)
                       for k in self._input_keys}
        self._output_keys = sorted(signature_def.outputs)
        options = config_pb2.CallableOptions(
            feed=[signature_def.inputs[k].name for k in self._input_keys],
            fetch=[signature_def.outputs[k].name for k in self._output_keys])
        # A callable feeds the tensors as they are (no Python-side check of the placeholders' static
        # shapes, as in TF Serving's C++ Session::Run) and skips Session.run's per-call feed handling.
        self._call = owner.session._make_callable_from_options(options)

    def run(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(tensors) != set(self.inputs):
            raise InvalidArgument(f"signature {self.key!r} takes inputs {list(self.inputs)}, got {sorted(tensors)}")
        feeds = [np.asarray(tensors[key], dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
                 for key, dtype in ((k, self.inputs[k].dtype) for k in self._input_keys)]
        try:
            return dict(zip(self._output_keys, self._call(*feeds)))
        except tf.errors.OpError as e:
            raise from_tf_error(e, during=f"running signature {self.key!r}") from e
        except (TypeError, ValueError) as e:  # e.g. "Cannot feed value of shape ..." from a placeholder
            raise InvalidArgument(f"signature {self.key!r} rejected the inputs: {e}") from e


class Servable:
    """A model version loaded from ``<base_path>/<version>``."""

    def __init__(self, name: str, version: int, path: str, signature_defs: Mapping[str, SignatureDef],
                 signatures: Mapping[str, Signature], loaded: object):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = dict(signature_defs)
        self.signatures = dict(signatures)
        self.loaded_at = time.time()
        self.unloaded = False
        self._loaded = loaded  # keeps the restored variables alive

    @classmethod
    def load(cls, name: str, version: int, path: str, tags: Sequence[str] = (SERVE_TAG,)) -> Servable:
        """Load a SavedModel directory (the MetaGraph with ``tags``). Raises on any problem (the caller logs it)."""
        tags = list(tags)
        meta_graph = read_meta_graph(path, tags)
        if not meta_graph.object_graph_def.nodes:
            return cls._load_graph(name, version, path, meta_graph, tags)
        loaded = tf.saved_model.load(path, tags=tags)
        functions = dict(getattr(loaded, "signatures", {}) or {})
        signatures = {}
        for key, signature_def in meta_graph.signature_def.items():
            if key == INIT_OP_SIGNATURE:
                continue
            if key not in functions:
                logger.warning("%s version %d: signature %r is in saved_model.pb but not callable; skipped",
                               name, version, key)
                continue
            signatures[key] = Signature(key, signature_def, functions[key], owner=loaded)
        if not signatures:
            raise ValueError(f"SavedModel at {path} has no callable signatures")
        return cls(name, version, path, meta_graph.signature_def, signatures, loaded)

    @classmethod
    def _load_graph(cls, name: str, version: int, path: str, meta_graph: meta_graph_pb2.MetaGraphDef,
                    tags: list[str]) -> Servable:
        # A TF1 graph SavedModel (no object graph): tf.saved_model.load would prune each signature into a
        # function and re-check the SignatureDef's shapes; TF Serving runs the graph in a Session instead.
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph)
        with graph.as_default(), deprecation.silence():  # the v1 loader is the right tool for a v1 graph
            tf.compat.v1.saved_model.loader.load(session, tags, path)
        owner = _SessionOwner(session)
        signatures = {key: GraphSignature(key, signature_def, owner)
                      for key, signature_def in meta_graph.signature_def.items() if key != INIT_OP_SIGNATURE}
        if not signatures:
            raise ValueError(f"SavedModel at {path} has no signatures")
        return cls(name, version, path, meta_graph.signature_def, signatures, owner)

    def signature(self, key: str | None) -> Signature:
        """The signature named ``key`` (``serving_default`` when empty)."""
        key = key or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise InvalidArgument(
                f"signature_name {key!r} not found in model {self.name!r} version {self.version}; "
                f"available signatures: {sorted(self.signatures)}") from None

    def unload(self) -> None:
        """Mark unloaded and drop the model; in-flight calls keep their own references."""
        self.unloaded = True
        self._loaded = None


class _SessionOwner:
    """Closes a TF1 servable's Session once nothing (servable, in-flight signature) references it."""

    def __init__(self, session):
        self.session = session

    def __del__(self):
        self.session.close()


def read_meta_graph(path: str, tags: str | Sequence[str] = SERVE_TAG) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef with exactly ``tags`` from ``saved_model.pb`` (or ``.pbtxt``)."""
    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(path, "saved_model.pb")
    pbtxt_path = os.path.join(path, "saved_model.pbtxt")
    if tf.io.gfile.exists(pb_path):
        with tf.io.gfile.GFile(pb_path, "rb") as f:
            data = f.read()
        try:
            with warnings.catch_warnings():
                # The C++ parser only warns on some truncated or garbage input.
                warnings.simplefilter("error", RuntimeWarning)
                saved_model.ParseFromString(data)
        except (DecodeError, RuntimeWarning) as e:
            raise ValueError(f"{pb_path} is not a valid SavedModel proto: {e}") from None
    elif tf.io.gfile.exists(pbtxt_path):
        with tf.io.gfile.GFile(pbtxt_path, "r") as f:
            text_format.Parse(f.read(), saved_model)
    else:
        raise FileNotFoundError(f"no saved_model.pb or saved_model.pbtxt in {path}")
    wanted = {tags} if isinstance(tags, str) else set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    for meta_graph in saved_model.meta_graphs:  # a single tag may name a MetaGraph that has more
        if len(wanted) == 1 and wanted <= set(meta_graph.meta_info_def.tags):
            return meta_graph
    raise ValueError(f"SavedModel at {path} has no MetaGraph tagged {sorted(wanted)}")


def has_saved_model(path: str) -> bool:
    """Whether ``path`` holds a SavedModel file yet (a version dir may still be being written)."""
    return any(tf.io.gfile.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))


# Which model file a version directory is served from (``--prefer_tflite_model``, ``--use_tflite_model``).
TFLITE_FILE = "model.tflite"
TFLITE_OFF = "off"  # saved_model.pb(txt) only; model.tflite is ignored (TF Serving's default)
TFLITE_PREFER = "prefer"  # model.tflite when present, else the SavedModel (--prefer_tflite_model)
TFLITE_ONLY = "only"  # model.tflite only, as TF Serving's old --use_tflite_model
TFLITE_MODES = (TFLITE_OFF, TFLITE_PREFER, TFLITE_ONLY)


def has_model(path: str, tflite: str = TFLITE_OFF) -> bool:
    """Whether ``path`` holds a file this TF Lite mode serves (a SavedModel, or ``model.tflite`` when allowed)."""
    if tflite != TFLITE_OFF and tf.io.gfile.exists(os.path.join(path, TFLITE_FILE)):
        return True
    return tflite != TFLITE_ONLY and has_saved_model(path)


def missing_model_message(path: str, tflite: str = TFLITE_OFF) -> str:
    """Why :func:`has_model` is false for ``path``, for the log line of a version that waits."""
    if tflite == TFLITE_ONLY:
        return f"has no {TFLITE_FILE} yet (--use_tflite_model serves nothing else)"
    if tflite == TFLITE_PREFER:
        return f"has no saved_model.pb or {TFLITE_FILE} yet"
    if tf.io.gfile.exists(os.path.join(path, TFLITE_FILE)):
        return f"has {TFLITE_FILE} but no saved_model.pb; start with --prefer_tflite_model to serve TF Lite models"
    return "has no saved_model.pb yet"
