"""Checks of an export's arguments: the spec, the model's raw and extra inputs, the name and version."""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping

import tensorflow as tf

from tfmtl.features import FeatureSpec, serving_signature

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def resolve_spec(obj: tf.Module, spec: FeatureSpec | Mapping | None) -> FeatureSpec:
    if spec is None:
        spec = getattr(obj, "spec", None)
        if spec is None:
            raise TypeError(f"{type(obj).__name__} has no .spec; pass spec=FeatureSpec(...)")
    return FeatureSpec.coerce(spec)


def check_raw_inputs(model: tf.Module, spec: FeatureSpec) -> dict[str, tf.TensorSpec]:
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


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(f"model_name must match [A-Za-z0-9][A-Za-z0-9._-]* (a single directory name), got {name!r}")
    return name


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, numbers.Integral):
        raise TypeError(f"version must be an integer, got {type(version).__name__} {version!r}")
    if version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    return int(version)


def next_version(model_dir: str) -> int:
    """The largest integer-named entry of ``model_dir`` plus one, or 1."""
    if not tf.io.gfile.isdir(model_dir):
        return 1
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir) if name.rstrip("/").isdigit()]
    return max(versions, default=0) + 1


__all__ = ["check_model_name", "check_raw_inputs", "check_version", "next_version", "resolve_spec"]
