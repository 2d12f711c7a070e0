import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.training import PIDController, PIDWeighting, StaticWeights, UncertaintyWeighting

SHAPES = {"acc": tf.TensorShape([]), "revenue": tf.TensorShape([]), "fairness": tf.TensorShape([])}
LOSSES = {"acc": tf.constant(0.5), "revenue": tf.constant(2.0), "fairness": tf.constant(1.0)}


def built(weighting):
    weighting.build(SHAPES)
    return weighting


def test_static_weights_and_combine():
    w = built(StaticWeights({"revenue": 0.25}))
    total, weights = w.combine(LOSSES)
    assert {k: float(v) for k, v in weights.items()} == {"acc": 1.0, "revenue": 0.25, "fairness": 1.0}
    assert float(total) == pytest.approx(0.5 + 0.5 + 1.0)
    with pytest.raises(ValueError, match="not objectives"):
        built(StaticWeights({"typo": 1.0}))


def test_uncertainty_gradients_by_hand():
    w = built(UncertaintyWeighting())
    with tf.GradientTape() as tape:
        total, weights = w.combine(LOSSES)
    # total = sum_k exp(-s_k) L_k + s_k, s = 0: d/ds_k = 1 - L_k
    grads = tape.gradient(total, [w.log_variances[k] for k in LOSSES])
    np.testing.assert_allclose([float(g) for g in grads], [0.5, -1.0, 0.0], atol=1e-6)
    assert float(total) == pytest.approx(3.5)
    assert all(float(q) == 1.0 for q in weights.values())
    assert len(w.trainable_weights) == 3


def test_uncertainty_optimum_is_inverse_loss():
    # d/ds_k [exp(-s_k) L_k + s_k] = 0  <=>  s_k = log L_k, where q_k = 1 / L_k
    w = built(UncertaintyWeighting())
    for name, loss in LOSSES.items():
        w.log_variances[name].assign(tf.math.log(loss))
    with tf.GradientTape() as tape:
        total, weights = w.combine(LOSSES)
    grads = tape.gradient(total, list(w.log_variances.values()))
    np.testing.assert_allclose([float(g) for g in grads], [0.0, 0.0, 0.0], atol=1e-6)
    assert {k: float(v) for k, v in weights.items()} == pytest.approx({"acc": 2.0, "revenue": 0.5, "fairness": 1.0})
    # one SGD step from s = 0 moves every weight towards its optimum
    w2 = built(UncertaintyWeighting())
    with tf.GradientTape() as tape:
        total, _ = w2.combine(LOSSES)
    keras.optimizers.SGD(0.1).apply_gradients(zip(tape.gradient(total, w2.trainable_weights), w2.trainable_weights))
    q = {k: float(v) for k, v in w2(LOSSES).items()}
    assert q["acc"] > 1.0 and q["revenue"] < 1.0 and q["fairness"] == pytest.approx(1.0)


def test_pid_weighting_preferences_and_controller():
    controller = PIDController(set_point=0.4, kp=0.01, ki=0.001, q_min=0.1)
    w = built(PIDWeighting("acc", controller, preferences={"revenue": 0.7, "fairness": 0.3}, auxiliary_scale=0.2))
    q = w(LOSSES, training=True)
    assert float(q["revenue"]) == pytest.approx(0.14) and float(q["fairness"]) == pytest.approx(0.06)
    # acc loss 0.5 above the 0.4 set point: e = -0.1, q = 0.01/(1+exp(-0.1)) + 0.001*0.1 + 0.1
    assert float(q["acc"]) == pytest.approx(0.01 / (1 + np.exp(-0.1)) + 0.0001 + 0.1, abs=1e-7)
    # Evaluation reads the weight without stepping the controller.
    assert float(w(LOSSES, training=False)["acc"]) == pytest.approx(float(q["acc"]))
    assert int(controller.steps) == 1


def test_pid_weighting_default_preferences_are_uniform():
    w = built(PIDWeighting("acc", {"set_point": 0.4}, auxiliary_scale=1.0))
    q = w(LOSSES, training=False)
    assert float(q["revenue"]) == pytest.approx(0.5) and float(q["fairness"]) == pytest.approx(0.5)


def test_pid_weighting_validates_names():
    with pytest.raises(ValueError, match="accuracy objective"):
        built(PIDWeighting("missing", PIDController(set_point=0.4)))
    with pytest.raises(ValueError, match="controller"):
        built(PIDWeighting("acc", PIDController(set_point=0.4), preferences={"acc": 1.0}))


@pytest.mark.parametrize("weighting", [
    StaticWeights({"acc": 2.0}),
    UncertaintyWeighting(initial_log_variance=0.5),
    PIDWeighting("acc", PIDController(set_point=0.3, kp=0.02), preferences={"revenue": 1.0}, auxiliary_scale=0.5),
])
def test_config_round_trip(weighting):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(weighting))
    assert type(clone) is type(weighting)
    assert clone.get_config() == weighting.get_config()


def test_morec_preset_eq13_weights_are_the_preferences():
    w = PIDWeighting.morec("click", set_point=0.3, preferences={"revenue": 0.1, "fairness": 0.1, "alignment": 0.8},
                           alpha_min=0.2)
    w.build({"click": [], "revenue": [], "fairness": [], "alignment": []})
    losses = {"click": tf.constant(0.5), "revenue": tf.constant(2.0), "fairness": tf.constant(3.0),
              "alignment": tf.constant(4.0)}
    total, q = w.combine(losses, training=True)
    # Eq. 13: q_obj = p_obj; Eq. 14 (first step, L = 0.5, e = -0.2): 0.01 / (1 + e^-0.2) + 0.001 * 0.2 + 0.2
    got = {k: float(v) for k, v in q.items()}
    assert got == pytest.approx({"click": 0.20569834, "revenue": 0.1, "fairness": 0.1, "alignment": 0.8}, abs=1e-7)
    assert float(total) == pytest.approx(0.20569834 * 0.5 + 0.1 * 2 + 0.1 * 3 + 0.8 * 4, rel=1e-6)
    # the official code's lambda = 0.2 on the auxiliary losses is an option
    scaled = PIDWeighting.morec("click", 0.3, {"revenue": 1.0}, alpha_min=0.2, auxiliary_scale=0.2)
    scaled.build({"click": [], "revenue": []})
    assert float(scaled({"click": tf.constant(0.3), "revenue": tf.constant(1.0)}, training=True)["revenue"]) == \
        pytest.approx(0.2)
