"""Task towers: one small MLP and one logit per task, computed as grouped layers."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.grouped import GroupedDense, GroupedMLP


@register
class TaskTowers(keras.layers.Layer):
    """T towers, each ``units`` hidden layers then one logit.

    Args:
      num_tasks: T towers (>= 1).
      units: hidden widths of each tower (``()``: one linear logit).
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Shapes: a shared input ``[batch, d]`` or per-task inputs ``[batch, T, d]``
    -> logits ``[batch, T]``.

    Example:

    >>> TaskTowers(num_tasks=2, units=[8])(tf.ones([3, 5])).shape.as_list()
    [3, 2]
    """

    def __init__(self, num_tasks: int, units: Sequence[int] = (), activation: str = "relu",
                 batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_arguments("TaskTowers", counts=dict(num_tasks=num_tasks), optional_units=dict(units=units),
                        rates=dict(dropout=dropout))
        self.num_tasks = int(num_tasks)
        self.units = [int(u) for u in units]
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        self.hidden = (GroupedMLP(self.num_tasks, self.units, activation=activation, batch_norm=batch_norm,
                                  dropout=dropout) if self.units else None)
        self.logit = GroupedDense(self.num_tasks, 1)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        x = self.hidden(inputs, training=training) if self.hidden is not None else inputs
        return tf.squeeze(self.logit(x), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tasks": self.num_tasks, "units": self.units,
                "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout}
