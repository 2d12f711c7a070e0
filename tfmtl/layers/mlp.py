"""A plain MLP block: Dense -> [BatchNorm] -> activation -> [Dropout], repeated."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments


def dense_stack(units: Sequence[int], make_dense: Callable, make_norm: Callable, activation: str,
                batch_norm: bool, dropout: float) -> list:
    """Layers of ``dense(width) -> [norm] -> activation -> [dropout]`` for each width."""
    layers = []
    for width in units:
        # With BN after it, the dense bias is redundant.
        layers.append(make_dense(width, not batch_norm))
        if batch_norm:
            layers.append(make_norm())
        layers.append(keras.layers.Activation(activation))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return layers


def run_stack(layers: Sequence, inputs: tf.Tensor, training=None) -> tf.Tensor:
    x = inputs
    for layer in layers:
        x = layer(x, training=training)
    return x


@register
class MLP(keras.layers.Layer):
    """Stacked dense layers with optional batch normalisation and dropout.

    Args:
      units: widths of the dense layers (at least one).
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.
      kernel_regularizer: regulariser of every dense kernel.

    Shapes: ``[batch, d_in]`` -> ``[batch, units[-1]]``.

    Example:

    >>> MLP([8, 4], batch_norm=True)(tf.ones([2, 3])).shape.as_list()
    [2, 4]
    """

    def __init__(self, units: Sequence[int], activation: str = "relu", batch_norm: bool = False,
                 dropout: float = 0.0, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        check_arguments("MLP", units=dict(units=units), rates=dict(dropout=dropout))
        self.units = [int(u) for u in units]
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._layers = dense_stack(
            self.units, lambda width, use_bias: keras.layers.Dense(
                width, use_bias=use_bias, kernel_regularizer=self.kernel_regularizer),
            keras.layers.BatchNormalization, activation, batch_norm, self.dropout)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        return run_stack(self._layers, inputs, training)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "batch_norm": self.batch_norm, "dropout": self.dropout,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
