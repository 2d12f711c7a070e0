"""Shared experts mixed by one softmax gate per (domain, task)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain.routing import select_domain, split_domain_inputs
from tfmtl.layers.experts import ExpertGates
from tfmtl.layers.grouped import GroupedMLP


@register
class DomainExpertMixing(keras.layers.Layer):
    """Shared experts mixed by one softmax gate per (domain, task) pair; an example uses its domain's gates.

    Args:
      num_domains: D domains.
      num_tasks: T tasks.
      num_experts: E shared expert MLPs.
      expert_units: hidden widths of each expert; ``U = expert_units[-1]``.
      gate_units: hidden widths of each gating MLP (``()``: linear softmax gates).
      stop_gate_gradient: the gates read ``stop_gradient(x)`` (M3oE's official code,
        ``gate(emb.detach())``): the gates learn, but send no gradient into ``x``.

    Shapes: ``[x [batch, d], domain int [batch]]`` -> ``[batch, T, U]``; with
    ``return_gates=True`` also the gates ``[batch, T, E]`` (rows sum to 1).

    Example:

    >>> mixing = DomainExpertMixing(num_domains=3, num_tasks=2, num_experts=4, expert_units=[8])
    >>> mixing([tf.ones([5, 6]), tf.constant([0, 1, 2, 1, 0])]).shape.as_list()
    [5, 2, 8]
    """

    def __init__(self, num_domains: int, num_tasks: int, num_experts: int, expert_units: Sequence[int],
                 gate_units: Sequence[int] = (), activation: str = "relu", batch_norm: bool = False,
                 dropout: float = 0.0, stop_gate_gradient: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_arguments("DomainExpertMixing",
                        counts=dict(num_domains=num_domains, num_tasks=num_tasks, num_experts=num_experts),
                        units=dict(expert_units=expert_units), optional_units=dict(gate_units=gate_units),
                        rates=dict(dropout=dropout))
        self.stop_gate_gradient = bool(stop_gate_gradient)
        self.num_domains = int(num_domains)
        self.num_tasks = int(num_tasks)
        self.num_experts = int(num_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.gate_units = [int(u) for u in gate_units]
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        self.experts = GroupedMLP(self.num_experts, self.expert_units, activation=activation, batch_norm=batch_norm,
                                  dropout=dropout)
        self.gates = ExpertGates(self.num_domains * self.num_tasks, self.num_experts, self.gate_units,
                                 activation=activation)

    def call(self, inputs, training=None, return_gates: bool = False):
        x, domain = split_domain_inputs(inputs)
        experts = self.experts(x, training=training)  # [B, E, U]
        gate_input = tf.stop_gradient(x) if self.stop_gate_gradient else x
        gates = self.gates(gate_input, training=training)  # [B, D*T, E]
        gates = select_domain(tf.reshape(gates, [-1, self.num_domains, self.num_tasks, self.num_experts]), domain)
        mixed = tf.einsum("bte,beu->btu", gates, experts)
        return (mixed, gates) if return_gates else mixed

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "num_tasks": self.num_tasks,
                "num_experts": self.num_experts, "expert_units": self.expert_units, "gate_units": self.gate_units,
                "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout,
                "stop_gate_gradient": self.stop_gate_gradient}


__all__ = ["DomainExpertMixing"]
