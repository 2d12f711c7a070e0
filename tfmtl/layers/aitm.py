"""AITM (Xi et al., KDD 2021): adaptive information transfer between the steps of a conversion funnel."""

from __future__ import annotations

import math

import tensorflow as tf

from tfmtl._keras import keras, register


@register
class AITM(keras.layers.Layer):
    """Fuses what the previous funnel step learned into the current step's tower output.

    The previous task's tower output ``p`` is transformed by ``h(p) = relu(W p + b)``
    (the transfer), then ``u in {h(p), q}`` (``q`` the current tower output) are
    combined by the paper's self-attention: each ``u`` gets the score
    ``<Q u, K u> / sqrt(d)``, the scores are softmax-normalised over the two, and
    the output is ``sum_u w_u V u``.

    Shapes: ``[previous [batch, d], current [batch, d]]`` -> ``[batch, d]``;
    ``return_weights=True`` in ``call`` also returns the ``[batch, 2]`` weights
    (previous, current).

    Example:

    >>> AITM()([tf.ones([3, 8]), tf.zeros([3, 8])]).shape.as_list()
    [3, 8]

    Args:
        dropout: dropout after the transfer function (the official code's
            ``Dropout`` in its info layer).
    """

    def __init__(self, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"AITM: dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self._dropout = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"AITM: inputs must be [previous, current], got shape {input_shape}")
        previous, current = (tf.TensorShape(s) for s in input_shape)
        if previous.rank != 2 or previous[-1] != current[-1]:
            raise ValueError(f"AITM: previous and current must both be [batch, d], got {previous} and {current}")
        d = int(current[-1])
        self._transfer = keras.layers.Dense(d, activation="relu", name="transfer")
        self._query = keras.layers.Dense(d, name="query")
        self._key = keras.layers.Dense(d, name="key")
        self._value = keras.layers.Dense(d, name="value")
        self._transfer.build((None, d))
        for layer in (self._query, self._key, self._value):
            layer.build((None, 2, d))
        super().build(input_shape)

    def call(self, inputs, training=None, return_weights: bool = False):
        previous, current = inputs
        transferred = self._dropout(self._transfer(previous), training=training)
        u = tf.stack([transferred, current], axis=1)  # [B, 2, d]
        d = u.shape[-1]
        scores = tf.reduce_sum(self._query(u) * self._key(u), axis=-1) / math.sqrt(d)
        weights = tf.nn.softmax(scores, axis=-1)
        output = tf.einsum("bu,bud->bd", weights, self._value(u))
        return (output, weights) if return_weights else output

    def get_config(self) -> dict:
        return {**super().get_config(), "dropout": self.dropout}


def calibrator_penalty(probabilities: tf.Tensor) -> tf.Tensor:
    """AITM's behavioural expectation calibrator: ``mean_b sum_t max(p_t - p_{t-1}, 0)``.

    A later funnel step (conversion) should never be more likely than an earlier
    one (click); the penalty is zero when each row's probabilities do not increase.

    Args:
        probabilities: ``[batch, T]`` step probabilities in funnel order.
    """
    steps = probabilities[:, 1:] - probabilities[:, :-1]
    return tf.reduce_mean(tf.reduce_sum(tf.nn.relu(steps), axis=-1))


@register
class AITMCalibrator(keras.layers.Layer):
    """Adds ``alpha * calibrator_penalty(p)`` to the model's losses; passes ``p`` through.

    The official code sums the penalty over the batch next to batch-mean BCE
    losses; here it is a batch mean too, so ``alpha`` does not depend on the batch
    size (``alpha`` here ~ the official weight times the batch size).

    Shapes: ``[batch, T]`` -> ``[batch, T]`` (probabilities, or logits with
    ``from_logits=True``: the penalty is then on their sigmoids).

    Example:

    >>> layer = AITMCalibrator(alpha=0.5)
    >>> _ = layer(tf.constant([[0.2, 0.6]]))
    >>> round(float(layer.losses[0]), 3)
    0.2

    Args:
        alpha: weight of the penalty (>= 0).
        from_logits: the input holds logits, not probabilities.
    """

    def __init__(self, alpha: float = 0.6, from_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        if float(alpha) < 0:
            raise ValueError(f"AITMCalibrator: alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.from_logits = bool(from_logits)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.alpha:
            probabilities = tf.sigmoid(inputs) if self.from_logits else inputs
            self.add_loss(self.alpha * calibrator_penalty(probabilities))
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "from_logits": self.from_logits}


@register
class AITMHead(keras.layers.Layer):
    """Turns click and click-and-conversion logits into ESMM's ``{"ctr", "cvr", "ctcvr"}``.

    AITM predicts ``ctr`` and ``ctcvr`` directly (each trained on its own label
    over all exposures); ``cvr = ctcvr / ctr``, clipped to [0, 1] (the calibrator
    keeps ``ctcvr <= ctr`` in expectation, not per row).

    Shapes: logits ``[batch, 2]`` -> three ``[batch, 1]`` outputs.

    Example:

    >>> out = AITMHead()(tf.constant([[0.0, -1.0986123]]))
    >>> [round(float(out[k][0, 0]), 3) for k in ("ctr", "cvr", "ctcvr")]
    [0.5, 0.5, 0.25]
    """

    def call(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.sigmoid(logits)
        ctr, ctcvr = probabilities[:, 0:1], probabilities[:, 1:2]
        return {"ctr": ctr, "cvr": tf.clip_by_value(tf.math.divide_no_nan(ctcvr, ctr), 0.0, 1.0), "ctcvr": ctcvr}
