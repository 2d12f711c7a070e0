"""M3oE.paper, equation by equation against the official code (Applied-Machine-Learning-Lab/M3oE)."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.datasets import synthetic_domains
from tfmtl.layers import DomainExpertMixing
from tfmtl.models import M3oE, StructureWeightUpdate

TINY = dict(num_experts=2, star_units=[8, 6], expert_units=[4], tower_units=[4])


@pytest.fixture(scope="module")
def frame():
    return synthetic_domains.multidomain_frame(256, num_domains=3, num_tasks=2, seed=0)


def _batch(model, df):
    return next(iter(model.make_dataset(df, batch_size=len(df))))


def test_paper_preset_structure(frame):
    df, spec = frame
    model = M3oE.paper(spec)
    config = model.get_config()
    # fcn_dims [512, 256, 256, 64]: STAR 512, MLP 256, one expert layer 256 -> 64
    assert (config["star_units"], config["expert_units"], config["num_experts"]) == ([512, 256], [64], 4)
    star = model.get_layer("star")
    assert star.activation is keras.activations.linear  # no activation after the STAR layer
    domain_kernels = star.domain_kernel.numpy()  # [D, d_in, 512]
    # Xavier-uniform per domain kernel: U(-l, l), l = sqrt(6 / (d_in + units)), not ones
    limit = np.sqrt(6.0 / (domain_kernels.shape[1] + domain_kernels.shape[2]))
    assert np.abs(domain_kernels).max() <= limit + 1e-6
    assert np.abs(domain_kernels).max() > 0.95 * limit
    np.testing.assert_allclose(domain_kernels.std(), limit / np.sqrt(3), rtol=0.05)
    assert model.get_layer("m3oe").stop_gate_gradient
    assert (config["loss"], config["structure_update_every"], config["structure_batches"]) == \
        ("domain_task", "epoch", "train")
    # tfmtl's variant stays the constructor's default
    default = M3oE(spec, **TINY).get_config()
    assert (default["loss"], default["stop_gate_gradient"], default["star_activation"]) == ("per_task", False, "relu")


def test_gate_input_gradient_is_stopped():
    """d(out)/dx through the gate path is zero: the gradient equals that with the gates held constant."""
    x = tf.random.stateless_normal([5, 6], seed=[1, 2])
    domain = tf.constant([0, 1, 2, 1, 0])
    for stop in (True, False):
        layer = DomainExpertMixing(3, 2, 4, [8], stop_gate_gradient=stop)
        layer([x, domain])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            out = tf.reduce_sum(layer([x, domain]) ** 2)
            experts = layer.experts(x)
            gates = tf.reshape(layer.gates(x), [-1, 3, 2, 4])
            gates = tf.gather(gates, domain, batch_dims=1)
            frozen = tf.reduce_sum(tf.einsum("bte,beu->btu", tf.stop_gradient(gates), experts) ** 2)
        got, experts_only = tape.gradient(out, x).numpy(), tape.gradient(frozen, x).numpy()
        if stop:
            np.testing.assert_allclose(got, experts_only, rtol=1e-5, atol=1e-6)
            # the gates still learn
            grads = tape.gradient(out, layer.gates.trainable_weights)
            assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
        else:
            assert np.max(np.abs(got - experts_only)) > 1e-4
        del tape
    assert DomainExpertMixing.from_config(layer.get_config()).stop_gate_gradient is False


def test_loss_is_the_sum_of_per_domain_task_means(frame):
    df, spec = frame
    model = M3oE.paper(spec, **TINY)
    model.compile()
    x, y = _batch(model, df.head(100))
    y_pred = model(x)
    domain = model.domain_index(x).numpy()
    want = 0.0
    for task in y:
        labels, probs = y[task].numpy().reshape(-1), np.clip(y_pred[task].numpy().reshape(-1), 1e-7, 1 - 1e-7)
        for d in range(3):
            mask = domain == d
            want += np.mean(-(labels[mask] * np.log(probs[mask]) + (1 - labels[mask]) * np.log(1 - probs[mask])))
    got = float(model.compute_loss(x, y, y_pred))
    assert got == pytest.approx(want, rel=1e-4)
    # the domain index is the spec's domain column
    vocabulary = list(spec.feature("domain").vocabulary)
    np.testing.assert_array_equal(domain, [vocabulary.index(v) for v in df.head(100)["domain"]])
    # the per-task variant is the mean over all domains of each task
    per_task = M3oE(spec, **TINY)
    per_task.compile()
    p = per_task(x)
    per_task_want = sum(float(keras.losses.binary_crossentropy(tf.reshape(y[t], [-1, 1]),
                                                                tf.reshape(p[t], [-1, 1])).numpy().mean()) for t in y)
    assert float(per_task.compute_loss(x, y, p)) == pytest.approx(per_task_want, rel=1e-4)


def test_structure_weights_step_once_per_epoch_on_training_batches(frame):
    df, spec = frame
    model = M3oE.paper(spec, **TINY)
    model.compile()
    before = np.array([v.numpy() for v in model.structure_weights])
    model.fit(df, epochs=2, batch_size=64, verbose=0, validation_data=df.head(32))
    callback = model._structure_callback
    assert isinstance(callback, StructureWeightUpdate) and callback.every_n_batches == "epoch"
    assert callback.steps == 2  # 4 batches per epoch, one step per epoch
    assert callback.data is df  # the official code's step uses a training batch
    assert not np.allclose(before, [v.numpy() for v in model.structure_weights])
    with pytest.raises(ValueError, match="every_n_batches"):
        StructureWeightUpdate(df, every_n_batches="weekly")


def test_paper_preset_config_round_trip(frame):
    df, spec = frame
    model = M3oE.paper(spec, **TINY)
    rebuilt = M3oE.from_config(model.get_config())
    assert rebuilt.get_config()["loss"] == "domain_task" and rebuilt.get_layer("m3oe").stop_gate_gradient
    x, _ = _batch(model, df.head(8))
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt(x)["task_0"].numpy(), model(x)["task_0"].numpy(), rtol=1e-5)
