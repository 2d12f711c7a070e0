"""A census MMoE trained under ParameterServerStrategy on a local cluster; prints one JSON line.

Run by test_sharded_tables.py in its own process, the chief (coordinator) of a cluster whose two
worker and two ps tasks are more processes started here, each running
``choose_strategy("parameter_server")`` with its own TF_CONFIG (what a Trainer replica does).
The model is the Trainer's (``TrainingRun.build`` and ``TrainingRun.fit``, convergence callbacks and
weight averaging included). Writes its unsharded copy's ``.keras`` file and tfmtl serving export, and the
probe rows, under ``argv[1]`` for the test to load without a cluster.

Usage: python tests/training/sharded_fit.py OUT_DIR
"""

import functools
import json
import os
import socket
import subprocess
import sys
from unittest import mock

import numpy as np

from pipeline import distribution
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.datasets.census import load_census
from tfmtl.training import TrainingRun, sharding

ROWS = 400
TASKS = ["income_50k", "never_married"]
BATCH = 64
EPOCHS, STEPS, VALIDATION_STEPS = 3, 5, 2
PROBE_ROWS = 8
# The census slice's packed table is ~400 ids x 4 floats (6 KB): shards of 1 KiB split it (and the expert
# and cross kernels) over both ps tasks, as MIN_SHARD_BYTES splits a table of millions of ids.
TEST_MIN_SHARD_BYTES = 1 << 10
SERVE_TASK = "from pipeline.distribution import choose_strategy; choose_strategy('parameter_server')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_cluster(log_dir: str) -> tuple[dict, list[subprocess.Popen]]:
    cluster = {job: [f"localhost:{free_port()}" for _ in range(count)]
               for job, count in (("chief", 1), ("worker", 2), ("ps", 2))}
    tasks = []
    for job in ("ps", "worker"):
        for index in range(len(cluster[job])):
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})}
            with open(os.path.join(log_dir, f"{job}{index}.log"), "wb") as log:
                tasks.append(subprocess.Popen([sys.executable, "-c", SERVE_TASK], env=env, stdout=log,
                                              stderr=subprocess.STDOUT))
    os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    return cluster, tasks


def bce(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))


def train_loss(model, features, labels) -> float:
    outputs = model(features, training=False)
    return float(np.mean([bce(labels[task].numpy(), outputs[task].numpy()) for task in TASKS]))


def main(out_dir: str) -> None:
    splits = load_census(nrows=ROWS)
    run = TrainingRun("mmoe", model_kwargs={"num_experts": 2, "expert_units": [8], "tower_units": [4]}, tasks=TASKS,
                      epochs=EPOCHS, patience=2, batch_size=BATCH, seed=0)  # the Trainer's convergence callbacks
    _, tasks = start_cluster(out_dir)
    try:
        build = functools.partial(sharding.parameter_server_strategy, min_shard_bytes=TEST_MIN_SHARD_BYTES)
        with mock.patch.object(distribution, "parameter_server_strategy", build):
            strategy = distribution.choose_strategy("auto")  # TF_CONFIG names ps tasks
        with strategy.scope():
            model = run.build(splits.spec)
        table = model.get_layer("embedding").embeddings
        sharded = sorted({v.name.split("/part_")[0] for v in model.weights if hasattr(v, "_sharded_container")})

        features, labels = next(iter(model.make_dataset(splits.train, batch_size=ROWS)))
        probe = next(iter(model.make_dataset(splits.test.head(PROBE_ROWS), with_labels=False,
                                             batch_size=PROBE_ROWS)))
        table_before = np.concatenate([v.numpy() for v in table.variables])
        loss_before = train_loss(model, features, labels)
        # Under ParameterServerStrategy fit takes datasets made on each worker, and step counts.
        train = keras.utils.experimental.DatasetCreator(
            lambda context: model.make_dataset(splits.train, batch_size=BATCH, shuffle=True, seed=0).repeat())
        validation = keras.utils.experimental.DatasetCreator(
            lambda context: model.make_dataset(splits.validation, batch_size=BATCH).repeat())
        report = run.fit(model, train, validation, steps_per_epoch=STEPS, validation_steps=VALIDATION_STEPS,
                         verbose=0)
        table_after = np.concatenate([v.numpy() for v in table.variables])
        loss_after = train_loss(model, features, labels)
        in_cluster = {task: value.numpy()[:, 0].tolist() for task, value in model(probe, training=False).items()}
        # Outside strategy.scope(): a copy with ordinary variables on this machine, the weights read from the ps.
        plain = sharding.unsharded_copy(model)
    finally:
        for task in tasks:
            task.kill()
        for task in tasks:
            task.wait()
    # The cluster is gone: the copy predicts, saves and exports on this machine alone.
    plain_probe = {task: value.numpy()[:, 0].tolist() for task, value in plain(probe, training=False).items()}
    plain.save(os.path.join(out_dir, "model.keras"))
    exported = export.save_signatures(plain, os.path.join(out_dir, "serving"), warmup=False)
    # The probe rows' raw features, strings as unicode arrays (npz stores object arrays only pickled).
    raw = splits.spec.feature_arrays(splits.test.head(PROBE_ROWS))
    np.savez(os.path.join(out_dir, "probe.npz"),
             **{name: value.astype(str) if value.dtype == object else value for name, value in raw.items()})
    print(json.dumps({
        "strategy": distribution.strategy_name(strategy),
        "table": {"type": type(table).__name__, "shape": table.shape.as_list(),
                  "shards": [{"shape": v.shape.as_list(), "device": v.device} for v in table.variables]},
        "sharded_variables": sharded,
        "weights": {"sharded_model": len(model.weights), "plain_copy": len(plain.weights)},
        "report": report.to_dict(),
        "train_loss": {"before": loss_before, "after": loss_after},
        "table_change": float(np.max(np.abs(table_after - table_before))),
        "in_cluster": in_cluster,
        "plain_copy": plain_probe,
        "serving": exported,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
