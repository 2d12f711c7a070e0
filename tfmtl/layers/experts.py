"""Mixture of experts with per-task gates (MMoE).

Each task k mixes the E expert outputs with its own gate:
``h_k = sum_e g_k(x)_e * f_e(x)``, ``g_k(x) = softmax(MLP_k(x))``. A gate with
no hidden layer is the paper's linear softmax gate; hidden layers give the
gating MLP of depth ``len(gate_units) + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.grouped import GroupedDense, GroupedMLP


@register
class ExpertGates(keras.layers.Layer):
    """``num_gates`` softmax gates over ``num_experts`` experts.

    Args:
      num_gates: G gates (>= 1).
      num_experts: E experts each gate weighs (>= 1).
      hidden_units: hidden widths of each gating MLP (``()``: a linear softmax gate).
      activation: hidden-layer activation.

    Shapes: ``[batch, d]`` (one input for every gate) or ``[batch, num_gates,
    d]`` -> ``[batch, num_gates, num_experts]``, each row summing to 1.

    Example:

    >>> g = ExpertGates(num_gates=2, num_experts=4, hidden_units=[8])(tf.ones([3, 5]))
    >>> g.shape.as_list(), bool(tf.reduce_all(tf.abs(tf.reduce_sum(g, -1) - 1) < 1e-6))
    ([3, 2, 4], True)
    """

    def __init__(self, num_gates: int, num_experts: int, hidden_units: Sequence[int] = (),
                 activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        check_arguments("ExpertGates", counts=dict(num_gates=num_gates, num_experts=num_experts),
                        optional_units=dict(hidden_units=hidden_units))
        self.num_gates = int(num_gates)
        self.num_experts = int(num_experts)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.hidden = (GroupedMLP(self.num_gates, self.hidden_units, activation=activation)
                       if self.hidden_units else None)
        self.logits = GroupedDense(self.num_gates, self.num_experts)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        x = self.hidden(inputs, training=training) if self.hidden is not None else inputs
        return tf.nn.softmax(self.logits(x), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_gates": self.num_gates, "num_experts": self.num_experts,
                "hidden_units": self.hidden_units, "activation": self.activation}


def mix_experts(gates: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """Gate-weighted sums: gates ``[batch, T, E]``, experts ``[batch, E, U]`` -> ``[batch, T, U]``."""
    return tf.einsum("bte,beu->btu", gates, experts)


@register
class MixtureOfExperts(keras.layers.Layer):
    """MMoE: shared experts, one gate per task.

    Args:
      num_experts: E expert MLPs.
      expert_units: hidden widths of each expert, e.g. ``(512, 256)``.
      num_tasks: T gates, one per task.
      gate_units: hidden widths of each gating MLP (``()`` = linear softmax gate).

    Shapes: ``[batch, d]`` -> ``[batch, T, expert_units[-1]]``. With
    ``return_gates=True`` the call also returns the gates ``[batch, T, E]``.

    Example:

    >>> moe = MixtureOfExperts(num_experts=4, expert_units=[8], num_tasks=2)
    >>> moe(tf.ones([3, 5])).shape.as_list()
    [3, 2, 8]
    """

    def __init__(self, num_experts: int, expert_units: Sequence[int], num_tasks: int,
                 gate_units: Sequence[int] = (), activation: str = "relu", batch_norm: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_arguments("MixtureOfExperts", counts=dict(num_experts=num_experts, num_tasks=num_tasks),
                        units=dict(expert_units=expert_units), optional_units=dict(gate_units=gate_units),
                        rates=dict(dropout=dropout))
        self.num_experts = int(num_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.num_tasks = int(num_tasks)
        self.gate_units = [int(u) for u in gate_units]
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        self.experts = GroupedMLP(self.num_experts, self.expert_units, activation=activation,
                                  batch_norm=batch_norm, dropout=dropout)
        self.gates = ExpertGates(self.num_tasks, self.num_experts, self.gate_units, activation=activation)

    def call(self, inputs: tf.Tensor, training=None, return_gates: bool = False):
        expert_outputs = self.experts(inputs, training=training)
        gates = self.gates(inputs, training=training)
        mixed = mix_experts(gates, expert_outputs)
        return (mixed, gates) if return_gates else mixed

    def get_config(self) -> dict:
        return {**super().get_config(), "num_experts": self.num_experts, "expert_units": self.expert_units,
                "num_tasks": self.num_tasks, "gate_units": self.gate_units, "activation": self.activation,
                "batch_norm": self.batch_norm, "dropout": self.dropout}
