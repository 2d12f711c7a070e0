"""STAR's star-topology dense layer: kernel = shared * domain-specific."""

from __future__ import annotations

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain.routing import select_domain, split_domain_inputs


@register
class StarDense(keras.layers.Layer):
    """STAR's star-topology dense layer: ``y = act(x (W_shared * W_d) + b_shared + b_d)`` for domain d.

    The domain kernels start at ones, so every domain starts as the shared
    layer: the product of two Glorot-initialised matrices would shrink the
    signal by another factor of the fan-in.

    Args:
      num_domains: D domains.
      units: output width U.

    Shapes: ``[x [batch, d], domain int [batch]]`` -> ``[batch, U]``.

    Example:

    >>> layer = StarDense(num_domains=3, units=4)
    >>> layer([tf.ones([2, 5]), tf.constant([0, 2])]).shape.as_list()
    [2, 4]
    """

    def __init__(self, num_domains: int, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", domain_kernel_initializer="ones", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        check_arguments("StarDense", counts=dict(num_domains=num_domains, units=units))
        self.num_domains = int(num_domains)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.domain_kernel_initializer = keras.initializers.get(domain_kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        d_in = int(tf.TensorShape(input_shape[0])[-1])
        self.shared_kernel = self.add_weight(name="shared_kernel", shape=(d_in, self.units),
                                             initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        # No regulariser on the domain kernel: L2 would pull its multipliers from 1 towards 0.
        self.domain_kernel = self.add_weight(name="domain_kernel", shape=(self.num_domains, d_in, self.units),
                                             initializer=self.domain_kernel_initializer)
        if self.use_bias:
            self.shared_bias = self.add_weight(name="shared_bias", shape=(self.units,), initializer="zeros")
            self.domain_bias = self.add_weight(name="domain_bias", shape=(self.num_domains, self.units),
                                               initializer="zeros")
        super().build(input_shape)

    def call(self, inputs) -> tf.Tensor:
        x, domain = split_domain_inputs(inputs)
        outputs = tf.einsum("bi,dio->bdo", x, self.domain_kernel * self.shared_kernel)  # [B, D, U]
        if self.use_bias:
            outputs = outputs + self.domain_bias + self.shared_bias
        return self.activation(select_domain(outputs, domain))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "units": self.units,
                "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "domain_kernel_initializer": keras.initializers.serialize(self.domain_kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


__all__ = ["StarDense"]
