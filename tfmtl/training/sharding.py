"""Embedding tables bigger than one machine: ``ParameterServerStrategy`` with sharded variables.

Under :func:`parameter_server_strategy` every variable large enough (see
:data:`MIN_SHARD_BYTES`) is created as a ``ShardedVariable``: its rows are split
over the parameter-server tasks, and :class:`tfmtl.layers.FieldEmbedding` gathers
each id from the shard that holds it. The workers run the steps; the coordinator
(the ``chief`` task, the process that calls ``model.fit``) only dispatches them.

A cluster is named by ``TF_CONFIG`` (``cluster`` with ``chief``, ``worker`` and
``ps`` tasks, and this process's ``task``). The ``worker`` and ``ps`` tasks run
:func:`serve_task` and never return; only the chief builds, fits and saves the model.

Example (a 1M-id table at width 16, 64 MB, is split in two on two ps tasks; a
512 x 256 tower kernel, 512 KB, stays whole):

>>> [variable_partitioner(num_ps=2)(tf.TensorShape(shape), tf.float32)[0] for shape in ([1_000_000, 16], [512, 256])]
[2, 1]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn

import numpy as np
import tensorflow as tf

from tfmtl.compat import keras

# A variable of more than 4 MiB is split into ceil(bytes / 4 MiB) shards, at most one per ps task. A shard
# costs one more RPC per step, so sharding pays only for tables: a million ids at width 16 (64 MB) spreads
# over up to 16 ps tasks, while tower and expert kernels (hundreds of units: 512 x 256 floats is 512 KiB)
# stay whole.
MIN_SHARD_BYTES = 4 << 20
PS_JOB, WORKER_JOB, CHIEF_JOB = "ps", "worker", "chief"


def variable_partitioner(num_ps: int, min_shard_bytes: int = MIN_SHARD_BYTES
                         ) -> Callable[[tf.TensorShape, tf.DType], list[int]]:
    """The partitioner of :func:`parameter_server_strategy`: ``ceil(bytes / min_shard_bytes)`` shards, at most
    ``num_ps``, split along the rows (axis 0, the ids of an embedding table)."""
    if num_ps < 1:
        raise ValueError(f"num_ps must be >= 1, got {num_ps}")
    return tf.distribute.experimental.partitioners.MinSizePartitioner(min_shard_bytes=min_shard_bytes,
                                                                      max_shards=num_ps)


def parameter_server_strategy(cluster_resolver: tf.distribute.cluster_resolver.ClusterResolver | None = None,
                              min_shard_bytes: int = MIN_SHARD_BYTES) -> tf.distribute.ParameterServerStrategy:
    """A ``ParameterServerStrategy`` over the cluster of ``cluster_resolver`` (default: ``TF_CONFIG``), with
    variables sharded by :func:`variable_partitioner` over its ps tasks. Call it on the chief only.

    Raises:
      ValueError: the cluster has no ``ps`` or no ``worker`` task.
    """
    if cluster_resolver is None:
        cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = cluster_resolver.cluster_spec().as_dict()
    for job in (PS_JOB, WORKER_JOB):
        if not cluster.get(job):
            raise ValueError(f"a ParameterServerStrategy cluster needs '{job}' tasks; TF_CONFIG's cluster has "
                             f"{sorted(cluster) or 'none'}")
    # Fail an RPC to a lost worker at once (the coordinator then reschedules its step) instead of retrying
    # it inside gRPC; TensorFlow's own recommendation for the coordinator.
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    return tf.distribute.ParameterServerStrategy(
        cluster_resolver, variable_partitioner=variable_partitioner(len(cluster[PS_JOB]), min_shard_bytes))


def serve_task(cluster_resolver: tf.distribute.cluster_resolver.ClusterResolver | None = None) -> NoReturn:
    """Runs this ``worker`` or ``ps`` task's server until the process is killed (what those tasks do: the
    chief sends them the variables and the steps). Never returns.

    Raises:
      ValueError: this task is not a worker or ps task (the chief builds :func:`parameter_server_strategy`).
    """
    if cluster_resolver is None:
        cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if cluster_resolver.task_type not in (WORKER_JOB, PS_JOB):
        raise ValueError(f"serve_task runs '{WORKER_JOB}' and '{PS_JOB}' tasks, this task is "
                         f"{cluster_resolver.task_type!r}")
    server = tf.distribute.Server(cluster_resolver.cluster_spec(), job_name=cluster_resolver.task_type,
                                  task_index=cluster_resolver.task_id,
                                  protocol=cluster_resolver.rpc_layer or "grpc", start=True)
    server.join()  # blocks for good: a TensorFlow server cannot be stopped
    raise RuntimeError(f"the {cluster_resolver.task_type} server stopped")


def unsharded_weights(model: keras.Model) -> list[np.ndarray]:
    """``model.get_weights()`` with every ``ShardedVariable``'s shards joined along the rows.

    Keras lists a sharded variable's shards one by one, so the weights of a model trained
    under :func:`parameter_server_strategy` only fit the same model built without it
    (``plain.set_weights(unsharded_weights(model))``) once joined.
    """
    weights: list[np.ndarray] = []
    container = None  # the ShardedVariable whose shards are being joined
    for variable in model.weights:
        owner = variable._sharded_container() if hasattr(variable, "_sharded_container") else None
        value = variable.numpy()
        if owner is not None and owner is container:
            weights[-1] = np.concatenate([weights[-1], value])
        else:
            weights.append(value)
        container = owner
    return weights


def unsharded_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt from its config with ordinary variables and its weights (shards joined): the copy
    to save and export.

    A model trained under :func:`parameter_server_strategy` does not save for one machine itself: its
    ``.keras`` file holds each shard as a weight of its own ("Layer 'embedding' expected 1 variables, but
    received 2 variables during loading"), and the serving export cannot capture variables that live on
    the ps tasks. Call it outside ``strategy.scope()``, or the copy is sharded again.
    """
    if tf.distribute.has_strategy():
        raise ValueError("unsharded_copy: call it outside strategy.scope(); inside it the copy's variables "
                         "would be sharded again")
    copy = type(model).from_config(model.get_config())
    copy.set_weights(unsharded_weights(model))
    return copy


__all__ = ["MIN_SHARD_BYTES", "parameter_server_strategy", "serve_task", "unsharded_copy", "unsharded_weights",
           "variable_partitioner"]
