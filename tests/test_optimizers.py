"""tfmtl.optimizers.Adam: the fused update against Keras' Adam and a hand calculation."""

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.models import MMoE
from tfmtl.optimizers import Adam

HERE = os.path.dirname(os.path.abspath(__file__))


def test_first_steps_match_a_hand_calculation():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    var = tf.Variable([1.0, -2.0, 3.0])
    opt = Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    g1, g2 = np.array([0.5, -0.25, 0.0]), np.array([-1.0, 0.5, 2.0])
    with mock.patch.object(tf.raw_ops, "ResourceApplyAdam", wraps=tf.raw_ops.ResourceApplyAdam) as fused:
        opt.apply_gradients([(tf.constant(g1, tf.float32), var)])
        opt.apply_gradients([(tf.constant(g2, tf.float32), var)])
    assert fused.call_count == 2  # the dense update really runs the fused kernel
    # By hand: m_t, v_t as exponential averages; step lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    expected, m, v = np.array([1.0, -2.0, 3.0]), 0.0, 0.0
    for t, g in enumerate((g1, g2), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = expected - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == 2


def _train(multitask_data, optimizer, steps=6):
    df, spec = multitask_data
    keras.utils.set_random_seed(3)
    model = MMoE(spec, num_experts=3, expert_units=[16, 8], tower_units=[4])
    model.compile(optimizer=optimizer, metrics=[])
    model.fit(model.make_dataset(df, batch_size=64).take(steps), epochs=1, verbose=0)
    return model


def test_training_matches_keras_adam_on_dense_and_embedding_weights(multitask_data):
    ours = _train(multitask_data, Adam(0.01))
    reference = _train(multitask_data, keras.optimizers.Adam(0.01))
    assert [v.shape for v in ours.trainable_variables] == [v.shape for v in reference.trainable_variables]
    for a, b in zip(ours.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.name)
    # The embedding table's gradient is sparse (IndexedSlices), which takes Keras' own update.
    assert any("embedding" in v.name for v in ours.trainable_variables)


@pytest.mark.parametrize("optimizer", [None, "adam", "Adam"])
def test_compile_defaults_to_the_fused_adam(multitask_data, optimizer):
    df, spec = multitask_data
    model = MMoE(spec, num_experts=2, expert_units=[4], tower_units=[2])
    model.compile() if optimizer is None else model.compile(optimizer=optimizer)
    assert type(model.optimizer) is Adam


def test_compile_keeps_an_explicit_optimizer(multitask_data):
    df, spec = multitask_data
    model = MMoE(spec, num_experts=2, expert_units=[4], tower_units=[2])
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    assert type(model.optimizer) is keras.optimizers.SGD


def test_keras_file_round_trip_keeps_optimizer_state(multitask_data, tmp_path):
    df, _ = multitask_data
    model = _train(multitask_data, Adam(0.01), steps=3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is Adam
    assert int(loaded.optimizer.iterations) == 3
    # One more identical step from both: same slots and weights after.
    batch = next(iter(model.make_dataset(df, batch_size=64)))
    model.train_on_batch(*batch)
    loaded.train_on_batch(*batch)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)


def test_mixed_precision_loss_scaling_wraps_the_fused_update(multitask_data):
    df, spec = multitask_data
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
        model.compile(optimizer=keras.mixed_precision.LossScaleOptimizer(Adam(0.01)), metrics=[])
        before = [v.numpy() for v in model.trainable_variables]
        history = model.fit(model.make_dataset(df, batch_size=64).take(3), epochs=1, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history["loss"][0])
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert max(float(np.max(np.abs(v.numpy() - b))) for v, b in zip(model.trainable_variables, before)) > 0


def test_mirrored_strategy_matches_one_device():
    """2 logical CPUs (own process): fused and Keras Adam give the same weights after the same steps."""
    proc = subprocess.run([sys.executable, os.path.join(HERE, "optimizers_mirrored.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = float(proc.stdout.strip().splitlines()[-1])
    assert diff < 1e-5
