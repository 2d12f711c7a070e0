"""Customized Gate Control (CGC) and Progressive Layered Extraction (PLE).

A CGC level has ``specific_experts`` experts per task plus ``shared_experts``
shared ones. Task k's gate selects over its own and the shared experts; the
shared gate (for the next level) selects over all experts. PLE stacks levels,
feeding task k's output to task k's experts and gate at the next level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments, check_count
from tfmtl.layers.experts import ExpertGates
from tfmtl.layers.grouped import GroupedMLP


@register
class CGC(keras.layers.Layer):
    """One extraction level.

    Args:
      num_tasks: T tasks (>= 1).
      specific_experts: experts of each task (>= 0).
      shared_experts: shared experts (>= 0; with ``specific_experts`` at least one).
      expert_units: hidden widths of each expert; ``U = expert_units[-1]``.
      gate_units: hidden widths of each gating MLP (``()``: linear softmax gates).
      output_shared: also output the shared slot (for a next level).
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Inputs: ``[batch, d]`` (every slot sees the same input, as at level 1) or
    ``[batch, T + 1, d]`` (one slot per task, the shared slot last).
    Output: ``[batch, T + 1, U]`` when ``output_shared`` (input for a next level)
    else ``[batch, T, U]``, with ``U = expert_units[-1]``.

    Example:

    >>> cgc = CGC(num_tasks=2, specific_experts=1, shared_experts=2, expert_units=[8])
    >>> cgc(tf.ones([3, 5])).shape.as_list()
    [3, 3, 8]
    """

    def __init__(self, num_tasks: int, specific_experts: int, shared_experts: int, expert_units: Sequence[int],
                 gate_units: Sequence[int] = (), output_shared: bool = True, activation: str = "relu",
                 batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_arguments("CGC", counts=dict(num_tasks=num_tasks), units=dict(expert_units=expert_units),
                        optional_units=dict(gate_units=gate_units), rates=dict(dropout=dropout))
        check_count("CGC", "specific_experts", specific_experts, minimum=0)
        check_count("CGC", "shared_experts", shared_experts, minimum=0)
        if specific_experts + shared_experts < 1:
            raise ValueError("CGC: specific_experts + shared_experts must be >= 1 (each task gate needs an expert), "
                             f"got {specific_experts} + {shared_experts}")
        self.num_tasks = int(num_tasks)
        self.specific_experts = int(specific_experts)
        self.shared_experts = int(shared_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.gate_units = [int(u) for u in gate_units]
        self.output_shared = output_shared
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        t, s, shared = self.num_tasks, self.specific_experts, self.shared_experts
        self.num_experts = t * s + shared
        # Expert g reads input slot _expert_slot[g]: task experts their task, shared ones the shared slot.
        self._expert_slot = np.array([k for k in range(t) for _ in range(s)] + [t] * shared, np.int32)
        # Task k's gate selects its own experts, then the shared ones.
        self._task_selection = np.array(
            [list(range(k * s, (k + 1) * s)) + list(range(t * s, t * s + shared)) for k in range(t)], np.int32)
        self.experts = GroupedMLP(self.num_experts, self.expert_units, activation=activation,
                                  batch_norm=batch_norm, dropout=dropout)
        self.task_gates = ExpertGates(t, s + shared, self.gate_units, activation=activation)
        self.shared_gate = (ExpertGates(1, self.num_experts, self.gate_units, activation=activation)
                            if output_shared else None)

    def call(self, inputs: tf.Tensor, training=None, return_gates: bool = False):
        if inputs.shape.rank == 2:
            expert_inputs, task_inputs, shared_input = inputs, inputs, inputs
        else:
            expert_inputs = tf.gather(inputs, self._expert_slot, axis=1)
            task_inputs, shared_input = inputs[:, : self.num_tasks], inputs[:, self.num_tasks]
        experts = self.experts(expert_inputs, training=training)  # [B, G, U]
        task_gates = self.task_gates(task_inputs, training=training)  # [B, T, S + shared]
        selected = tf.gather(experts, self._task_selection, axis=1)  # [B, T, S + shared, U]
        outputs = tf.einsum("bte,bteu->btu", task_gates, selected)
        if self.shared_gate is not None:
            shared_gate = self.shared_gate(shared_input, training=training)  # [B, 1, G]
            outputs = tf.concat([outputs, tf.einsum("bge,beu->bgu", shared_gate, experts)], axis=1)
        return (outputs, task_gates) if return_gates else outputs

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tasks": self.num_tasks, "specific_experts": self.specific_experts,
                "shared_experts": self.shared_experts, "expert_units": self.expert_units,
                "gate_units": self.gate_units, "output_shared": self.output_shared, "activation": self.activation,
                "batch_norm": self.batch_norm, "dropout": self.dropout}


@register
class PLE(keras.layers.Layer):
    """Progressive Layered Extraction: ``num_levels`` stacked CGC levels.

    Args:
      num_levels: stacked CGC levels (>= 1); the last drops the shared slot.
      num_tasks, specific_experts, shared_experts, expert_units, gate_units: as :class:`CGC`.
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Shapes: ``[batch, d]`` -> ``[batch, T, expert_units[-1]]``.

    Example:

    >>> PLE(num_levels=2, num_tasks=2, specific_experts=1, shared_experts=1,
    ...     expert_units=[8])(tf.ones([3, 5])).shape.as_list()
    [3, 2, 8]
    """

    def __init__(self, num_levels: int, num_tasks: int, specific_experts: int, shared_experts: int,
                 expert_units: Sequence[int], gate_units: Sequence[int] = (), activation: str = "relu",
                 batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_count("PLE", "num_levels", num_levels)
        self.num_levels = int(num_levels)
        self._cgc_args = dict(num_tasks=num_tasks, specific_experts=specific_experts, shared_experts=shared_experts,
                              expert_units=list(expert_units), gate_units=list(gate_units), activation=activation,
                              batch_norm=batch_norm, dropout=dropout)
        self.levels = [CGC(output_shared=level < self.num_levels - 1, **self._cgc_args)
                       for level in range(self.num_levels)]

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        x = inputs
        for level in self.levels:
            x = level(x, training=training)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "num_levels": self.num_levels, **self._cgc_args}
