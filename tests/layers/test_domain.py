"""Multi-domain layers: shapes for any domain/task count, routing by domain id, the M3oE fusion maths."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.layers import DomainExpertMixing, DomainTaskTowers, M3oEExperts, StarDense
from tfmtl.layers.domain import STRUCTURE_NAMES, select_domain


def _inputs(batch, num_domains, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, dim)), tf.float32)
    domain = tf.constant(np.arange(batch) % num_domains, tf.int64)
    return x, domain


def test_select_domain_gathers_each_examples_slice():
    values = tf.reshape(tf.range(2 * 3 * 2), [2, 3, 2])
    np.testing.assert_array_equal(select_domain(values, tf.constant([2, 0])).numpy(), [[4, 5], [6, 7]])


@pytest.mark.parametrize("num_domains,num_tasks", [(1, 1), (2, 3), (5, 2)])
def test_shapes_for_any_domain_and_task_count(num_domains, num_tasks):
    x, domain = _inputs(7, num_domains)
    assert StarDense(num_domains, 4)([x, domain]).shape == (7, 4)
    mixed, gates = DomainExpertMixing(num_domains, num_tasks, 3, [6])([x, domain], return_gates=True)
    assert mixed.shape == (7, num_tasks, 6) and gates.shape == (7, num_tasks, 3)
    np.testing.assert_allclose(tf.reduce_sum(gates, -1).numpy(), 1.0, atol=1e-6)
    fused = M3oEExperts(num_domains, num_tasks, 3, [6])([x, domain])
    assert fused.shape == (7, num_tasks, 6)
    assert DomainTaskTowers(num_domains, num_tasks, [4])([fused, domain]).shape == (7, num_tasks)


def test_star_dense_routes_by_domain():
    x, domain = _inputs(6, 3)
    layer = StarDense(3, 4)
    layer([x, domain])
    shared, per_domain = layer.shared_kernel.numpy(), layer.domain_kernel.numpy().copy()
    per_domain[1] = np.random.default_rng(1).normal(size=per_domain[1].shape)
    layer.domain_kernel.assign(per_domain)
    out = layer([x, domain]).numpy()
    expected = np.stack([x.numpy()[i] @ (shared * per_domain[int(domain[i])]) for i in range(6)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_domain_expert_mixing_uses_the_examples_domain_gates():
    x, domain = _inputs(6, 3)
    layer = DomainExpertMixing(num_domains=3, num_tasks=2, num_experts=4, expert_units=[5])
    _, gates = layer([x, domain], return_gates=True)
    all_gates = layer.gates(x).numpy().reshape(6, 3, 2, 4)
    np.testing.assert_allclose(gates.numpy(), all_gates[np.arange(6), domain.numpy()], atol=1e-6)


def test_m3oe_fusion_matches_the_formula():
    num_domains, num_tasks = 3, 2
    x, domain = _inputs(6, num_domains)
    layer = M3oEExperts(num_domains, num_tasks, num_experts=2, expert_units=[4], structure_init=0.3)
    fused = layer([x, domain]).numpy()
    values = layer.structure_values()
    assert sorted(values) == sorted(STRUCTURE_NAMES)
    shared = layer.shared([x, domain]).numpy()
    dom = layer.domain_experts(x).numpy()
    task = layer.task_experts(x).numpy()
    d = domain.numpy()
    own = dom[np.arange(6), d]
    others = (dom.sum(1) - own) / (num_domains - 1)
    domain_mix = values["bal_d"] * own + (1 - values["bal_d"]) * others
    task_mix = values["bal_t"] * task + (1 - values["bal_t"]) * (task.sum(1, keepdims=True) - task) / (num_tasks - 1)
    expected = shared + values["exp_d"] * domain_mix[:, None] + values["exp_t"] * task_mix
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-5)


def test_structure_weights_trainable_flag():
    x, domain = _inputs(4, 2)
    frozen = M3oEExperts(2, 2, 2, [4], structure_trainable=False)
    frozen([x, domain])
    assert len(frozen.structure_weights) == 4
    assert not any(v.trainable for v in frozen.structure_weights)
    assert all(v.ref() not in {w.ref() for w in frozen.trainable_weights} for v in frozen.structure_weights)
    joint = M3oEExperts(2, 2, 2, [4], structure_trainable=True)
    joint([x, domain])
    assert {v.ref() for v in joint.structure_weights} <= {w.ref() for w in joint.trainable_weights}


def test_domain_task_towers_route_by_domain():
    x, domain = _inputs(6, 3)
    towers = DomainTaskTowers(num_domains=3, num_tasks=2, units=[4])
    before = towers([x, domain]).numpy()
    # Change only domain 1's towers (groups d * T + t = 2, 3): only domain-1 rows may change.
    for weight in towers.towers.logit.weights:
        if weight.shape.rank >= 1 and weight.shape[0] == 6:
            value = weight.numpy()
            value[2:4] += 1.0
            weight.assign(value)
    after = towers([x, domain]).numpy()
    changed = np.any(np.abs(after - before) > 1e-6, axis=1)
    np.testing.assert_array_equal(changed, domain.numpy() == 1)


@pytest.mark.parametrize("cls,args", [
    (StarDense, dict(num_domains=3, units=4, activation="relu")),
    (DomainExpertMixing, dict(num_domains=3, num_tasks=2, num_experts=2, expert_units=[4])),
    (M3oEExperts, dict(num_domains=3, num_tasks=2, num_experts=2, expert_units=[4], structure_trainable=False)),
    (DomainTaskTowers, dict(num_domains=3, num_tasks=2, units=[4])),
])
def test_config_round_trip(cls, args):
    x, domain = _inputs(5, 3)
    layer = cls(**args)
    out = layer([x, domain])
    clone = cls.from_config(layer.get_config())
    clone([x, domain])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone([x, domain]).numpy(), out.numpy(), atol=1e-6)
    assert keras.saving.get_registered_name(cls) == f"tfmtl>{cls.__name__}"
