"""Adam with TensorFlow's fused update kernel: the same algorithm as ``keras.optimizers.Adam``, fewer passes.

Keras' Adam writes the dense update as about eight element-wise ops per variable
(``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``, ``var -= alpha m / (sqrt(v) + eps)``),
each a full pass over the variable's memory. On a CPU, where Keras does not XLA-compile
the update, TensorFlow's profiler put those ops at about 14 ms of a 75 ms MMoE training step
(8 experts of 512-256, batch 256, 2 cores) and this fused kernel at 4 ms (bench/results/peers.md,
profile section). ``ResourceApplyAdam`` does the same arithmetic in one multithreaded pass.

The variables, the config and the ``.keras`` file are those of ``keras.optimizers.Adam``;
only ``update_step`` differs, so a model can switch between the two.
"""

from __future__ import annotations

import tensorflow as tf

from tfmtl._keras import keras, register


@register
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense updates run as one fused kernel.

    Sparse gradients (``tf.IndexedSlices``, e.g. from embedding lookups), ``amsgrad``
    and ``adaptive_epsilon`` take Keras' own update.

    Example:

    >>> v = tf.Variable([1.0, 2.0])
    >>> opt = Adam(learning_rate=0.1)
    >>> _ = opt.apply_gradients([(tf.constant([0.5, -0.5]), v)])
    >>> [round(float(x), 4) for x in v.numpy()]   # first Adam step moves each weight by lr
    [0.9, 2.1]
    """

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad or getattr(self, "adaptive_epsilon", False):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        # The kernel folds the bias corrections into lr exactly as Keras' update does:
        # lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), epsilon added outside the sqrt.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(self.learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient, use_locking=False)


def default_optimizer(optimizer):
    """What ``MultiTaskModel.compile`` trains with: ``None`` and ``"adam"`` mean :class:`Adam`."""
    if optimizer is None or (isinstance(optimizer, str) and optimizer.lower() == "adam"):
        return Adam()
    return optimizer
