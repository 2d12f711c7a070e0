import numpy as np
import pytest
import tensorflow as tf

from tfmtl.training.domain_loss import domain_task_bce


def bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_sum_of_per_domain_task_means_by_hand():
    # 5 examples, 2 domains (3 + 2 examples, as a big and a small domain), 2 tasks
    domain = np.array([0, 0, 0, 1, 1])
    y = {"like": np.array([1, 0, 1, 0, 1], "float32"), "love": np.array([0, 0, 1, 1, 0], "float32")}
    p = {"like": np.array([0.9, 0.2, 0.6, 0.3, 0.8], "float32"), "love": np.array([0.1, 0.4, 0.7, 0.5, 0.2],
                                                                                    "float32")}
    want = 0.0
    for t in y:
        for d in (0, 1):
            want += bce(y[t][domain == d], p[t][domain == d]).mean()
    got = float(domain_task_bce({t: tf.constant(v) for t, v in y.items()}, {t: tf.constant(v) for t, v in p.items()},
                                tf.constant(domain), 2))
    assert got == pytest.approx(want, rel=1e-5)
    # it is not the per-task mean over all examples (which weighs the big domain 3:2)
    per_task_mean = sum(bce(y[t], p[t]).mean() for t in y)
    assert abs(got - per_task_mean) > 0.3


def test_small_domain_weighs_as_much_as_a_big_one_and_empty_domains_count_zero():
    # domain 0: 4 examples each with loss ln 2; domain 1: 1 example with loss -ln 0.9; domain 2: empty
    y = {"t": tf.constant([1.0, 0.0, 1.0, 0.0, 1.0])}
    p = {"t": tf.constant([0.5, 0.5, 0.5, 0.5, 0.9])}
    got = float(domain_task_bce(y, p, tf.constant([0, 0, 0, 0, 1]), 3))
    assert got == pytest.approx(np.log(2) + -np.log(0.9), rel=1e-5)
    # gradients reach every prediction, the single example of the small domain with weight 1 / 1
    probs = tf.Variable([0.5, 0.5, 0.5, 0.5, 0.9])
    with tf.GradientTape() as tape:
        loss = domain_task_bce(y, {"t": probs}, tf.constant([0, 0, 0, 0, 1]), 3)
    grad = tape.gradient(loss, probs).numpy()
    np.testing.assert_allclose(grad, [-0.5, 0.5, -0.5, 0.5, -1 / 0.9], rtol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="no prediction"):
        domain_task_bce({"a": tf.ones([2])}, {"b": tf.ones([2])}, tf.zeros([2], tf.int32), 1)
    with pytest.raises(ValueError, match="num_domains"):
        domain_task_bce({"a": tf.ones([2])}, {"a": tf.ones([2])}, tf.zeros([2], tf.int32), 0)
