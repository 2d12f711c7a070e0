"""The serving signatures of an export: raw features, serialized ``tf.Example``s, classify and regress."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfmtl._keras import without_autograph
from tfmtl.features import FeatureSpec, serving_signature

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
CLASSIFY_PREFIX = "classify_"
REGRESS_PREFIX = "regress_"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSES = ("0", "1")

RawFn = Callable[[dict[str, tf.Tensor]], Mapping[str, tf.Tensor]]
Extras = Mapping[str, tf.TensorSpec]  # the model's inputs beyond the spec, by Keras input name

_MISSING = {tf.string: b"", tf.int64: -1}  # the OOV values feature_arrays uses for missing data


def build_signatures(raw_fn: RawFn, spec: FeatureSpec, outputs: Sequence[str] | None, extras: Extras):
    """``({signature name: concrete function}, {signature name: method name})``."""
    raw_signature = {**serving_signature(spec), **extras}
    predict = tf.function(lambda raw: _probabilities(raw_fn(raw), outputs), input_signature=[raw_signature])
    names = list(predict.get_concrete_function().structured_outputs)
    example_features = {**_example_features(spec), **_extra_example_features(extras)}

    # One shared function: parsing and the model are traced once for every example signature.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def from_examples(serialized):
        parsed = tf.io.parse_example(serialized, example_features)
        return predict({name: tf.cast(_dense(parsed[name], ts.dtype), ts.dtype) for name, ts in raw_signature.items()})

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


def _dense(value, dtype: tf.DType) -> tf.Tensor:
    """A parsed var-len list (ragged) as ``[batch, longest]`` padded with the pad token; others as they are."""
    if isinstance(value, tf.RaggedTensor):
        return value.to_tensor(default_value=_MISSING[dtype])
    return value


def _example_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenFeature | tf.io.RaggedFeature]:
    """``tf.io.parse_example`` features; a missing key gets the value a missing raw value gets.

    A list feature is var-len (``RaggedFeature``): each example has as many values as
    it has (none when the key is missing); the model fits them to ``max_length``.
    """
    lists = {f.name for f in spec.lists}
    return {name: tf.io.RaggedFeature(ts.dtype) if name in lists else
            tf.io.FixedLenFeature([], ts.dtype, default_value=_MISSING.get(ts.dtype, np.nan))
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


def call_model(model: tf.Module) -> RawFn:
    # Traced as written: AutoGraph would rewrite Keras' own call path (see tfmtl.compat.without_autograph).
    return without_autograph(lambda raw: model(raw, training=False))


__all__ = ["CLASSES", "CLASSIFY_METHOD", "CLASSIFY_PREFIX", "REGRESS_METHOD", "REGRESS_PREFIX", "SERVING_DEFAULT",
           "SERVING_TF_EXAMPLE", "Extras", "RawFn", "build_signatures", "call_model"]
