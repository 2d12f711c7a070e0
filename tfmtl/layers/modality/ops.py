"""Masks, masked softmax and the balance losses of the multi-modal layers (MAMEX)."""

from __future__ import annotations

import tensorflow as tf

_EPS = 1e-9


def modality_mask(values: tf.Tensor) -> tf.Tensor:
    """``bool [batch]``: True where the modality is present (numeric: all finite; text: non-blank)."""
    if values.dtype == tf.string:
        return tf.strings.length(tf.strings.strip(tf.reshape(values, [-1]))) > 0
    return tf.reduce_all(tf.math.is_finite(values), axis=-1)


def kl_to_target(target: tf.Tensor, distribution: tf.Tensor) -> tf.Tensor:
    """``KL(target || distribution) = sum_i p_i log(p_i / q_i)`` over the last axis; 0 log 0 = 0."""
    safe = tf.where(target > 0, target, 1.0)
    return tf.reduce_sum(tf.where(target > 0, target * (tf.math.log(safe) - tf.math.log(distribution + _EPS)), 0.0),
                         axis=-1)


def load_balance_loss(probabilities: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """MAMEX's expert load balance: ``KL(uniform || mean_b p_b)`` over the examples present in ``mask``.

    Zero when the batch uses the experts equally on average; grows as the
    average routing collapses onto fewer experts. probabilities ``[batch, E]``.
    """
    weights = tf.ones_like(probabilities[:, :1]) if mask is None else tf.cast(tf.reshape(mask, [-1, 1]),
                                                                              probabilities.dtype)
    importance = tf.reduce_sum(probabilities * weights, axis=0) / tf.maximum(tf.reduce_sum(weights), 1.0)
    uniform = tf.fill(tf.shape(importance), 1.0 / tf.cast(tf.shape(importance)[0], probabilities.dtype))
    return kl_to_target(uniform, importance)


def modality_balance_loss(weights: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``KL(p || q)``: ``q`` the batch-mean modality weights, ``p`` the batch mean of the uniform weights
    over each example's present modalities.

    Zero at the uniform gate whatever the masks (a missing modality is not
    counted as collapse), positive when the weights collapse onto some of
    the present modalities. weights, mask ``[batch, M]``.
    """
    mask = tf.cast(mask, weights.dtype)
    counts = tf.reduce_sum(mask, axis=1, keepdims=True)
    rows = tf.cast(counts > 0, weights.dtype)
    num_rows = tf.maximum(tf.reduce_sum(rows), 1.0)
    target = tf.reduce_sum(mask / tf.maximum(counts, 1.0), axis=0) / num_rows
    mean_weights = tf.reduce_sum(weights * rows, axis=0) / num_rows
    return kl_to_target(target, mean_weights)


def masked_softmax(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Softmax over the True entries of ``mask`` (last axis); masked entries and all-masked rows get 0."""
    mask = tf.cast(mask, tf.bool)
    shifted = logits - tf.stop_gradient(tf.reduce_max(tf.where(mask, logits, logits.dtype.min), -1, keepdims=True))
    exp = tf.where(mask, tf.exp(tf.where(mask, shifted, 0.0)), 0.0)
    return exp / tf.maximum(tf.reduce_sum(exp, -1, keepdims=True), _EPS)


__all__ = ["kl_to_target", "load_balance_loss", "masked_softmax", "modality_balance_loss", "modality_mask"]
