"""Embedding tables sharded over parameter servers (tfmtl.training.sharding).

The cluster test trains the Trainer's census MMoE under ParameterServerStrategy on a local
cluster (chief, 2 workers, 2 ps; sharded_fit.py, in processes of its own: this one hosts no
server) and loads what it saved here, without a cluster. The fast tests need no cluster: the
partitioner rule, the errors, and a model whose variables a creator scope splits in two shards.
"""

import contextlib
import doctest
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.distribute.sharded_variable import ShardedVariable

from tfmtl.compat import keras
from tfmtl.datasets import synthetic
from tfmtl.models import MMoE
from tfmtl.training import sharding

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MIB = 1 << 20


# ----------------------------------------------------------------------------- the partitioner rule
@pytest.mark.parametrize("shape, num_ps, shards", [
    ((1_000_000, 16), 2, 2),      # 64 MB: one shard per ps task
    ((1_000_000, 16), 32, 16),    # ceil(64,000,000 B / 4 MiB) = ceil(15.3) shards, fewer than the 32 ps tasks
    ((512, 256), 4, 1),           # a 512 KiB tower kernel stays whole
    ((MIB // 2, 2), 4, 1),        # 4 MiB exactly: whole
    ((MIB // 2 + 1, 2), 4, 2),    # one row (8 B) more: two shards
])
def test_partitioner_splits_variables_over_4_mib_into_4_mib_shards(shape, num_ps, shards):
    assert sharding.MIN_SHARD_BYTES == 4 * MIB
    assert sharding.variable_partitioner(num_ps)(tf.TensorShape(shape), tf.float32) == [shards, 1]


def test_the_docstring_example_runs():
    result = doctest.testmod(sharding)
    assert result.attempted > 0 and result.failed == 0


def test_partitioner_needs_a_ps_task():
    with pytest.raises(ValueError, match="num_ps must be >= 1, got 0"):
        sharding.variable_partitioner(0)


def test_strategy_needs_ps_and_worker_tasks():
    cluster = tf.train.ClusterSpec({"chief": ["localhost:1"], "worker": ["localhost:2"]})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, task_type="chief", task_id=0)
    with pytest.raises(ValueError, match="needs 'ps' tasks; TF_CONFIG's cluster has \\['chief', 'worker'\\]"):
        sharding.parameter_server_strategy(resolver)


def test_only_worker_and_ps_tasks_serve():
    cluster = tf.train.ClusterSpec({"chief": ["localhost:1"], "worker": ["localhost:2"], "ps": ["localhost:3"]})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, task_type="chief", task_id=0)
    with pytest.raises(ValueError, match="serve_task runs 'worker' and 'ps' tasks, this task is 'chief'"):
        sharding.serve_task(resolver)


# ------------------------------------------------- sharded variables without a cluster
@contextlib.contextmanager
def two_shards(min_rows: int):
    """Creates every 2-D variable of ``min_rows`` rows or more as a ShardedVariable of two shards,
    the first one the larger, as ParameterServerStrategy's partitioners split rows."""
    def creator(next_creator, **kwargs):
        shape = kwargs.get("shape")
        if shape is None or len(shape) != 2 or shape[0] < min_rows:
            return next_creator(**kwargs)
        value = kwargs["initial_value"]
        value = tf.convert_to_tensor(value() if callable(value) else value)
        first = (int(shape[0]) + 1) // 2
        return ShardedVariable([next_creator(**{**kwargs, "initial_value": part, "shape": part.shape,
                                                "name": f"{kwargs['name']}/part_{i}"})
                                for i, part in enumerate((value[:first], value[first:]))])

    with tf.variable_creator_scope(creator):
        yield


def test_unsharded_copy_predicts_as_the_sharded_model_and_saves_for_one_machine(tmp_path):
    df, spec = synthetic.multitask_frame(200, seed=0)
    assert sum(spec.field_sizes) == 11  # the packed table: 6 + 5 rows
    with two_shards(min_rows=10):
        model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
        model.compile()
    table = model.get_layer("embedding").embeddings
    assert isinstance(table, ShardedVariable) and [v.shape[0] for v in table.variables] == [6, 5]
    model.fit(df, epochs=1, batch_size=50, verbose=0)

    copy = sharding.unsharded_copy(model)
    sharded = [v for v in model.weights if hasattr(v, "_sharded_container")]
    # Each two-shard variable is one weight of the copy.
    assert len(copy.weights) == len(model.weights) - len(sharded) // 2
    np.testing.assert_array_equal(copy.get_layer("embedding").embeddings.numpy(),
                                  np.concatenate([v.numpy() for v in table.variables]))
    expected = model.predict(df.head(8), verbose=0)
    for task, value in copy.predict(df.head(8), verbose=0).items():
        np.testing.assert_allclose(value, expected[task], atol=1e-6)
    # The sharded model's own .keras file holds each shard as a weight; the copy's loads anywhere.
    copy.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    for task, value in loaded.predict(df.head(8), verbose=0).items():
        np.testing.assert_allclose(value, expected[task], atol=1e-6)


def test_unsharded_weights_of_an_unsharded_model_are_its_weights():
    _, spec = synthetic.multitask_frame(50, seed=0)
    model = MMoE(spec, num_experts=1, expert_units=[4], tower_units=[2])
    for joined, weight in zip(sharding.unsharded_weights(model), model.get_weights(), strict=True):
        np.testing.assert_array_equal(joined, weight)


def test_unsharded_copy_refuses_a_strategy_scope():
    _, spec = synthetic.multitask_frame(50, seed=0)
    model = MMoE(spec, num_experts=1, expert_units=[4], tower_units=[2])
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        with pytest.raises(ValueError, match="call it outside strategy.scope"):
            sharding.unsharded_copy(model)


# ------------------------------------------------------------------- the local cluster
@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "sharded_fit.py"), str(out)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_census_mmoe_trains_with_its_table_sharded_over_two_ps_tasks(cluster_run):
    from tfmtl.datasets.census import load_census

    out, result = cluster_run
    assert result["strategy"] == "ParameterServerStrategy"  # choose_strategy("auto") with ps tasks in TF_CONFIG
    spec = load_census(nrows=400).spec
    table = result["table"]
    assert table["type"] == "ShardedVariable" and table["shape"] == [sum(spec.field_sizes), spec.embedding_dim]
    assert [s["shape"][0] for s in table["shards"]] == [table["shape"][0] // 2] * 2
    assert [s["device"] for s in table["shards"]] == [f"/job:ps/replica:0/task:{i}/device:CPU:0" for i in (0, 1)]
    # Every sharded variable (the table, and here the kernels over 2 KiB too) is two shards in the
    # model and one weight in its unsharded copy.
    assert "embedding/embeddings" in result["sharded_variables"]
    assert result["weights"]["plain_copy"] == result["weights"]["sharded_model"] - len(result["sharded_variables"])

    # It learned: the loss on all 400 train rows fell, the table moved, the convergence callbacks ran.
    assert result["train_loss"]["after"] < 0.9 * result["train_loss"]["before"]
    assert result["table_change"] > 1e-3
    report = result["report"]
    assert report["epochs_run"] == 3 and 1 <= report["best_epoch"] <= 3
    assert report["history"]["loss"][-1] < report["history"]["loss"][0]
    assert set(report["validation"]) >= {"income_50k_auc", "never_married_auc"}

    # Saved from the unsharded copy, loaded here without a cluster: the in-cluster predictions.
    expected = {task: np.array(values) for task, values in result["in_cluster"].items()}
    for task, values in result["plain_copy"].items():
        np.testing.assert_allclose(values, expected[task], atol=1e-5)
    probe = dict(np.load(out / "probe.npz"))
    served = tf.saved_model.load(result["serving"]).signatures["serving_default"](
        **{name: tf.constant(value) for name, value in probe.items()})
    loaded = keras.models.load_model(out / "model.keras")
    rows = load_census(nrows=400).test.head(len(expected["income_50k"]))
    predicted = loaded.predict(rows, verbose=0)
    for task in expected:
        np.testing.assert_allclose(served[task].numpy().ravel(), expected[task], atol=1e-5)
        np.testing.assert_allclose(predicted[task].ravel(), expected[task], atol=1e-5)
