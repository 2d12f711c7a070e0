"""DCN-v2 cross network: a one-layer cross by hand, low rank, round trip, gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.layers.dcn import CrossNetwork


def test_one_full_rank_cross_layer_by_hand():
    layer = CrossNetwork(num_layers=1)
    x0 = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    layer(x0)
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)  # right-multiplied: x @ w
    layer.layer_kernels[0][0].assign(w)
    layer.biases[0].assign([0.5, -1.0])
    # Row 1: x @ w = [1 + 6, 2 + 8] = [7, 10]; + b = [7.5, 9]; x0 * that + x0 = [8.5, 20].
    # Row 2: x @ w = [-1 + 1.5, -2 + 2] = [0.5, 0]; + b = [1, -1]; x0 * that + x0 = [-2, 0].
    np.testing.assert_allclose(layer(x0).numpy(), [[8.5, 20.0], [-2.0, 0.0]], atol=1e-6)


def test_two_layers_reuse_x0_and_low_rank_is_a_product():
    layer = CrossNetwork(num_layers=2, projection_dim=1, use_bias=False)
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer(x0)
    for kernels in layer.layer_kernels:
        kernels[0].assign([[1.0], [1.0]])  # V: sum of the inputs
        kernels[1].assign([[1.0, -1.0]])   # U
    # Layer 1: (x @ V) = 3; @ U = [3, -3]; x1 = x0 * [3, -3] + x0 = [4, -4].
    # Layer 2: (x1 @ V) = 0; x2 = x0 * 0 + x1 = [4, -4].
    np.testing.assert_allclose(layer(x0).numpy(), [[4.0, -4.0]], atol=1e-6)
    assert [tuple(k.shape) for k in layer.layer_kernels[0]] == [(2, 1), (1, 2)]


@pytest.mark.parametrize("projection_dim", [None, 3])
def test_round_trip_and_gradients(projection_dim, tmp_path):
    inputs = keras.Input(shape=(6,))
    model = keras.Model(inputs, CrossNetwork(2, projection_dim, kernel_regularizer="l2")(inputs))
    x = tf.random.stateless_normal([4, 6], seed=[1, 2])
    path = str(tmp_path / "cross.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(), model(x).numpy(), atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == (2 if projection_dim is None else 4) + 2
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_layers"):
        CrossNetwork(num_layers=0)
    with pytest.raises(ValueError, match="projection_dim"):
        CrossNetwork(projection_dim=0)
