"""Piecewise-linear and periodic numeric embeddings: hand-computed encodings, shapes, round trips, gradients."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.layers.numeric import PeriodicEmbedding, PiecewiseLinearEmbedding, piecewise_linear_encoding


def test_ple_by_hand_inside_and_outside_the_edges():
    # Edges 0, 1, 3: bins [0, 1) and [1, 3]. Feature 2 has one bin [-1, 1] (padded to two).
    edges = [[0.0, 1.0, 3.0], [-1.0, 1.0]]
    x = tf.constant([[0.5, 0.0], [2.0, 1.0], [-1.0, -3.0], [5.0, 2.0]])
    got = piecewise_linear_encoding(x, edges).numpy()
    expected = np.array([
        [[0.5, 0.0], [0.5, 0.0]],    # 0.5 halfway through bin 1; 0 halfway through [-1, 1]
        [[1.0, 0.5], [1.0, 0.0]],    # 2 fills bin 1, half of bin 2 ((2-1)/2)
        [[-1.0, 0.0], [-1.0, 0.0]],  # below b_0: the first bin extrapolates (-1 / 1); (-3+1)/2 = -1
        [[1.0, 2.0], [1.5, 0.0]],    # above b_T: the last bin extrapolates ((5-1)/2 = 2); (2+1)/2 = 1.5
    ])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_ple_middle_bins_clip_to_zero_and_one():
    got = piecewise_linear_encoding(tf.constant([[-5.0], [1.5], [9.0]]), [[0.0, 1.0, 2.0, 4.0]]).numpy()[:, 0]
    np.testing.assert_allclose(got, [[-5.0, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 3.5]], atol=1e-6)  # (9 - 2) / 2


def test_ple_embedding_is_linear_relu_of_the_encoding():
    layer = PiecewiseLinearEmbedding([[0.0, 1.0, 3.0]], embedding_dim=2, columns=[1])
    x = tf.constant([[100.0, 2.0]])  # column 0 is ignored
    out = layer(x).numpy()
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(out[0, 0], np.maximum(np.array([1.0, 0.5]) @ kernel[0] + bias[0], 0), atol=1e-6)


def test_periodic_embedding_by_hand():
    layer = PeriodicEmbedding(1, embedding_dim=3, frequencies=2, activation=None)
    x = tf.constant([[0.25]])
    layer(x)
    c = np.array([0.5, 1.0])
    layer.coefficients.assign([c])
    angles = 2 * math.pi * c * 0.25
    features = np.concatenate([np.cos(angles), np.sin(angles)])
    expected = features @ layer.kernel.numpy()[0] + layer.bias.numpy()[0]
    np.testing.assert_allclose(layer(x).numpy()[0, 0], expected, atol=1e-5)


@pytest.mark.parametrize("layer", [
    lambda: PiecewiseLinearEmbedding([[0.0, 1.0, 3.0], [-1.0, 1.0]], embedding_dim=4),
    lambda: PeriodicEmbedding(2, embedding_dim=4, frequencies=3, sigma=0.5),
])
def test_round_trip_and_gradients(layer, tmp_path):
    layer = layer()
    x = tf.constant([[0.5, 0.2], [2.5, -0.4]])
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(), model(x).numpy(), atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert any(np.abs(g.numpy()).sum() > 0 for g in grads)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="edges of feature 0"):
        PiecewiseLinearEmbedding([[1.0, 1.0]], embedding_dim=2)
    with pytest.raises(ValueError, match="columns"):
        PiecewiseLinearEmbedding([[0.0, 1.0]], embedding_dim=2, columns=[0, 1])
    with pytest.raises(ValueError, match="sigma"):
        PeriodicEmbedding(1, embedding_dim=2, sigma=0.0)


@pytest.mark.parametrize("make", [
    lambda dtype: PiecewiseLinearEmbedding([[0.0, 1.0, 3.0], [-1.0, 1.0]], embedding_dim=4, dtype=dtype),
    lambda dtype: PeriodicEmbedding(2, embedding_dim=4, frequencies=3, sigma=0.5, dtype=dtype),
])
def test_mixed_precision_computes_in_float16_with_float32_weights(make):
    # Under mixed_float16 the inputs arrive as float16 (the GPU path); the bins stay float32 inside.
    x = tf.constant([[0.5, 0.2], [2.5, -0.4]])
    full, mixed = make("float32"), make("mixed_float16")
    full(x)
    mixed(tf.cast(x, tf.float16))
    mixed.set_weights(full.get_weights())
    out = mixed(tf.cast(x, tf.float16))
    assert out.dtype == tf.float16 and all(w.dtype == tf.float32 for w in mixed.weights)
    np.testing.assert_allclose(out.numpy(), full(x).numpy(), atol=2e-2)
