"""Distribution strategy and mixed precision for the Trainer."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.training.sharding import PS_JOB, WORKER_JOB, parameter_server_strategy, serve_task


def choose_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The strategy for ``kind`` (see :class:`pipeline.config.TrainingConfig`).

    ``mirrored`` without GPUs mirrors over the logical CPUs, which is how the
    tests exercise it on a CPU machine split into two logical devices.

    ``parameter_server`` (``auto`` when TF_CONFIG names ``ps`` tasks): on the chief, a
    ``ParameterServerStrategy`` whose large variables (embedding tables) are sharded
    over the ps tasks (:func:`tfmtl.training.sharding.parameter_server_strategy`); on a
    ``worker`` or ``ps`` task it runs that task's server and never returns.
    """
    if kind == "auto":
        if cluster_tasks(PS_JOB):
            kind = "parameter_server"
        elif cluster_workers() > 1:
            kind = "multi_worker"
        elif tf.config.list_logical_devices("GPU"):
            kind = "mirrored"
        else:
            kind = "none"
    if kind == "multi_worker":
        # Reads the cluster and this task's role from TF_CONFIG.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "parameter_server":
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        if resolver.task_type in (WORKER_JOB, PS_JOB):
            serve_task(resolver)  # never returns
        return parameter_server_strategy(resolver)
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if kind == "none":
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown distribution {kind!r}")


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name of ``strategy`` (MultiWorkerMirroredStrategy is a CollectiveAllReduceStrategy inside TF)."""
    for name in ("MultiWorkerMirroredStrategy", "MirroredStrategy", "OneDeviceStrategy", "ParameterServerStrategy"):
        if isinstance(strategy, getattr(tf.distribute, name)):
            return name
    return "default" if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy() else \
        type(strategy).__name__


def cluster_workers() -> int:
    """Chief plus workers named in TF_CONFIG (0 without TF_CONFIG)."""
    return cluster_tasks("chief") + cluster_tasks(WORKER_JOB)


def cluster_tasks(job: str) -> int:
    """The number of ``job`` tasks TF_CONFIG's cluster names (0 without TF_CONFIG)."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return len(cluster.get(job, []))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this task writes the model: always, except non-chief multi-worker tasks."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


@contextlib.contextmanager
def precision_policy(policy: str | None) -> Iterator[None]:
    """Sets Keras' global dtype policy for the block (the Trainer may run in-process, so restore it)."""
    if policy is None:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
