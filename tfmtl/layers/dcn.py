"""DCN-v2 cross network (Wang et al., "DCN V2", WWW 2021): bounded-degree explicit feature crosses.

Each cross layer computes ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``; with
``projection_dim=r`` the matrix is low-rank, ``W_l = U_l V_l`` (``U_l: [d, r]``,
``V_l: [r, d]``), the paper's cheaper variant. ``L`` layers model crosses up to
degree ``L + 1``.

Example:

>>> cross = CrossNetwork(num_layers=2, projection_dim=4)
>>> cross(tf.ones([3, 10])).shape.as_list()
[3, 10]
"""

from __future__ import annotations

import tensorflow as tf

from tfmtl._keras import keras, register


def cross_layer(x0: tf.Tensor, x: tf.Tensor, kernels: list[tf.Tensor], bias: tf.Tensor | None) -> tf.Tensor:
    """One DCN-v2 cross ``x0 * (W x + b) + x`` where ``W`` is the product of ``kernels`` (applied right to left).

    Args:
      x0: ``[batch, d]``, the cross network's input.
      x: ``[batch, d]``, the previous layer's output.
      kernels: ``[W]`` (``[d, d]``) for full rank, or ``[V, U]`` (``[d, r]``, ``[r, d]``) for low rank,
        as right-multiplied Keras kernels: ``x @ V @ U``.
      bias: ``[d]`` or ``None``.
    """
    projected = x
    for kernel in kernels:
        projected = tf.matmul(projected, kernel)
    if bias is not None:
        projected = projected + bias
    return x0 * projected + x


@register
class CrossNetwork(keras.layers.Layer):
    """``num_layers`` stacked DCN-v2 cross layers.

    Args:
      num_layers: number of cross layers (each adds one degree of crossing).
      projection_dim: ``None`` for full-rank ``d x d`` kernels, else the rank ``r``
        of the low-rank factorisation (``2 d r`` weights per layer instead of ``d^2``).
      use_bias: add ``b_l``.
      kernel_initializer: initializer of the kernels.
      kernel_regularizer: regulariser of the kernels.

    Shapes: ``float [batch, d]`` -> ``float [batch, d]``.

    Example:

    >>> CrossNetwork(num_layers=1)(tf.ones([2, 5])).shape.as_list()
    [2, 5]
    """

    def __init__(self, num_layers: int = 2, projection_dim: int | None = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"CrossNetwork: num_layers must be >= 1, got {num_layers}")
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"CrossNetwork: projection_dim must be None or >= 1, got {projection_dim}")
        self.num_layers = int(num_layers)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.layer_kernels, self.biases = [], []
        for i in range(self.num_layers):
            shapes = [(d, d)] if self.projection_dim is None else [(d, self.projection_dim), (self.projection_dim, d)]
            self.layer_kernels.append([
                # A fresh initializer per kernel: one unseeded instance would give every kernel the same values.
                self.add_weight(name=f"kernel_{i}_{j}", shape=shape,
                                initializer=self.kernel_initializer.__class__.from_config(
                                    self.kernel_initializer.get_config()),
                                regularizer=self.kernel_regularizer) for j, shape in enumerate(shapes)])
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(d,), initializer="zeros")
                               if self.use_bias else None)
        super().build(input_shape)

    def call(self, x0: tf.Tensor) -> tf.Tensor:
        x = x0
        for kernels, bias in zip(self.layer_kernels, self.biases):
            x = cross_layer(x0, x, kernels, bias)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "num_layers": self.num_layers, "projection_dim": self.projection_dim,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


__all__ = ["CrossNetwork", "cross_layer"]
