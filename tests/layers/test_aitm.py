import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.layers import AITM, AITMCalibrator, AITMHead, calibrator_penalty


def _set_identity(layer, d):
    eye, zeros = np.eye(d, dtype=np.float32), np.zeros(d, np.float32)
    for sub in (layer._transfer, layer._query, layer._key, layer._value):
        sub.set_weights([eye, zeros])


def test_transfer_and_attention_against_hand_calculation():
    layer = AITM()
    previous = tf.constant([[1.0, -2.0], [0.0, 0.0]])
    current = tf.constant([[2.0, 1.0], [1.0, 1.0]])
    layer([previous, current])
    _set_identity(layer, 2)
    out, weights = layer([previous, current], return_weights=True)
    # Row 0: h(p) = relu(p) = (1, 0); scores |u|^2 / sqrt(2): 1/sqrt2, 5/sqrt2.
    s = np.array([1.0, 5.0]) / np.sqrt(2.0)
    w = np.exp(s) / np.exp(s).sum()
    # Row 1: h(p) = (0, 0) -> score 0; q = (1, 1) -> 2/sqrt2.
    s1 = np.array([0.0, 2.0]) / np.sqrt(2.0)
    w1 = np.exp(s1) / np.exp(s1).sum()
    np.testing.assert_allclose(weights.numpy(), [w, w1], rtol=1e-5)
    np.testing.assert_allclose(out.numpy(), [w[0] * np.array([1.0, 0.0]) + w[1] * np.array([2.0, 1.0]),
                                             w1[1] * np.array([1.0, 1.0])], rtol=1e-5)


def test_gradient_flows_from_current_step_into_previous_tower():
    previous = tf.Variable(tf.ones([2, 4]))
    layer = AITM()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([previous, tf.zeros([2, 4])]))
    assert np.abs(tape.gradient(loss, previous).numpy()).sum() > 0


def test_calibrator_against_hand_calculation_and_zero_when_monotone():
    p = tf.constant([[0.2, 0.6, 0.1], [0.5, 0.4, 0.45]])
    # Row 0: max(0.4, 0) + max(-0.5, 0) = 0.4; row 1: 0 + 0.05 -> mean 0.225.
    np.testing.assert_allclose(calibrator_penalty(p).numpy(), 0.225, rtol=1e-5)
    assert float(calibrator_penalty(tf.constant([[0.9, 0.5, 0.1], [0.3, 0.3, 0.0]]))) == 0.0
    layer = AITMCalibrator(alpha=2.0, from_logits=True)
    logits = tf.constant([[0.0, np.log(3.0)]], tf.float32)  # sigmoids 0.5, 0.75
    assert layer(logits) is logits
    np.testing.assert_allclose(float(layer.losses[0]), 2.0 * 0.25, rtol=1e-5)


def test_head_shapes_and_cvr_ratio():
    out = AITMHead()(tf.constant([[0.0, 0.0], [1.0, -3.0]]))
    assert {k: v.shape.as_list() for k, v in out.items()} == {"ctr": [2, 1], "cvr": [2, 1], "ctcvr": [2, 1]}
    np.testing.assert_allclose(out["cvr"].numpy()[:, 0], [1.0, (1 / (1 + np.exp(3))) * (1 + np.exp(-1))],
                               rtol=1e-5)


def test_serialization_and_bad_arguments():
    for layer in (AITM(dropout=0.1), AITMCalibrator(alpha=0.3, from_logits=True), AITMHead()):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="alpha"):
        AITMCalibrator(alpha=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        AITM(dropout=1.5)
    with pytest.raises(ValueError, match="previous and current"):
        AITM()([tf.ones([2, 3]), tf.ones([2, 4])])
