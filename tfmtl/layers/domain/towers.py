"""One tower per (domain, task), routed by the domain id."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain.routing import select_domain, split_domain_inputs
from tfmtl.layers.towers import TaskTowers


@register
class DomainTaskTowers(keras.layers.Layer):
    """One tower per (domain, task); an example's task-t logit comes from its own domain's tower t.

    Args:
      num_domains: D domains.
      num_tasks: T tasks.
      units: hidden widths of each of the ``D * T`` towers.
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Shapes: ``[h, domain int [batch]]`` with ``h`` shared ``[batch, d]`` or per
    task ``[batch, T, d]`` -> logits ``[batch, T]``.

    Example:

    >>> towers = DomainTaskTowers(num_domains=3, num_tasks=2, units=[8])
    >>> towers([tf.ones([4, 2, 5]), tf.constant([0, 1, 2, 0])]).shape.as_list()
    [4, 2]
    """

    def __init__(self, num_domains: int, num_tasks: int, units: Sequence[int] = (), activation: str = "relu",
                 batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_arguments("DomainTaskTowers", counts=dict(num_domains=num_domains, num_tasks=num_tasks),
                        optional_units=dict(units=units), rates=dict(dropout=dropout))
        self.num_domains = int(num_domains)
        self.num_tasks = int(num_tasks)
        self.units = [int(u) for u in units]
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        # Tower g = d * T + t; all D*T run as one grouped einsum, then the own domain is gathered.
        self.towers = TaskTowers(self.num_domains * self.num_tasks, self.units, activation=activation,
                                 batch_norm=batch_norm, dropout=dropout)

    def call(self, inputs, training=None) -> tf.Tensor:
        h, domain = split_domain_inputs(inputs)
        if h.shape.rank == 3:
            h = tf.reshape(tf.tile(h[:, None], [1, self.num_domains, 1, 1]),
                           [-1, self.num_domains * self.num_tasks, h.shape[-1]])
        logits = self.towers(h, training=training)  # [B, D*T]
        return select_domain(tf.reshape(logits, [-1, self.num_domains, self.num_tasks]), domain)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "num_tasks": self.num_tasks,
                "units": self.units, "activation": self.activation, "batch_norm": self.batch_norm,
                "dropout": self.dropout}


__all__ = ["DomainTaskTowers"]
