"""Bilevel (first-order DARTS) updates of a model's structure weights, with an optimizer of their own.

A model with *structure weights* (e.g. M3oE's ``exp_d, exp_t, bal_d, bal_t``) keeps them out of the main
optimizer (non-trainable) and updates them on held-out batches:

* :class:`StructureWeightUpdate`: the callback that takes the step every ``every_n_batches`` training batches;
* :class:`BilevelStructureFit`: a model mixin whose ``fit`` adds that callback when the model's
  ``structure_update`` is ``"bilevel"``.
"""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras


class BilevelStructureFit:
    """Mixin for a Keras model with structure weights: ``fit`` adds a :class:`StructureWeightUpdate`.

    The model provides ``structure_weights`` (the variables), ``structure_update`` (``"bilevel"``
    turns the step on), ``structure_learning_rate`` and ``structure_update_every``; it should
    also have ``make_dataset`` when the structure data is a DataFrame. Put the mixin first in
    the bases so that its ``fit`` runs before the model's own.
    """

    def fit(self, x=None, y=None, batch_size=None, *args, callbacks=None, validation_data=None, structure_data=None,
            **kwargs):
        """The model's own ``fit``; in ``"bilevel"`` mode also adds a :class:`StructureWeightUpdate` callback.

        Its batches come from ``structure_data``, else ``validation_data``, else
        the training data (DataFrames or ``(x, y)`` datasets). Pass your own
        :class:`StructureWeightUpdate` in ``callbacks`` to configure it fully.
        """
        callbacks = list(callbacks or [])
        if self.structure_update == "bilevel" and not any(isinstance(c, StructureWeightUpdate) for c in callbacks):
            # "train": the official M3oE code's step takes a training batch.
            sources = ((structure_data, x) if getattr(self, "structure_batches", "validation") == "train"
                       else (structure_data, validation_data, x))
            data = next(d for d in sources if d is not None)
            # Reused across fit() calls on the same data: the structure optimizer keeps its state
            # and its step is traced once (fitting epoch by epoch is common).
            previous = getattr(self, "_structure_callback", None)
            if previous is None or previous.data is not data:
                previous = StructureWeightUpdate(data, learning_rate=self.structure_learning_rate,
                                                 every_n_batches=self.structure_update_every)
                self._structure_callback = previous
            callbacks.append(previous)
        return super().fit(x, y, batch_size, *args, callbacks=callbacks, validation_data=validation_data,
                           **kwargs)


class StructureWeightUpdate(keras.callbacks.Callback):
    """First-order DARTS step on a model's structure weights, with an optimizer of their own.

    Every ``every_n_batches`` training batches (or, with ``every_n_batches="epoch"``, at the
    end of every epoch, as the official M3oE code): one batch from ``data``, the
    summed binary cross-entropy of the model's trained outputs (inference mode,
    so batch-norm statistics are left alone) and one optimizer step on
    ``model.structure_weights`` only.

    Args:
      data: a DataFrame (turned into shuffled batches by ``model.make_dataset``)
        or a ``tf.data.Dataset`` of ``(x, y)`` / ``(x, y, sample_weight)``; it is repeated.
      learning_rate: Adam learning rate (ignored with ``optimizer``).
      every_n_batches: update period.
      batch_size: batch size for a DataFrame.
    """

    def __init__(self, data, learning_rate: float = 1e-3, every_n_batches: int | str = 10,
                 optimizer: keras.optimizers.Optimizer | None = None, batch_size: int = 1024, seed: int | None = None):
        super().__init__()
        if every_n_batches != "epoch" and (isinstance(every_n_batches, str) or every_n_batches < 1):
            raise ValueError(f"every_n_batches must be >= 1 or 'epoch', got {every_n_batches!r}")
        self.data = data
        self.every_n_batches = every_n_batches if every_n_batches == "epoch" else int(every_n_batches)
        self.optimizer = optimizer or keras.optimizers.Adam(learning_rate)
        self.batch_size = batch_size
        self.seed = seed
        self.steps = 0
        self._iterator = None
        self._update = None
        self._model = None
        self._batches = 0

    def on_train_begin(self, logs=None):
        if self._update is not None and self._model is self.model:
            return  # a later fit() of the same model: keep the iterator, optimizer state and traced step
        self._model = self.model
        variables = list(self.model.structure_weights)
        dataset = self.data
        if isinstance(dataset, pd.DataFrame):
            dataset = self.model.make_dataset(dataset, batch_size=self.batch_size, shuffle=True, seed=self.seed)
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(f"StructureWeightUpdate: data must be a DataFrame or tf.data.Dataset, "
                            f"got {type(self.data).__name__}")
        self._iterator = iter(dataset.repeat())
        self.optimizer.build(variables)
        step = lambda batch: self._step(variables, batch)  # noqa: E731
        # Follow the model: eager when it runs eagerly (debugging, tiny tests), else one traced function.
        # Traced as written, like the model's own steps (see tfmtl.compat.without_autograph).
        self._update = step if self.model.run_eagerly else tf.function(step, reduce_retracing=True, autograph=False)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self.every_n_batches != "epoch" and self._batches % self.every_n_batches == 0:
            self._update(next(self._iterator))
            self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_batches == "epoch":
            self._update(next(self._iterator))
            self.steps += 1

    def _step(self, variables, batch):
        x, y = batch[0], batch[1]
        sample_weight = batch[2] if len(batch) > 2 else None
        with tf.GradientTape() as tape:
            # Non-trainable variables are not watched by default.
            tape.watch(variables)
            predictions = self.model(x, training=False)
            loss = tf.add_n([_mean_bce(y[name], predictions[name], sample_weight) for name in y])
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return loss


def _mean_bce(y_true, y_pred, sample_weight=None) -> tf.Tensor:
    losses = keras.losses.binary_crossentropy(y_true, y_pred)  # [B]
    if sample_weight is None:
        return tf.reduce_mean(losses)
    sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), losses.dtype)
    return tf.reduce_sum(losses * sample_weight) / tf.maximum(tf.reduce_sum(sample_weight), 1e-12)


__all__ = ["BilevelStructureFit", "StructureWeightUpdate"]
