"""M3oE's training loss: the sum over (domain, task) pairs of each pair's mean binary cross-entropy.

    L = sum_t sum_d  mean_{i in batch, domain(i) = d} BCE(y_it, p_it)

(official code, Applied-Machine-Learning-Lab/M3oE ``MDMTRec/trainers/ctr_trainer.py``,
``train_one_epoch``: one ``BCELoss`` per (task, domain) pair of the batch, summed). Every
pair weighs the same whatever its size, so a small domain is not drowned by a large one, as it
is in the per-task mean over all domains. A pair with no example in the batch contributes 0
(the official code would produce NaN there).
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from tfmtl._keras import keras

__all__ = ["domain_task_bce"]


def domain_task_bce(y_true: Mapping[str, tf.Tensor], y_pred: Mapping[str, tf.Tensor], domain: tf.Tensor,
                    num_domains: int) -> tf.Tensor:
    """Sum over tasks and domains of the per-(domain, task) mean BCE.

    Args:
      y_true: ``{task: [B] or [B, 1]}`` labels in {0, 1}.
      y_pred: ``{task: [B] or [B, 1]}`` probabilities (the same keys as ``y_true``).
      domain: ``int [B]`` domain index of each example, in ``[0, num_domains)``.
      num_domains: number of domains D.

    Returns:
      A scalar: ``sum_t sum_d mean_{i: domain_i = d} BCE(y_it, p_it)`` (empty pairs: 0).

    >>> y = {"ctr": tf.constant([1.0, 0.0, 1.0])}
    >>> p = {"ctr": tf.constant([0.5, 0.5, 0.5])}
    >>> round(float(domain_task_bce(y, p, tf.constant([0, 0, 1]), 2)), 4)   # 2 domains x ln 2
    1.3863
    """
    missing = sorted(set(y_true) - set(y_pred))
    if missing:
        raise ValueError(f"domain_task_bce: no prediction for task(s) {missing}")
    if int(num_domains) < 1:
        raise ValueError(f"num_domains must be >= 1, got {num_domains}")
    domain = tf.cast(tf.reshape(domain, [-1]), tf.int32)
    total = tf.constant(0.0)
    for task in y_true:
        labels = tf.reshape(tf.cast(y_true[task], tf.float32), [-1, 1])
        probabilities = tf.reshape(tf.cast(y_pred[task], tf.float32), [-1, 1])
        losses = keras.losses.binary_crossentropy(labels, probabilities)  # [B]
        sums = tf.math.unsorted_segment_sum(losses, domain, num_domains)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(losses), domain, num_domains)
        total += tf.reduce_sum(tf.where(counts > 0, sums / tf.maximum(counts, 1.0), 0.0))
    return total
