import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.training import PIDController, PIDState, pid_step

MORec = dict(set_point=0.5, kp=0.01, ki=0.001, q_min=0.1)


def test_scripted_sequence_matches_hand_calculation():
    # e = 0.5 - L; S = running sum of e; P = 0.01 / (1 + exp(e)); I = -0.001 * S; q = P + I + 0.1
    #   L=0.7: e=-0.2 S=-0.2  P=0.01/1.8187308=0.00549834  I=0.0002  q=0.10569834
    #   L=0.6: e=-0.1 S=-0.3  P=0.01/1.9048374=0.00524979  I=0.0003  q=0.10554979
    #   L=0.4: e=+0.1 S=-0.2  P=0.01/2.1051709=0.00475021  I=0.0002  q=0.10495021
    #   L=0.5: e= 0.0 S=-0.2  P=0.01/2        =0.00500000  I=0.0002  q=0.10520000
    expected = [0.10569834, 0.10554979, 0.10495021, 0.1052]
    losses = [0.7, 0.6, 0.4, 0.5]

    state, numpy_out = PIDState(), []
    for loss in losses:
        q, state = pid_step(loss, state, **MORec)
        numpy_out.append(float(q))
    np.testing.assert_allclose(numpy_out, expected, atol=1e-8)
    assert float(state.integral) == pytest.approx(-0.2)

    controller = PIDController(**MORec)
    assert float(controller.weight) == pytest.approx(0.1)  # before any update: q_min
    tf_out = [float(controller.update(loss)) for loss in losses]
    np.testing.assert_allclose(tf_out, expected, atol=1e-7)
    assert int(controller.steps) == 4


def test_linear_p_and_d_terms_by_hand():
    # set point 1, Kp=0.5 (linear: P=-Kp*e), Ki=0.1, Kd=0.2, q_min=0
    #   L=1.0: e= 0.0  P= 0.0  S=0.0  I= 0.00  D=0 (first step)              q= 0.00
    #   L=0.8: e= 0.2  P=-0.1  S=0.2  I=-0.02  D=-0.2*(0.2-0.0)=-0.04        q=-0.16
    #   L=1.2: e=-0.2  P= 0.1  S=0.0  I= 0.00  D=-0.2*(-0.2-0.2)=+0.08       q= 0.18
    controller = PIDController(set_point=1.0, kp=0.5, ki=0.1, kd=0.2, sigmoid_p=False, output_min=-10.0)
    out = [float(controller.update(loss)) for loss in (1.0, 0.8, 1.2)]
    np.testing.assert_allclose(out, [0.0, -0.16, 0.18], atol=1e-6)


@pytest.mark.parametrize("sigmoid_p", [True, False])
def test_weight_rises_above_set_point_and_falls_below(sigmoid_p):
    controller = PIDController(set_point=0.5, kp=0.05, ki=0.01, q_min=0.1, sigmoid_p=sigmoid_p)
    above = [float(controller.update(0.8)) for _ in range(20)]
    below = [float(controller.update(0.2)) for _ in range(8)]
    assert np.all(np.diff(above) > 0), above
    assert np.all(np.diff(below) < 0), below
    assert below[0] < above[-1]  # the P term drops at once when the loss crosses the set point
    floor = [float(controller.update(0.2)) for _ in range(100)]
    assert min(floor) == pytest.approx(0.1)  # ... down to output_min (= q_min), never below


def test_integral_and_output_are_clamped():
    controller = PIDController(set_point=0.0, kp=0.0, ki=1.0, q_min=0.0, integral_min=-0.5, integral_max=0.5,
                               output_max=0.4)
    for _ in range(100):
        q = controller.update(1.0)  # e = -1 every step: S would reach -100 without the clamp
    assert float(controller.integral) == pytest.approx(-0.5)
    assert float(q) == pytest.approx(0.4)  # I = 0.5, clamped to output_max
    q = controller.update(-1.0)  # e = +1: S = -0.5 + 1 = 0.5 -> recovers at once (no windup)
    assert float(controller.integral) == pytest.approx(0.5)
    assert float(q) == pytest.approx(0.0)  # I = -0.5, clamped to output_min = q_min = 0


def test_update_in_tf_function_and_xla_matches_numpy():
    losses = np.array([0.9, 0.7, 0.65, 0.3, 0.55, 0.5], np.float32)
    gains = dict(set_point=0.5, kp=0.02, ki=0.005, kd=0.01, q_min=0.2, output_max=1.5, integral_min=-1.0)
    state, reference = PIDState(), []
    for loss in losses:
        q, state = pid_step(float(loss), state, **gains)
        reference.append(float(q))

    for jit in (False, True):
        controller = PIDController(**gains)
        step = tf.function(controller.update, jit_compile=jit)
        got = [float(step(tf.constant(loss))) for loss in losses]
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)


def test_call_updates_only_when_training_and_reset():
    controller = PIDController(set_point=0.5)
    first = float(controller(tf.constant(0.9), training=True))
    assert float(controller(tf.constant(0.1), training=False)) == pytest.approx(first)
    assert int(controller.steps) == 1
    controller.reset()
    assert int(controller.steps) == 0 and float(controller.integral) == 0.0


def test_config_round_trip():
    controller = PIDController(set_point=0.3, kp=0.02, ki=0.002, kd=0.1, q_min=0.1, sigmoid_p=False,
                               output_max=2.0, integral_min=-5.0, integral_max=5.0, name="acc_pid")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(controller))
    assert isinstance(clone, PIDController)
    assert clone.get_config() == controller.get_config()
    for loss in (0.5, 0.2):
        assert float(clone.update(loss)) == pytest.approx(float(controller.update(loss)))


def test_rejects_inverted_limits():
    with pytest.raises(ValueError):
        PIDController(set_point=0.5, q_min=0.5, output_max=0.1)


def test_morec_preset_follows_eq14_with_paper_constants():
    # MoRec Eq. 14, Kp = 0.01, Ki = 0.001 (section 4.1.4); set point 0.3, alpha_min 0.2.
    #   e = 0.3 - L;  q = 0.01 / (1 + exp(e)) - 0.001 * sum(e) + 0.2
    #   L=0.50: e=-0.20 S=-0.20  P=0.00549834  I=0.00020  q=0.20569834
    #   L=0.40: e=-0.10 S=-0.30  P=0.00524979  I=0.00030  q=0.20554979
    #   L=0.25: e=+0.05 S=-0.25  P=0.00487503  I=0.00025  q=0.20512503
    #   L=0.30: e= 0.00 S=-0.25  P=0.00500000  I=0.00025  q=0.20525000
    #   L=0.10: e=+0.20 S=-0.05  P=0.00450166  I=0.00005  q=0.20455166
    controller = PIDController.morec(set_point=0.3, alpha_min=0.2)
    assert (controller.kp, controller.ki, controller.kd, controller.sigmoid_p) == (0.01, 0.001, 0.0, True)
    assert float(controller.weight) == pytest.approx(0.2)
    got = [float(controller.update(loss)) for loss in (0.5, 0.4, 0.25, 0.3, 0.1)]
    np.testing.assert_allclose(got, [0.20569834, 0.20554979, 0.20512503, 0.20525, 0.20455166], atol=1e-7)
    assert float(controller.integral) == pytest.approx(-0.05)
    # the floor alpha_min is also a clamp (official code): a long run below the set point stops at 0.2
    low = PIDController.morec(set_point=0.3, alpha_min=0.2)
    for _ in range(20):
        q = float(low.update(0.0))
    assert q == pytest.approx(0.2)
    capped = PIDController.morec(set_point=0.3, alpha_min=0.2, alpha_max=0.203)
    assert float(capped.update(0.5)) == pytest.approx(0.203)
    with pytest.raises(ValueError, match="kp"):
        PIDController.morec(set_point=0.3, alpha_min=0.2, kp=1.0)


def test_linear_variant_is_a_named_option():
    c = PIDController.linear(set_point=0.12)
    assert not c.sigmoid_p and (c.kp, c.ki, c.q_min) == (100.0, 2.0, 1.0)
    # e = -0.01: P = 100 * 0.01 = 1, I = 2 * 0.01 = 0.02, q = 1 + 1 + 0.02
    assert float(c.update(0.13)) == pytest.approx(2.02, abs=1e-5)
