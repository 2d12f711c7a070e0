"""Behaviour-sequence layers: masked pooling and DIN target attention.

A history is a padded ``[batch, T, d]`` tensor of item embeddings with a
``[batch, T]`` mask (1/True for real positions, 0/False for padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register

_POOLING = ("mean", "sum", "max")


def _mask_of(mask, sequence: tf.Tensor) -> tf.Tensor:
    """A float ``[batch, T]`` mask; all ones when ``mask`` is None."""
    if mask is None:
        return tf.ones(tf.shape(sequence)[:2], sequence.dtype)
    return tf.cast(mask, sequence.dtype)


@register
class SequencePooling(keras.layers.Layer):
    """Mean, sum or max of a padded sequence over its real positions.

    Padding never contributes; an empty sequence (all-zero mask) pools to zeros
    for every mode, never NaN or -inf.

    Shapes: sequence ``[batch, T, d]``, mask ``[batch, T]`` -> ``[batch, d]``.

    Example:

    >>> x = tf.constant([[[1.0], [3.0], [100.0]]])
    >>> SequencePooling("mean")(x, mask=tf.constant([[1, 1, 0]])).numpy().tolist()
    [[2.0]]

    Args:
        mode: ``"mean"``, ``"sum"`` or ``"max"``.
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in _POOLING:
            raise ValueError(f"SequencePooling: mode must be one of {_POOLING}, got {mode!r}")
        self.mode = mode

    def call(self, sequence: tf.Tensor, mask=None) -> tf.Tensor:
        weights = _mask_of(mask, sequence)[:, :, None]
        if self.mode == "max":
            # Padding gets the lowest value so it never wins; rows without any real position give 0.
            lowest = tf.fill(tf.shape(sequence), tf.constant(sequence.dtype.min, sequence.dtype))
            pooled = tf.reduce_max(tf.where(weights > 0, sequence, lowest), axis=1)
            return tf.where(tf.reduce_sum(weights, axis=1) > 0, pooled, tf.zeros_like(pooled))
        total = tf.reduce_sum(sequence * weights, axis=1)
        if self.mode == "sum":
            return total
        return tf.math.divide_no_nan(total, tf.reduce_sum(weights, axis=1))

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@register
class TargetAttention(keras.layers.Layer):
    """DIN's local activation unit (Zhou et al., KDD 2018): the user's interest in a candidate.

    Each history item ``h_t`` gets a score from a small MLP over
    ``[h_t, c, h_t - c, h_t * c]`` (``c`` the candidate), and the output is the
    score-weighted sum of the history. As in the paper the scores are NOT
    normalised by a softmax by default (so the sum keeps the intensity of the
    interest); ``softmax=True`` normalises them over the real positions. Padding
    gets weight 0 either way.

    The paper's figure feeds the unit an outer product of ``h_t`` and ``c``; its
    official code (and DeepCTR, EasyRec, torch-rechub) uses the element-wise
    product, which this layer follows: it keeps the MLP input at ``4 * d``
    instead of ``2 * d + d * d``.

    Shapes: history ``[batch, T, d]``, candidate ``[batch, d]``, mask
    ``[batch, T]`` -> ``[batch, d]``; ``return_weights=True`` in ``call`` also
    returns the ``[batch, T]`` weights.

    Example:

    >>> layer = TargetAttention(units=[8])
    >>> layer(tf.ones([2, 5, 4]), tf.ones([2, 4]), mask=tf.ones([2, 5])).shape.as_list()
    [2, 4]

    Args:
        units: hidden widths of the attention MLP (the paper: 80, 40).
        activation: hidden activation (the paper uses PReLU/Dice; sigmoid as in
            its official code by default).
        softmax: normalise the scores over the real positions.
    """

    def __init__(self, units: Sequence[int] = (80, 40), activation: str = "sigmoid", softmax: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        units = [int(u) for u in units]
        if any(u < 1 for u in units):
            raise ValueError(f"TargetAttention: units must all be >= 1, got {units}")
        self.units = units
        self.activation = activation
        self.softmax = bool(softmax)
        self._hidden = [keras.layers.Dense(u, activation=activation) for u in units]
        self._score = keras.layers.Dense(1)

    def build(self, input_shape):
        # Keras passes the first input's shape: the history [batch, T, d].
        d = int(tf.TensorShape(input_shape)[-1])
        width = 4 * d
        for layer in self._hidden:
            layer.build((None, None, width))
            width = layer.units
        self._score.build((None, None, width))
        super().build(input_shape)

    def call(self, history: tf.Tensor, candidate: tf.Tensor, mask=None, return_weights: bool = False):
        if candidate.shape.rank != 2:
            raise ValueError(f"TargetAttention: candidate must be [batch, d], got shape {candidate.shape}")
        weights_mask = _mask_of(mask, history)
        target = tf.broadcast_to(candidate[:, None, :], tf.shape(history))
        x = tf.concat([history, target, history - target, history * target], axis=-1)
        for layer in self._hidden:
            x = layer(x)
        scores = self._score(x)[:, :, 0]
        if self.softmax:
            # Padding gets -inf-like scores; an all-padding row would softmax to uniform, so re-mask after.
            scores = tf.where(weights_mask > 0, scores, tf.fill(tf.shape(scores), tf.constant(-1e9, scores.dtype)))
            weights = tf.nn.softmax(scores, axis=-1) * weights_mask
        else:
            weights = scores * weights_mask
        output = tf.einsum("bt,btd->bd", weights, history)
        return (output, weights) if return_weights else output

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation, "softmax": self.softmax}
