"""Numeric features embedded as fields: piecewise-linear and periodic embeddings.

Gorishniy, Rubachev, Babenko, "On Embeddings for Numerical Features in Tabular
Deep Learning" (NeurIPS 2022): a scalar ``x`` becomes a vector (its piecewise-
linear encoding over fitted bins, or ``[cos, sin]`` of trainable frequencies),
then a per-feature linear map and ReLU give one field embedding of width ``D``.

Example:

>>> layer = PiecewiseLinearEmbedding([[0.0, 1.0, 3.0]], embedding_dim=4)
>>> layer(tf.constant([[2.0]])).shape.as_list()
[1, 1, 4]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register


def piecewise_linear_encoding(x: tf.Tensor, edges: Sequence[Sequence[float]]) -> tf.Tensor:
    """The PLE of each column of ``x`` over its bins, zero-padded to the widest.

    Bin ``t`` of a feature with edges ``b_0 < ... < b_T`` is ``(x - b_{t-1}) /
    (b_t - b_{t-1})`` clipped to ``[0, 1]``, except that the first bin is not
    clipped below and the last not above, so values outside ``[b_0, b_T]``
    extrapolate linearly (the paper's definition).

    Args:
      x: ``float [batch, K]``.
      edges: per feature ``T_k + 1`` strictly increasing edges.

    Returns:
      ``float [batch, K, max_k T_k]``; bins past a feature's ``T_k`` are 0.
    """
    lower, width, low_clip, high_clip, mask = _bin_tables(edges)
    ratio = (tf.expand_dims(tf.cast(x, tf.float32), -1) - lower) / width
    return tf.minimum(tf.maximum(ratio, low_clip), high_clip) * mask


def _bin_tables(edges: Sequence[Sequence[float]]):
    """Per-bin constants ``[K, T]``: lower edge, width, clip bounds and a mask of real bins."""
    bins = max(len(e) - 1 for e in edges)
    lower = np.zeros((len(edges), bins))
    width = np.ones((len(edges), bins))
    low_clip = np.zeros((len(edges), bins))
    high_clip = np.ones((len(edges), bins))
    mask = np.zeros((len(edges), bins))
    for k, feature_edges in enumerate(edges):
        e = np.asarray(feature_edges, np.float64)
        count = len(e) - 1
        lower[k, :count], width[k, :count], mask[k, :count] = e[:-1], np.diff(e), 1.0
        low_clip[k, 0] = -np.inf  # first bin: extrapolate below b_0
        high_clip[k, count - 1] = np.inf  # last bin: extrapolate above b_T
    return tuple(tf.constant(a, tf.float32) for a in (lower, width, low_clip, high_clip, mask))


@register
class PiecewiseLinearEmbedding(keras.layers.Layer):
    """K numeric features -> K field embeddings via PLE, a per-feature linear map and ReLU.

    Args:
      edges: per feature its bin edges on the scale of the input (strictly
        increasing, at least two).
      embedding_dim: width D of each field.
      activation: applied after the linear map (the paper's "PLE-LR" uses ReLU).
      columns: the input columns to embed (default: all K), so that the layer can
        take a model's whole dense vector.

    Shapes: ``float [batch, K]`` (or ``[batch, N]`` with ``columns``) -> ``float [batch, K, D]``.

    Example:

    >>> layer = PiecewiseLinearEmbedding([[0.0, 1.0, 3.0], [-1.0, 1.0]], embedding_dim=2)
    >>> layer(tf.constant([[2.0, 0.0]])).shape.as_list()
    [1, 2, 2]
    """

    def __init__(self, edges: Sequence[Sequence[float]], embedding_dim: int, activation="relu",
                 columns: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.columns = _check_columns(columns, len(edges), "PiecewiseLinearEmbedding")
        if not edges:
            raise ValueError("PiecewiseLinearEmbedding: edges must list at least one feature")
        self.edges = [[float(v) for v in e] for e in edges]
        for k, e in enumerate(self.edges):
            if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])) or not all(map(math.isfinite, e)):
                raise ValueError(f"PiecewiseLinearEmbedding: edges of feature {k} must be >= 2 finite, "
                                 f"strictly increasing values, got {e[:5]}")
        self.embedding_dim = int(embedding_dim)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        bins = max(len(e) - 1 for e in self.edges)
        self.kernel = self.add_weight(name="kernel", shape=(len(self.edges), bins, self.embedding_dim),
                                      initializer=keras.initializers.GlorotUniform())
        self.bias = self.add_weight(name="bias", shape=(len(self.edges), self.embedding_dim), initializer="zeros")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        # The encoding is computed in float32 against float32 edges; the per-feature map runs in the compute
        # dtype (float16 under a mixed-precision policy, whose inputs arrive as float16).
        encoded = tf.cast(piecewise_linear_encoding(_select(x, self.columns), self.edges), self.compute_dtype)
        return self.activation(tf.einsum("bkt,ktd->bkd", encoded, self.kernel) + self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "edges": self.edges, "embedding_dim": self.embedding_dim,
                "activation": keras.activations.serialize(self.activation), "columns": self.columns}


@register
class PeriodicEmbedding(keras.layers.Layer):
    """K numeric features -> K field embeddings: ``[cos, sin](2 pi c x)``, linear, ReLU ("PLR").

    Args:
      num_features: K.
      embedding_dim: width D of each field.
      frequencies: trainable frequencies per feature (``c``, initialised ``N(0, sigma)``).
      sigma: the initial frequencies' scale; the paper tunes it, ~1 suits standardised inputs.
      activation: applied after the linear map.
      columns: the input columns to embed (default: all K).

    Shapes: ``float [batch, K]`` (or ``[batch, N]`` with ``columns``) -> ``float [batch, K, D]``.

    Example:

    >>> layer = PeriodicEmbedding(3, embedding_dim=4, frequencies=8)
    >>> layer(tf.zeros([2, 3])).shape.as_list()
    [2, 3, 4]
    """

    def __init__(self, num_features: int, embedding_dim: int, frequencies: int = 16, sigma: float = 1.0,
                 activation="relu", columns: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.columns = _check_columns(columns, num_features, "PeriodicEmbedding")
        if num_features < 1 or embedding_dim < 1 or frequencies < 1 or not sigma > 0:
            raise ValueError("PeriodicEmbedding: num_features, embedding_dim and frequencies must be >= 1 and "
                             f"sigma > 0, got {num_features}, {embedding_dim}, {frequencies}, {sigma}")
        self.num_features, self.embedding_dim = int(num_features), int(embedding_dim)
        self.frequencies, self.sigma = int(frequencies), float(sigma)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        k, f, d = self.num_features, self.frequencies, self.embedding_dim
        # A float32 weight even under mixed precision: the angles c * x and their cos/sin are computed in
        # float32, where float16 would round the phase of large angles.
        self.coefficients = self.add_weight(name="coefficients", shape=(k, f),
                                            initializer=keras.initializers.RandomNormal(stddev=self.sigma),
                                            experimental_autocast=False)
        self.kernel = self.add_weight(name="kernel", shape=(k, 2 * f, d),
                                      initializer=keras.initializers.GlorotUniform())
        self.bias = self.add_weight(name="bias", shape=(k, d), initializer="zeros")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(_select(x, self.columns), tf.float32)
        angles = 2 * math.pi * self.coefficients * tf.expand_dims(x, -1)  # [B, K, F]
        periodic = tf.cast(tf.concat([tf.cos(angles), tf.sin(angles)], axis=-1), self.compute_dtype)
        return self.activation(tf.einsum("bkf,kfd->bkd", periodic, self.kernel) + self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_features": self.num_features, "embedding_dim": self.embedding_dim,
                "frequencies": self.frequencies, "sigma": self.sigma,
                "activation": keras.activations.serialize(self.activation), "columns": self.columns}


def _check_columns(columns, count: int, owner: str) -> list[int] | None:
    if columns is None:
        return None
    columns = [int(c) for c in columns]
    if len(columns) != count or min(columns, default=0) < 0:
        raise ValueError(f"{owner}: columns must be {count} non-negative indices, got {columns}")
    return columns


def _select(x: tf.Tensor, columns: list[int] | None) -> tf.Tensor:
    x = tf.cast(x, tf.float32)
    return x if columns is None else tf.gather(x, columns, axis=1)


__all__ = ["PeriodicEmbedding", "PiecewiseLinearEmbedding", "piecewise_linear_encoding"]
