"""Factorization-machine terms (DeepFM): first order and second-order cross.

y_FM = w0 + sum_i w_i + <w_dense, x_dense>  +  0.5 * sum_k[(sum_i v_ik)^2 - sum_i v_ik^2]

:class:`SharedFactorizationMachine` is DeepFM's FM as the FSMD paper keeps it: one FM over
all fields, dense features included, the same term for every task.
:class:`FactorizationMachine` is tfmtl's per-task variant (own first-order weights and
learned cross weights per task, dense features in the linear part only).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers.embedding import FieldEmbedding


def fm_second_order(embeddings: tf.Tensor) -> tf.Tensor:
    """Pairwise interactions sum_{i<j} <v_i, v_j>: ``[batch, F, D]`` -> ``[batch, 1]``."""
    return tf.reduce_sum(bi_interaction(embeddings), axis=1, keepdims=True)


def bi_interaction(embeddings: tf.Tensor) -> tf.Tensor:
    """The FM cross term before the sum over dimensions: ``[batch, F, D]`` -> ``[batch, D]``."""
    return 0.5 * (tf.square(tf.reduce_sum(embeddings, axis=1)) - tf.reduce_sum(tf.square(embeddings), axis=1))


@register
class FMSecondOrder(keras.layers.Layer):
    """The FM second-order cross term over field embeddings.

    Shapes: ``[batch, F, D]`` -> ``[batch, 1]``; with ``reduce=False`` the
    per-dimension terms ``[batch, D]`` (their sum is the FM term).

    Example:

    >>> FMSecondOrder()(tf.ones([2, 3, 4])).numpy().ravel().tolist()  # 3 pairs x <1,1>=4
    [12.0, 12.0]
    """

    def __init__(self, reduce: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.reduce = reduce

    def call(self, embeddings: tf.Tensor) -> tf.Tensor:
        if self.reduce:
            return fm_second_order(embeddings)
        return bi_interaction(embeddings)

    def get_config(self) -> dict:
        return {**super().get_config(), "reduce": self.reduce}


@register
class FMFirstOrder(keras.layers.Layer):
    """The FM first-order (linear) term: one weight per field id, a linear dense part, a bias.

    Inputs: ``[ids, dense]`` with ids ``int [batch, F]`` and dense ``float
    [batch, N]`` (N may be 0). Output: ``[batch, units]`` (``units`` independent
    linear terms, one per task in multi-task models).

    Example:

    >>> layer = FMFirstOrder(field_sizes=[3, 2])
    >>> layer([tf.constant([[1, 0]]), tf.ones([1, 2])]).shape.as_list()
    [1, 1]
    """

    def __init__(self, field_sizes: Sequence[int], units: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.field_sizes = [int(s) for s in field_sizes]
        self.units = int(units)
        self.weights_per_id = FieldEmbedding(self.field_sizes, self.units, embeddings_initializer="zeros")

    def build(self, input_shape):
        dense_dim = int(input_shape[1][-1])
        self.dense_kernel = self.add_weight(name="dense_kernel", shape=(dense_dim, self.units), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs) -> tf.Tensor:
        ids, dense = inputs
        linear = tf.reduce_sum(self.weights_per_id(ids), axis=1)
        return linear + tf.matmul(dense, self.dense_kernel) + self.bias

    def get_config(self) -> dict:
        return {**super().get_config(), "field_sizes": self.field_sizes, "units": self.units}


@register
class FactorizationMachine(keras.layers.Layer):
    """FM logits for ``num_outputs`` tasks sharing the field embeddings.

    Task k's logit is its own first-order term plus ``w_k . bi_interaction(v)``;
    ``w_k`` starts at ones, where it equals the classic FM second-order term,
    and can learn a task-specific weighting (or sign) of the cross features.

    Inputs: ``[ids, dense, embeddings]`` (``[batch, F]``, ``[batch, N]``,
    ``[batch, F, D]``). Output: ``[batch, num_outputs]``.

    Example:

    >>> fm = FactorizationMachine(field_sizes=[3, 2], num_outputs=2)
    >>> fm([tf.constant([[1, 0]]), tf.zeros([1, 0]), tf.ones([1, 2, 4])]).numpy().tolist()
    [[4.0, 4.0]]
    """

    def __init__(self, field_sizes: Sequence[int], num_outputs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.field_sizes = [int(s) for s in field_sizes]
        self.num_outputs = int(num_outputs)
        self.first_order = FMFirstOrder(self.field_sizes, units=self.num_outputs)
        self.cross = FMSecondOrder(reduce=False)
        self.cross_weights = keras.layers.Dense(self.num_outputs, use_bias=False, kernel_initializer="ones")

    def call(self, inputs) -> tf.Tensor:
        ids, dense, embeddings = inputs
        return self.first_order([ids, dense]) + self.cross_weights(self.cross(embeddings))

    def get_config(self) -> dict:
        return {**super().get_config(), "field_sizes": self.field_sizes, "num_outputs": self.num_outputs}


@register
class SharedFactorizationMachine(keras.layers.Layer):
    """DeepFM's FM over all fields, dense features included, one term shared by every task.

    Every dense column ``j`` is a field whose latent vector is ``x_j * u_j`` (DeepFM: a
    feature's vector scaled by its value), so with ``e = [v_1..v_F, x_1 u_1..x_N u_N]``

        y = b + sum_i w_{id_i} + <w_dense, x> + sum_{a<b} <e_a, e_b>

    and the output repeats ``y`` for the ``num_outputs`` tasks (FSMD keeps DeepFM's FM
    part unchanged and shares it; the tasks differ only through their deep parts).

    Inputs: ``[ids, dense, embeddings]`` (``int [batch, F]``, ``[batch, N]``,
    ``[batch, F, D]``; ``N`` may be 0). Output: ``[batch, num_outputs]``, equal columns.

    Args:
      field_sizes: vocabulary size of each embedded field.
      num_outputs: how many (identical) task columns to return.
      dense_initializer: initializer of the dense features' latent vectors ``u_j`` (default:
        ``"uniform"``, U(-0.05, 0.05), as the field embeddings; with Glorot's larger start the
        cross terms of outlying z-scores swamp the logit early: census Base, 3000 rows,
        5 epochs, income AUC 0.77 against 0.91).

    Example:

    >>> fm = SharedFactorizationMachine(field_sizes=[3, 2], num_outputs=2)
    >>> fm([tf.constant([[1, 0]]), tf.zeros([1, 0]), tf.ones([1, 2, 4])]).numpy().tolist()
    [[4.0, 4.0]]
    """

    def __init__(self, field_sizes: Sequence[int], num_outputs: int = 1, dense_initializer="uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.field_sizes = [int(s) for s in field_sizes]
        self.num_outputs = int(num_outputs)
        if self.num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
        self.dense_initializer = keras.initializers.get(dense_initializer)
        self.first_order = FMFirstOrder(self.field_sizes, units=1)
        self.cross = FMSecondOrder(reduce=True)

    def build(self, input_shape):
        dense_dim, embedding_dim = int(input_shape[1][-1]), int(input_shape[2][-1])
        self.dense_vectors = self.add_weight(name="dense_vectors", shape=(dense_dim, embedding_dim),
                                             initializer=self.dense_initializer)
        super().build(input_shape)

    def call(self, inputs) -> tf.Tensor:
        ids, dense, embeddings = inputs
        dense = tf.cast(dense, embeddings.dtype)
        dense_fields = dense[:, :, None] * self.dense_vectors[None, :, :]  # [B, N, D]
        cross = self.cross(tf.concat([embeddings, dense_fields], axis=1))
        y = self.first_order([ids, dense]) + cross  # [B, 1]
        return tf.tile(y, [1, self.num_outputs])

    def get_config(self) -> dict:
        return {**super().get_config(), "field_sizes": self.field_sizes, "num_outputs": self.num_outputs,
                "dense_initializer": keras.initializers.serialize(self.dense_initializer)}
