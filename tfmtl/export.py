"""SavedModel export for TF Serving and the tfmtl REST server.

:func:`export_saved_model` writes ``<export_dir_base>/<model_name>/<version>/``, the
layout TF Serving watches; :func:`save_signatures` writes a plain SavedModel at one
path (the TFX Trainer's ``serving_model_dir``; the Pusher versions it).

Signatures (every output is one float32 probability per example, shape ``[batch]``):

- ``serving_default``: the spec's raw features by name, each ``[batch]`` (string
  categoricals ``tf.string``, integer-coded categoricals ``tf.int64``, numerics
  ``tf.float32``), plus the model's extra inputs -> ``{output: [batch]}`` (one per
  task; ESMM: ctr, cvr, ctcvr).
- ``serving_tf_example``: ``examples``, serialized ``tf.Example`` ``[batch]`` -> the
  same outputs. A missing feature takes the value a missing raw value takes in
  training: ``""`` / ``-1`` (out of vocabulary) or NaN (the mean).
- ``classify_<output>`` (method ``tensorflow/serving/classify``): ``inputs``,
  serialized examples -> ``classes`` ``[batch, 2]`` (``"0"``, ``"1"``) and ``scores``
  ``[batch, 2]`` (``1 - p``, ``p``).
- ``regress_<output>`` (method ``tensorflow/serving/regress``): ``inputs`` ->
  ``outputs`` ``[batch]`` = ``p``.

There are no ``classification``/``regression`` aliases: with several tasks, "the"
classifier would be an arbitrary one, so clients name the task.

Extra inputs: a model with inputs beyond the spec (declared by
:meth:`~tfmtl.models.base.MultiTaskModel.extra_inputs`, e.g. MAMEX's modalities)
has them in every signature under their Keras input names, with the Keras
input's dtype and shape: a float vector ``[batch, k]``, a text ``[batch]``. In a
``tf.Example`` a vector is one ``float_list`` of ``k`` values and a text one
``bytes_list`` value; a missing float extra becomes all-NaN and a missing string
extra ``""`` (MAMEX: the modality is missing), while an integer extra has no
default and must be present. Made-up warmup rows hold zeros (strings: ``""``);
with a DataFrame the extras come from ``model.make_dataset`` (or a column of that
name holding the values).

The SavedModel holds only the signatures and the variables, lookup tables and
assets they use (no Keras metadata, no optimizer state): it loads with
TensorFlow alone and needs no op outside core TensorFlow. A TF Serving warmup
file (``assets.extra/tf_serving_warmup_requests``) replays a few ``serving_default``
requests when the model loads.

Example:

>>> import tempfile
>>> from tfmtl.datasets import synthetic
>>> from tfmtl.models import MMoE
>>> df, spec = synthetic.multitask_frame(200)
>>> model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
>>> model.compile(); _ = model.fit(df, epochs=1, verbose=0)
>>> base = tempfile.mkdtemp()
>>> path = export_saved_model(model, base, "mmoe")
>>> os.path.relpath(path, base)
'mmoe/1'
>>> sorted(tf.saved_model.load(path).signatures)  # doctest: +NORMALIZE_WHITESPACE
['classify_task_a', 'classify_task_b', 'regress_task_a', 'regress_task_b',
 'serving_default', 'serving_tf_example']
"""

from __future__ import annotations

import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfmtl._keras import without_autograph
from tfmtl.features import CategoricalFeature, FeatureSpec, serving_signature

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
CLASSIFY_PREFIX = "classify_"
REGRESS_PREFIX = "regress_"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SAVED_MODEL_FILE = "saved_model.pb"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_WARMUP_RECORDS = 10
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many
CLASSES = ("0", "1")

RawFn = Callable[[dict[str, tf.Tensor]], Mapping[str, tf.Tensor]]
Warmup = Union[pd.DataFrame, None, bool]

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MISSING = {tf.string: b"", tf.int64: -1}  # the OOV values feature_arrays uses for missing data
Extras = Mapping[str, tf.TensorSpec]


def export_saved_model(model: tf.Module, export_dir_base: str, model_name: str, *, version: int | None = None,
                       spec: FeatureSpec | Mapping | None = None, raw_fn: RawFn | None = None,
                       warmup: Warmup = None, track: Sequence[Any] = (),
                       warmup_records: int = DEFAULT_WARMUP_RECORDS) -> str:
    """Exports ``model`` to ``<export_dir_base>/<model_name>/<version>/`` and returns that path.

    The version directory appears at once (written next to it, then renamed) or
    not at all; an existing version is never overwritten.

    Args:
      model: the trained model (a tfmtl ``MultiTaskModel``, or any Keras model or
        ``tf.Module`` together with ``spec`` and ``raw_fn``).
      export_dir_base: the directory TF Serving's ``--model_base_path`` parent.
      model_name: ``[A-Za-z0-9][A-Za-z0-9._-]*``; the model's directory and the
        ``model_spec.name`` of the warmup requests.
      version: a non-negative integer; default: the largest existing version + 1, or 1.
      spec: the feature spec of the raw inputs; default ``model.spec``.
      raw_fn: ``{feature: [batch] raw tensor} -> {output: [batch] or [batch, 1]
        probability}``; default ``model`` itself. In a TFX pipeline:
        ``lambda raw: model(tft_layer(raw))`` with ``track=[tft_layer]``.
      warmup: rows for the warmup requests: a DataFrame of raw features, ``None``
        (rows made up from the spec's vocabularies and means) or ``False`` (none).
      track: objects ``raw_fn`` uses beyond ``model`` (e.g. the TFT layer), saved with it.
      warmup_records: the number of warmup requests (one example each), <= 1000.
    """
    model_dir = os.path.join(os.fspath(export_dir_base), _check_model_name(model_name))
    version = _next_version(model_dir) if version is None else _check_version(version)
    return save_signatures(model, os.path.join(model_dir, str(version)), spec, raw_fn, track=track, warmup=warmup,
                           warmup_records=warmup_records, model_name=model_name)


def save_signatures(obj: tf.Module, path: str, spec: FeatureSpec | Mapping | None = None,
                    raw_fn: RawFn | None = None, outputs: Sequence[str] | None = None, *,
                    track: Sequence[Any] = (), warmup: Warmup = None,
                    warmup_records: int = DEFAULT_WARMUP_RECORDS, model_name: str | None = None,
                    extra_signatures: Mapping[str, Any] | None = None) -> str:
    """Writes a SavedModel with the serving signatures at ``path`` (no version subdirectory).

    ``path`` must not exist; it appears at once (written to a temporary directory
    next to it, then renamed). On a remote file system (``gs://...``, where a
    directory cannot be renamed atomically) the model is written locally and
    copied with ``saved_model.pb`` last.

    Args:
      obj: the object owning the variables and lookup tables ``raw_fn`` uses (the model).
      outputs: the outputs to serve, each with classify and regress signatures;
        default: every output of ``raw_fn``.
      model_name: ``model_spec.name`` of the warmup requests; default ``obj.name``.
      extra_signatures: more ``{name: concrete function}`` to save (e.g. the TFX
        pipeline's ``transform_features`` for TFMA); their names must not clash.
      Others: as :func:`export_saved_model`.
    """
    if not isinstance(obj, tf.Module):
        raise TypeError(f"export needs a Keras model or tf.Module, got {type(obj).__name__}")
    spec = _resolve_spec(obj, spec)
    extras: Extras = {}
    if raw_fn is None:
        extras = _check_raw_inputs(obj, spec)
        raw_fn = _call_model(obj)
    rows = _warmup_rows(spec, warmup, warmup_records, obj, extras)
    path = os.fspath(path)
    _check_free(path)
    signatures, methods = _signatures(raw_fn, spec, outputs, extras)
    clash = sorted(set(extra_signatures or {}) & set(signatures))
    if clash:
        raise ValueError(f"extra_signatures {clash} clash with the serving signatures")
    signatures.update(extra_signatures or {})
    name = model_name if model_name is not None else str(getattr(obj, "name", ""))
    _write_atomically(path, lambda staging: _write_saved_model(staging, obj, track, signatures, methods,
                                                                  rows, name))
    return path


# ------------------------------------------------------------------ signatures
def _signatures(raw_fn: RawFn, spec: FeatureSpec, outputs: Sequence[str] | None, extras: Extras):
    """``({signature name: concrete function}, {signature name: method name})``."""
    raw_signature = {**serving_signature(spec), **extras}
    predict = tf.function(lambda raw: _probabilities(raw_fn(raw), outputs), input_signature=[raw_signature])
    names = list(predict.get_concrete_function().structured_outputs)
    example_features = {**_example_features(spec), **_extra_example_features(extras)}

    # One shared function: parsing and the model are traced once for every example signature.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def from_examples(serialized):
        parsed = tf.io.parse_example(serialized, example_features)
        return predict({name: tf.cast(parsed[name], ts.dtype) for name, ts in raw_signature.items()})

    def tf_example(examples):
        return from_examples(examples)

    inputs = tf.TensorSpec([None], tf.string, name="inputs")
    signatures = {
        SERVING_DEFAULT: predict.get_concrete_function(),
        SERVING_TF_EXAMPLE: tf.function(tf_example).get_concrete_function(
            tf.TensorSpec([None], tf.string, name="examples")),
    }
    methods = {}
    for name in names:
        signatures[CLASSIFY_PREFIX + name] = tf.function(_classifier(from_examples, name)).get_concrete_function(
            inputs)
        signatures[REGRESS_PREFIX + name] = tf.function(_regressor(from_examples, name)).get_concrete_function(
            inputs)
        methods[CLASSIFY_PREFIX + name] = CLASSIFY_METHOD
        methods[REGRESS_PREFIX + name] = REGRESS_METHOD
    return signatures, methods


def _probabilities(result: Any, outputs: Sequence[str] | None) -> dict[str, tf.Tensor]:
    """Checks ``raw_fn``'s result and makes each selected output a float32 ``[batch]``."""
    if not isinstance(result, Mapping):
        raise TypeError(f"raw_fn must return a dict of outputs, got {type(result).__name__}")
    names = list(result) if outputs is None else list(outputs)
    unknown = [name for name in names if name not in result]
    if unknown:
        raise ValueError(f"outputs {unknown} are not among raw_fn's outputs {list(result)}")
    probabilities = {}
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"output name {name!r} cannot name a signature; use [A-Za-z0-9_.-]")
        value = tf.convert_to_tensor(result[name])
        shape = value.shape
        if not (shape.rank == 1 or (shape.rank == 2 and shape[1] == 1)):
            raise ValueError(f"output '{name}' has shape {shape}; expected one probability per example, "
                             "[batch] or [batch, 1]")
        probabilities[name] = tf.reshape(tf.cast(value, tf.float32), [-1])
    return probabilities


def _classifier(from_examples, name: str):
    def classify(inputs):
        p = from_examples(inputs)[name]
        scores = tf.stack([1.0 - p, p], axis=1)
        classes = tf.tile(tf.constant([CLASSES]), [tf.shape(p)[0], 1])
        return {"classes": classes, "scores": scores}

    return classify


def _regressor(from_examples, name: str):
    def regress(inputs):
        return {"outputs": from_examples(inputs)[name]}

    return regress


def _example_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenFeature]:
    """``tf.io.parse_example`` features; a missing key gets the value a missing raw value gets."""
    return {name: tf.io.FixedLenFeature([], ts.dtype, default_value=_MISSING.get(ts.dtype, np.nan))
            for name, ts in serving_signature(spec).items()}


def _extra_example_features(extras: Extras) -> dict[str, tf.io.FixedLenFeature]:
    """Extra inputs in a ``tf.Example``: all-NaN / ``""`` when missing (MAMEX: a missing modality)."""
    features = {}
    for name, ts in extras.items():
        shape = ts.shape[1:].as_list()
        if ts.dtype == tf.string:
            features[name] = tf.io.FixedLenFeature(shape, tf.string, default_value=np.full(shape, b"", object))
        elif ts.dtype.is_floating:
            features[name] = tf.io.FixedLenFeature(shape, tf.float32,
                                                   default_value=np.full(shape, np.nan, np.float32))
        else:  # integers: no value means "missing" for every model, so the feature is required
            features[name] = tf.io.FixedLenFeature(shape, tf.int64)
    return features


def _call_model(model: tf.Module) -> RawFn:
    # Traced as written: AutoGraph would rewrite Keras' own call path (see tfmtl._keras.without_autograph).
    return without_autograph(lambda raw: model(raw, training=False))


# ------------------------------------------------------------------ writing
def _write_saved_model(path: str, obj: tf.Module, track: Sequence[Any], signatures: dict, methods: dict[str, str],
                       warmup_rows: dict[str, np.ndarray] | None, model_name: str) -> None:
    root = tf.Module()
    # Only what the signatures use: no optimizer slots, no Keras layer traces to load.
    root.resources = _used_resources(obj, signatures.values())
    root.track = list(track)
    try:
        tf.saved_model.save(root, path, signatures=signatures)
    except (AssertionError, ValueError) as error:  # TF 2.16 reports an untracked capture as AssertionError
        if "untracked" not in str(error):
            raise
        raise ValueError("the signatures use a variable or table that neither the model nor `track` owns; pass "
                         "the object that owns it (e.g. the TFT layer) in track=[...]. "
                         f"TensorFlow said: {error}") from error
    _set_method_names(path, methods)
    if warmup_rows is not None:
        _write_warmup(path, warmup_rows, model_name)


def _used_resources(owner: tf.Module, functions) -> list:
    """The variables, tables and assets reachable from ``owner`` that ``functions`` capture."""
    captured = {id(tensor) for function in functions for tensor in function.captured_inputs}
    return [node for node in tf.train.TrackableView(owner).descendants() if id(_handle(node)) in captured]


def _handle(node) -> tf.Tensor | None:
    if isinstance(node, tf.Variable):
        return node.handle
    if isinstance(node, tf.saved_model.experimental.TrackableResource):
        return node.resource_handle
    if isinstance(node, tf.saved_model.Asset):
        return node.asset_path
    return None


def _set_method_names(path: str, methods: Mapping[str, str]) -> None:
    # tf.saved_model.save marks every signature "predict"; TF Serving's Classify
    # and Regress APIs only run signatures with their own method name.
    pb_path = os.path.join(path, SAVED_MODEL_FILE)
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with open(pb_path, "wb") as f:
        f.write(saved_model.SerializeToString())
    _refresh_fingerprint(path)


def _refresh_fingerprint(path: str) -> None:
    # fingerprint.pb hashes saved_model.pb: recompute it (TF's own writer), or drop a stale one.
    fingerprint = os.path.join(path, "fingerprint.pb")
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:
        if os.path.exists(fingerprint):
            os.remove(fingerprint)
        return
    fingerprinting_utils.write_fingerprint(path)


def _write_warmup(path: str, rows: dict[str, np.ndarray], model_name: str) -> None:
    """One ``serving_default`` PredictRequest per example, as TF Serving's warmup file."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    os.makedirs(os.path.join(path, os.path.dirname(WARMUP_FILE)), exist_ok=True)
    count = len(next(iter(rows.values())))
    with tf.io.TFRecordWriter(os.path.join(path, WARMUP_FILE)) as writer:
        for i in range(count):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_DEFAULT))
            for name, values in rows.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values[i : i + 1]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Runs ``write(staging_dir)`` and moves the result to ``path``; on failure nothing is left."""
    if _is_remote(path):
        staging = tempfile.mkdtemp(prefix="tfmtl-export-")
        try:
            write(staging)
            _copy_tree(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    parent, base = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    # Same directory, same file system: rename is atomic. A dot name is never a version.
    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        write(staging)
        _check_free(path)
        try:
            os.rename(staging, path)
        except OSError as error:  # appeared meanwhile (a concurrent export)
            raise FileExistsError(f"{path} already exists; not overwriting it") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_tree(source: str, target: str) -> None:
    """Copies a local SavedModel to a remote path, ``saved_model.pb`` last (what loaders wait for)."""
    files = [os.path.relpath(os.path.join(d, f), source) for d, _, names in os.walk(source) for f in names]
    for relative in sorted(files, key=lambda f: f == SAVED_MODEL_FILE):
        destination = f"{target.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(os.path.dirname(destination))
        tf.io.gfile.copy(os.path.join(source, relative), destination)


# ------------------------------------------------------------------ warmup rows
def _warmup_rows(spec: FeatureSpec, warmup: Warmup, count: int, model: tf.Module | None = None,
                 extras: Extras | None = None) -> dict[str, np.ndarray] | None:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or not 1 <= count <= MAX_WARMUP_RECORDS:
        raise ValueError(f"warmup_records must be an integer in [1, {MAX_WARMUP_RECORDS}], got {count!r}")
    extras = extras or {}
    if warmup is False:
        return None
    if warmup is None:
        return {**_made_up_rows(spec, count), **_made_up_extras(extras, count)}
    if isinstance(warmup, pd.DataFrame):
        rows = warmup.head(count)
        return {**spec.feature_arrays(rows), **(_extra_rows(model, rows, extras) if extras else {})}
    raise TypeError(f"warmup must be a DataFrame, None (made-up rows) or False (none), got {type(warmup).__name__}")


def _made_up_extras(extras: Extras, count: int) -> dict[str, np.ndarray]:
    """Zeros for numeric extra inputs, ``""`` for string ones."""
    rows = {}
    for name, ts in extras.items():
        shape = [count, *ts.shape[1:].as_list()]
        rows[name] = np.full(shape, "", object) if ts.dtype == tf.string else np.zeros(shape, ts.dtype.as_numpy_dtype)
    return rows


def _extra_rows(model: tf.Module, df: pd.DataFrame, extras: Extras) -> dict[str, np.ndarray]:
    """The extra inputs of warmup rows: from ``model.make_dataset(df)``, else from a column of that name."""
    batch = {}
    make_dataset = getattr(model, "make_dataset", None)
    if callable(make_dataset) and len(df):
        batch = next(iter(make_dataset(df, with_labels=False, batch_size=len(df))))
    rows = {}
    for name, ts in extras.items():
        if name in batch:
            values = batch[name].numpy()
        elif name in df.columns:
            values = np.stack([np.asarray(v) for v in df[name]]) if len(df) else np.zeros([0], np.float32)
        else:
            raise ValueError(f"the warmup DataFrame has no values for the model's extra input '{name}' "
                             "(model.make_dataset does not give it and there is no such column); pass warmup=None "
                             "for made-up rows")
        values = values.astype(object) if ts.dtype == tf.string else values.astype(ts.dtype.as_numpy_dtype)
        if not ts.shape[1:].is_compatible_with(values.shape[1:]):
            raise ValueError(f"warmup values of extra input '{name}' have shape {list(values.shape)}; "
                             f"the model takes {ts.shape}")
        rows[name] = values
    return rows


def _made_up_rows(spec: FeatureSpec, count: int) -> dict[str, np.ndarray]:
    """Rows that cycle through each vocabulary and hold numerics at their mean."""
    rows = {}
    for feature in spec.features:
        if isinstance(feature, CategoricalFeature):
            cycle = feature.vocabulary or tuple(range(count))  # hashed: any values do
            column = [cycle[i % len(cycle)] for i in range(count)]
            strings = spec.raw_dtype(feature) == "string"
            rows[feature.name] = np.array([str(v) for v in column], object) if strings else np.array(column, np.int64)
        else:
            mean = np.expm1(feature.mean) if feature.log else feature.mean  # the mean is of log1p(x)
            rows[feature.name] = np.full(count, mean, np.float32)
    return rows


# ------------------------------------------------------------------ checks
def _resolve_spec(obj: tf.Module, spec: FeatureSpec | Mapping | None) -> FeatureSpec:
    if spec is None:
        spec = getattr(obj, "spec", None)
        if spec is None:
            raise TypeError(f"{type(obj).__name__} has no .spec; pass spec=FeatureSpec(...)")
    return FeatureSpec.coerce(spec)


def _check_raw_inputs(model: tf.Module, spec: FeatureSpec) -> dict[str, tf.TensorSpec]:
    """Without ``raw_fn`` the model itself must take the spec's raw features; returns its other inputs.

    Those extra inputs (e.g. MAMEX's modalities) join the signatures with the
    Keras input's name, dtype and shape (``[batch, ...]``, known beyond the batch).
    """
    if not callable(model):
        raise TypeError(f"{type(model).__name__} is not callable; pass raw_fn=")
    names, tensors = getattr(model, "input_names", None), getattr(model, "inputs", None)
    if not names or not tensors:
        return {}  # a subclassed model: its call decides
    raw = {name: ts.dtype for name, ts in serving_signature(spec).items()}
    got = {name: tensor.dtype for name, tensor in zip(names, tensors)}
    if {name: dtype for name, dtype in got.items() if name in raw} != raw:
        raise ValueError(
            f"the model's inputs {_describe(got)} are not the spec's raw features {_describe(raw)}. A model on "
            "encoded inputs (TFX Transform output) needs raw_fn=lambda raw: model(tft_layer(raw)) and "
            "track=[tft_layer].")
    return {name: _extra_spec(name, tensor) for name, tensor in zip(names, tensors) if name not in raw}


def _extra_spec(name: str, tensor) -> tf.TensorSpec:
    shape, dtype = tf.TensorShape(tensor.shape), tf.as_dtype(tensor.dtype)
    if shape.rank is None or shape.rank < 1 or not shape[1:].is_fully_defined():
        raise ValueError(f"the model's extra input '{name}' has shape {shape}; a serving signature needs "
                         "[batch, ...] with every dimension after the batch known")
    if not (dtype == tf.string or dtype.is_floating or dtype.is_integer):
        raise ValueError(f"the model's extra input '{name}' is {dtype.name}; serving signatures take string, "
                         "float or integer extra inputs")
    return tf.TensorSpec([None, *shape[1:].as_list()], dtype, name=name)


def _describe(dtypes: Mapping[str, tf.DType]) -> str:
    return "{" + ", ".join(f"{name}: {dtype.name}" for name, dtype in sorted(dtypes.items())) + "}"


def _check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(f"model_name must match [A-Za-z0-9][A-Za-z0-9._-]* (a single directory name), got {name!r}")
    return name


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, numbers.Integral):
        raise TypeError(f"version must be an integer, got {type(version).__name__} {version!r}")
    if version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    return int(version)


def _next_version(model_dir: str) -> int:
    """The largest integer-named entry of ``model_dir`` plus one, or 1."""
    if not tf.io.gfile.isdir(model_dir):
        return 1
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir) if name.rstrip("/").isdigit()]
    return max(versions, default=0) + 1


def _check_free(path: str) -> None:
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} already exists; not overwriting it (export a new version instead)")


def _is_remote(path: str) -> bool:
    return "://" in path


__all__ = [
    "CLASSIFY_METHOD",
    "CLASSIFY_PREFIX",
    "REGRESS_METHOD",
    "REGRESS_PREFIX",
    "SERVING_DEFAULT",
    "SERVING_TF_EXAMPLE",
    "WARMUP_FILE",
    "export_saved_model",
    "save_signatures",
]
