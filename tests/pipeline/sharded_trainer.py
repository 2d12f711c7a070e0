"""The TFX Trainer's run_fn under distribution="parameter_server" on a local cluster; prints one JSON line.

Run by test_distribution.py in its own process: this process is the chief, and two worker and two ps
tasks are processes started by ``tests.training.sharded_fit.start_cluster``. A census Transform output
(built here with Beam, 400 train and 200 eval rows) feeds ``pipeline.trainer.run_fn`` as the Trainer
executor calls it, with TrainArgs/EvalArgs step counts (required under PSS). Then, with the cluster
gone, the serving SavedModel and the ``.keras`` copy are loaded on this machine and scored on the eval
rows.

Usage: python tests/pipeline/sharded_trainer.py OUT_DIR
"""

import functools
import json
import os
import sys
from unittest import mock

import numpy as np
import tensorflow as tf

from pipeline import distribution, trainer
from pipeline.config import TrainingConfig, trainer_config
from tests.pipeline import conftest
from tests.pipeline.test_trainer import _trainer_predictions
from tests.training.sharded_fit import TEST_MIN_SHARD_BYTES, start_cluster
from tfmtl.datasets import census
from tfmtl.training import sharding

TRAIN_STEPS, EVAL_STEPS = 12, 2


def main(out_dir: str) -> None:
    train, evaluation = conftest.raw_frame("train.csv.gz", 400), conftest.raw_frame("test.csv.gz", 200)
    clean = census.read_census_csv(os.path.join(census.DATA_DIR, "train.csv.gz"), nrows=400)
    spec = census.census_spec(clean, numeric_buckets=3)
    os.makedirs(os.path.join(out_dir, "transform"), exist_ok=True)
    transform = conftest.build_transform_output(os.path.join(out_dir, "transform"), spec, train, evaluation)
    config = trainer_config(spec, TrainingConfig("mmoe", conftest.SMALL_MMOE, batch_size=32,
                                                 distribution="parameter_server", **conftest.SHORT_RUN))
    fn_args = transform.fn_args(config, os.path.join(out_dir, "trainer"), train_steps=TRAIN_STEPS)
    fn_args.eval_steps = EVAL_STEPS
    _, tasks = start_cluster(out_dir)
    try:
        build = functools.partial(sharding.parameter_server_strategy, min_shard_bytes=TEST_MIN_SHARD_BYTES)
        with mock.patch.object(distribution, "parameter_server_strategy", build):
            trainer.run_fn(fn_args)
    finally:
        for task in tasks:
            task.kill()
        for task in tasks:
            task.wait()
    with open(os.path.join(fn_args.model_run_dir, trainer.REPORT_FILE)) as f:
        report = json.load(f)
    keras_copy = _trainer_predictions(fn_args, transform)
    served = tf.saved_model.load(fn_args.serving_model_dir).signatures["serving_default"](
        **{name: tf.constant(values) for name, values in transform.spec.feature_arrays(
            census.read_census_csv(os.path.join(census.DATA_DIR, "test.csv.gz"), nrows=200)).items()})
    print(json.dumps({
        "report": {key: report.get(key) for key in ("strategy", "replicas", "global_batch_size")},
        "tasks": sorted(keras_copy),
        "max_difference": max(float(np.max(np.abs(served[t].numpy() - keras_copy[t]))) for t in keras_copy),
        "prediction_range": [min(float(served[t].numpy().min()) for t in keras_copy),
                             max(float(served[t].numpy().max()) for t in keras_copy)],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
