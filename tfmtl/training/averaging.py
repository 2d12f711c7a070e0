"""An exponential moving average of the weights, validated and kept in place of the last step's.

Adam at a fixed rate leaves the weights jumping around a minimum from batch to batch; their
average over the last ~``1 / (1 - decay)`` steps sits nearer its centre (Polyak averaging, as in
``tf.train.ExponentialMovingAverage`` and Keras 3's ``use_ema``). This callback keeps that
average beside training and swaps it in for every validation pass, so the logged ``val_*``
numbers, ``EarlyStopping``'s best weights, ``ModelCheckpoint`` files and the model ``fit``
returns are all the averaged weights; training itself steps the raw ones.

Example:

>>> import numpy as np
>>> model = keras.Sequential([keras.Input([2]), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> x, y = np.ones([8, 2], np.float32), np.ones([8, 1], np.float32)
>>> _ = model.fit(x, y, epochs=1, verbose=0, callbacks=[WeightAveraging(0.9)])
"""

from __future__ import annotations

import tensorflow as tf

from tfmtl._keras import keras

DEFAULT_DECAY = 0.99
# The warm-up of tf.train.ExponentialMovingAverage(num_updates=...): decay min(decay, (1 + t) / (10 + t))
# at step t, so the starting weights are forgotten within the first tens of steps.
_WARMUP_OFFSET = 10.0


class WeightAveraging(keras.callbacks.Callback):
    """Validate and keep ``average <- d * average + (1 - d) * weights``, updated after every batch.

    Args:
      decay: ``d`` in (0, 1); the average spans about ``1 / (1 - d)`` steps. Step ``t`` (from 1)
        uses ``min(d, (1 + t) / (10 + t))``, so early steps are not dragged to the initial weights.

    Only trainable weights are averaged; non-trainable state (batch-norm statistics) stays the
    model's own. With ``validation_data`` the averaged weights are in the model from each
    validation pass until the next epoch begins (what ``EarlyStopping`` and ``ModelCheckpoint``
    see at ``on_epoch_end``); without it they replace the raw ones when training ends. Put it
    before the callbacks that read the weights; :func:`tfmtl.training.convergence_callbacks`
    does.

    Raises:
      ValueError: ``decay`` outside (0, 1).
    """

    def __init__(self, decay: float = DEFAULT_DECAY):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAveraging: decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self._supports_tf_logs = True  # the batch hook reads no logs: no sync to numpy per step
        self._averaged_in = False

    def on_train_begin(self, logs=None):
        self._weights = list(self.model.trainable_weights)
        # Created inside fit's distribution-strategy scope, so they live where the weights live.
        self._average = [tf.Variable(w.read_value(), trainable=False, name="average") for w in self._weights]
        self._raw = [tf.Variable(w.read_value(), trainable=False, name="raw") for w in self._weights]
        self._steps = tf.Variable(0.0, trainable=False, name="average_steps")
        self._update = tf.function(self._update_average)
        self._update.get_concrete_function()  # trace now: a first batch hook slowed by tracing makes Keras warn
        self._averaged_in = False

    def _update_average(self):
        steps = self._steps.assign_add(1.0)
        decay = tf.minimum(self.decay, (1.0 + steps) / (_WARMUP_OFFSET + steps))
        for average, weight in zip(self._average, self._weights):
            average.assign_sub((1.0 - decay) * (average - tf.cast(weight, average.dtype)))

    def on_train_batch_end(self, batch, logs=None):
        self._update()

    def on_test_begin(self, logs=None):
        # Called for fit's validation pass (a user's own model.evaluate does not run fit's callbacks).
        if not self._averaged_in:
            _copy(self._weights, self._raw)
            _copy(self._average, self._weights)
            self._averaged_in = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._averaged_in:
            _copy(self._raw, self._weights)
            self._averaged_in = False

    def on_train_end(self, logs=None):
        # With validation in the last epoch the model already holds the average (or EarlyStopping's
        # restored best average); otherwise it still holds the raw weights.
        if not self._averaged_in:
            _copy(self._average, self._weights)
            self._averaged_in = True

    @property
    def averaged_weights(self) -> list[tf.Variable]:
        """The running average, one variable per trainable weight (``model.trainable_weights``' order)."""
        return list(self._average)


def _copy(sources, targets) -> None:
    for source, target in zip(sources, targets):
        target.assign(tf.cast(source, target.dtype))
