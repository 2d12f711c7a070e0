"""M3oE and STAR: outputs for any domain/task count, routing by domain id, structure-weight modes, .keras round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.datasets import synthetic_domains
from tfmtl.models import STAR, M3oE, MMoE, build_model
from tfmtl.training import StructureWeightUpdate

SMALL = dict(num_experts=2, star_units=[8], expert_units=[8], tower_units=[4])


@pytest.fixture(scope="module")
def frame():
    return synthetic_domains.multidomain_frame(512, num_domains=3, num_tasks=2, seed=0)


def _predict(model, df, output):
    """Eager predictions of one output (one batch; no predict-function tracing)."""
    x = next(iter(model.make_dataset(df, with_labels=False, batch_size=len(df))))
    return model(x)[output].numpy()[:, 0]


def _structure(model):
    return np.array([v.numpy() for v in model.structure_weights])


def _main_weights(model):
    structure = {v.ref() for v in model.structure_weights}
    return [w.numpy().copy() for w in model.weights if w.ref() not in structure]


@pytest.mark.parametrize("num_domains,num_tasks", [(1, 1), (4, 3)])
def test_outputs_for_any_domain_and_task_count(num_domains, num_tasks):
    df, spec = synthetic_domains.multidomain_frame(64, num_domains=num_domains, num_tasks=num_tasks, seed=1)
    model = M3oE(spec, **SMALL)
    assert model.output_names == [f"task_{t}" for t in range(num_tasks)]
    assert all(_predict(model, df, name).shape == (64,) for name in model.output_names)


def test_routing_by_domain_id(frame):
    df, spec = frame
    model = M3oE(spec, **SMALL)
    rows = df.head(60).reset_index(drop=True)
    before = _predict(model, rows, "task_0")
    # Perturb only domain 1's (domain, task) towers: only domain-1 rows may move.
    logit = model.get_layer("towers").towers.logit
    bias = logit.bias.numpy()
    bias[2:4] += 2.0  # groups d * T + t for d = 1
    logit.bias.assign(bias)
    after = _predict(model, rows, "task_0")
    np.testing.assert_array_equal(np.abs(after - before) > 1e-6, rows["domain"].to_numpy() == 1)
    # Same features, another domain id: another prediction.
    moved = rows.assign(domain=(rows["domain"] + 1) % 3)
    assert np.abs(_predict(model, moved, "task_0") - after).max() > 1e-4


def _eager_step(model, df):
    """One main-optimizer step, eagerly (no tf.function tracing: keeps the test fast)."""
    x, y = next(iter(model.make_dataset(df.head(128))))
    with tf.GradientTape() as tape:
        predictions = model(x, training=True)
        loss = tf.add_n([tf.reduce_mean(keras.losses.binary_crossentropy(y[k], predictions[k])) for k in y])
    model.optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


@pytest.mark.parametrize("mode,changes", [("off", False), ("joint", True), ("bilevel", False)])
def test_main_optimizer_moves_structure_weights_only_when_joint(frame, mode, changes):
    df, spec = frame
    model = M3oE(spec, structure_update=mode, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    trainable = {v.ref() for v in model.trainable_variables}
    assert all((v.ref() in trainable) == changes for v in model.structure_weights)
    structure, main = _structure(model), _main_weights(model)
    _eager_step(model, df)
    assert (np.abs(_structure(model) - structure).max() > 1e-6) == changes
    assert any(np.abs(a - b).max() > 0 for a, b in zip(_main_weights(model), main))


def test_bilevel_step_moves_only_structure_weights(frame):
    df, spec = frame
    model = M3oE(spec, structure_update="bilevel", **SMALL)
    step = StructureWeightUpdate(df.tail(128), learning_rate=0.1, every_n_batches=2)
    step.set_model(model)
    step.on_train_begin()
    structure, main = _structure(model), _main_weights(model)
    for batch in range(6):
        step.on_train_batch_end(batch)
    assert step.steps == 3
    assert np.abs(_structure(model) - structure).max() > 1e-3
    for a, b in zip(_main_weights(model), main):
        np.testing.assert_array_equal(a, b)


def test_fit_adds_the_bilevel_step(frame):
    df, spec = frame
    model = M3oE(spec, structure_update="bilevel", structure_update_every=1, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(0.05), metrics={}, run_eagerly=True)  # eager: no tracing cost
    structure = _structure(model)
    validation = df.tail(128)
    model.fit(df, epochs=1, batch_size=128, verbose=0, structure_data=validation)
    assert np.abs(_structure(model) - structure).max() > 0
    # Fitting epoch by epoch on the same data keeps one step (its optimizer state, its traced function).
    step = model._structure_callback
    model.fit(df, epochs=1, batch_size=128, verbose=0, structure_data=validation)
    assert model._structure_callback is step and step.steps == 8


def test_gate_weights_sum_to_one(frame):
    df, spec = frame
    model = M3oE(spec, **SMALL)
    gates = model.gate_weights(df.head(20))
    assert gates.shape == (20, 2, 2)
    np.testing.assert_allclose(gates.sum(-1), 1.0, atol=1e-5)


def test_domain_feature_must_have_a_vocabulary(frame):
    df, spec = frame
    with pytest.raises(ValueError, match="not a feature|not in the spec"):
        M3oE(spec, domain_feature="region", **SMALL)
    with pytest.raises(ValueError, match="categorical with a vocabulary"):
        M3oE(spec, domain_feature="x1", **SMALL)
    with pytest.raises(ValueError, match="structure_update"):
        M3oE(spec, structure_update="sometimes", **SMALL)


@pytest.mark.parametrize("name,kwargs", [
    ("m3oe", dict(SMALL, structure_update="joint")),
    ("star", dict(star_units=[8], aux_units=[4])),
])
def test_keras_round_trip_gives_identical_predictions(frame, tmp_path, name, kwargs):
    df, spec = frame
    model = build_model(name, spec, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    _eager_step(model, df)  # move the weights away from their initial values
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    x = next(iter(model.make_dataset(df.head(64), with_labels=False)))
    expected, actual = model(x), loaded(x)
    for output in model.output_names:
        np.testing.assert_array_equal(actual[output].numpy(), expected[output].numpy())
    if name == "m3oe":
        assert loaded.structure_values() == model.structure_values()


def test_star_routes_by_domain_and_domain_as_feature_baseline(frame):
    df, spec = frame
    star = STAR(spec, star_units=[8], aux_units=None)
    rows = df.head(30).reset_index(drop=True)
    before = _predict(star, rows, "task_1")
    layer = star.get_layer("star_logits")
    layer.domain_bias.assign(layer.domain_bias + tf.constant([[0.0, 0.0], [0.0, 0.0], [0.0, 3.0]]))
    after = _predict(star, rows, "task_1")
    np.testing.assert_array_equal(np.abs(after - before) > 1e-6, rows["domain"].to_numpy() == 2)
    # MMoE with the domain as one more embedded feature: the multi-domain baseline needs no new code.
    assert "domain" in MMoE(spec, num_experts=2, expert_units=[4], tower_units=[2]).input_names
