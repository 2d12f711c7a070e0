"""Keras preprocessing derived from a :class:`FeatureSpec`.

Example:

>>> import numpy as np
>>> from tfmtl.features import FeatureSpec, CategoricalFeature, NumericFeature
>>> spec = FeatureSpec((CategoricalFeature("city", vocabulary=("a", "b")),
...                     NumericFeature("age", mean=30.0, variance=100.0)))
>>> out = FeaturePreprocessing(spec)({"city": np.array(["b", "zz"]), "age": np.array([40.0, np.nan])})
>>> out["ids"].numpy().tolist(), out["dense"].numpy().round(3).tolist()
([[2], [0]], [[1.0], [0.0]])

A list feature gives ``lists[name]``, ids ``[batch, max_length]`` with ``-1`` at padding:

>>> from tfmtl.features import ListFeature
>>> spec = FeatureSpec((ListFeature("tags", 2, vocabulary=("x", "y")),))
>>> FeaturePreprocessing(spec)({"tags": np.array([["y", "q", "x"], ["", "", ""]])})["lists"]["tags"].numpy().tolist()
[[0, 1], [-1, -1]]
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.features.schema import INT64, ListFeature, NumericFeature
from tfmtl.features.spec import FeatureSpec

BUCKET_SUFFIX = "__bucket"


def encoded_names(spec: FeatureSpec) -> dict[str, str]:
    """Names and dtypes of already-encoded inputs (what the TFX Transform graph emits).

    Categorical features: int64 ids; list features: int64 ids ``[max_length]`` with
    ``-1`` at padding; numeric features: float32 standardised values; bucketised
    numerics also ``<name>__bucket`` int64 bucket ids.
    """
    names = {}
    for feature in spec.features:
        names[feature.name] = "float32" if isinstance(feature, NumericFeature) else "int64"
        if isinstance(feature, NumericFeature) and feature.boundaries:
            names[feature.name + BUCKET_SUFFIX] = "int64"
    return names


def feature_inputs(spec: FeatureSpec, encoded: bool = False) -> dict[str, keras.Input]:
    """One Keras input per feature: raw, or encoded.

    Scalar features are ``[batch]``. A raw list feature is ``[batch, width]`` of any
    width, padded with its pad token (the preprocessing fits it to ``max_length``); an
    encoded one is ``[batch, max_length]`` ids.
    """
    dtypes = encoded_names(spec) if encoded else {f.name: spec.raw_dtype(f) for f in spec.features}
    lists = {f.name: f for f in spec.lists}

    def shape(name):
        if name not in lists:
            return ()
        return (lists[name].max_length,) if encoded else (None,)

    return {name: keras.Input(shape=shape(name), name=name, dtype=dtype) for name, dtype in dtypes.items()}


def serving_signature(spec: FeatureSpec) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the raw features, as a serving signature takes them.

    ``[batch]`` per scalar feature; ``[batch, width]`` per list feature, any width,
    each row padded at the end with the pad token (``""`` or ``-1``).
    """
    return {f.name: tf.TensorSpec([None, None] if isinstance(f, ListFeature) else [None], spec.raw_dtype(f),
                                  name=f.name) for f in spec.features}


def fit_list(values: tf.Tensor | tf.RaggedTensor | tf.SparseTensor, feature: ListFeature) -> tf.Tensor:
    """Raw list values -> ``[batch, max_length]``, as :func:`~tfmtl.features.spec.list_array` pads them.

    ``values``: ``[batch, width]`` padded with the pad token (any width), or ragged /
    sparse (``tf.Example`` var-len features). Pad tokens are dropped wherever they
    are, a longer row keeps its last ``max_length`` values, and every row is padded
    at the end to ``max_length``.
    """
    pad = tf.constant(feature.pad, tf.string if feature.dtype != INT64 else tf.int64)
    if isinstance(values, tf.SparseTensor):
        values = tf.RaggedTensor.from_sparse(values)
    values = tf.cast(values, pad.dtype) if values.dtype != pad.dtype else values
    if not isinstance(values, tf.RaggedTensor):
        values = tf.RaggedTensor.from_tensor(values)
    real = tf.ragged.boolean_mask(values, tf.not_equal(values, pad))
    return real[:, -feature.max_length:].to_tensor(default_value=pad, shape=[None, feature.max_length])


@register
class FeaturePreprocessing(keras.layers.Layer):
    """Maps raw features to field ids and standardised dense values.

    Inputs: a dict ``{feature name: [batch]}`` of raw values (strings, int64
    codes, floats). With ``encoded=True`` the inputs are already ids and
    standardised values (as the TFX Transform graph writes them) and are only
    stacked.

    Outputs: ``{"ids": int64 [batch, num_fields], "dense": float32 [batch,
    num_numeric]}``. Field ``i`` ids lie in ``[0, spec.field_sizes[i])``; id 0
    of a vocabulary field is out-of-vocabulary or missing. With list features
    also ``"lists": {name: int64 [batch, max_length]}``: ids of the table the list
    uses (its own, or the ``shares`` feature's), ``-1`` at padding.
    """

    def __init__(self, spec: FeatureSpec | Mapping, encoded: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.spec = FeatureSpec.coerce(spec)
        self.encoded = encoded
        self._lookups = {}
        if not encoded:
            for feature in self.spec.fields + self.spec.list_tables:
                self._lookups[feature.name] = _make_lookup(feature)
        numeric = self.spec.numeric
        self._means = tf.constant([f.mean for f in numeric], tf.float32)
        # A constant column has variance 0: divide by 1 instead of exploding.
        self._stds = tf.constant([max(f.variance, 0.0) ** 0.5 or 1.0 for f in numeric], tf.float32)
        self._log_mask = tf.constant([f.log for f in numeric], tf.bool)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        missing = [f.name for f in self.spec.features if f.name not in inputs]
        if missing:
            raise ValueError(f"FeaturePreprocessing: missing input feature(s) {missing}")
        dense = self._dense(inputs) if self.spec.numeric else None
        ids = []
        for feature in self.spec.fields:
            value = inputs[feature.name]
            if self.encoded:
                key = feature.name + BUCKET_SUFFIX if isinstance(feature, NumericFeature) else feature.name
                ids.append(tf.cast(inputs[key], tf.int64))
            elif isinstance(feature, NumericFeature):
                raw = tf.cast(value, tf.float32)
                ids.append(tf.cast(self._lookups[feature.name](tf.where(tf.math.is_nan(raw), 0.0, raw)), tf.int64))
            else:
                ids.append(tf.cast(self._lookups[feature.name](value), tf.int64))
        batch = tf.shape(inputs[self.spec.features[0].name])[0]
        ids = tf.stack(ids, axis=1) if ids else tf.zeros([batch, 0], tf.int64)
        if dense is None:
            dense = tf.zeros([batch, 0], tf.float32)
        if not self.spec.lists:
            return {"ids": ids, "dense": dense}
        return {"ids": ids, "dense": dense, "lists": {f.name: self._list_ids(f, inputs[f.name])
                                                      for f in self.spec.lists}}

    def _list_ids(self, feature: ListFeature, value) -> tf.Tensor:
        if self.encoded:
            return tf.cast(value, tf.int64)
        raw = fit_list(value, feature)
        ids = tf.cast(self._lookups[self.spec.table_owner(feature).name](raw), tf.int64)
        return tf.where(tf.not_equal(raw, feature.pad), ids, tf.constant(-1, tf.int64))

    def _dense(self, inputs):
        values = tf.stack([tf.cast(inputs[f.name], tf.float32) for f in self.spec.numeric], axis=1)
        if self.encoded:
            return values
        missing = tf.math.is_nan(values)
        logged = tf.where(self._log_mask, tf.math.log1p(tf.maximum(values, 0.0)), values)
        standardised = (logged - self._means) / self._stds
        return tf.where(missing, tf.zeros_like(standardised), standardised)

    def get_config(self) -> dict:
        return {**super().get_config(), "spec": self.spec.get_config(), "encoded": self.encoded}


def _make_lookup(feature) -> keras.layers.Layer:
    if isinstance(feature, NumericFeature):
        return keras.layers.Discretization(bin_boundaries=list(feature.boundaries), name=f"bucketize_{feature.name}")
    if feature.hash_buckets is not None:
        return keras.layers.Hashing(num_bins=feature.hash_buckets, name=f"hash_{feature.name}")
    if not feature.vocabulary:  # e.g. a list column whose training lists were all empty: everything is OOV
        return keras.layers.Hashing(num_bins=1, name=f"oov_{feature.name}")
    if feature.dtype == INT64:
        return keras.layers.IntegerLookup(vocabulary=list(feature.vocabulary), num_oov_indices=1,
                                          mask_token=None, name=f"lookup_{feature.name}")
    return keras.layers.StringLookup(vocabulary=list(feature.vocabulary), num_oov_indices=1,
                                     mask_token=None, name=f"lookup_{feature.name}")


__all__ = ["BUCKET_SUFFIX", "FeaturePreprocessing", "encoded_names", "feature_inputs", "fit_list",
           "serving_signature"]
