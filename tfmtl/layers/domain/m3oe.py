"""M3oE's shared / domain / task expert modules and two-level fusion with four structure weights."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain.mixing import DomainExpertMixing
from tfmtl.layers.domain.routing import select_domain, split_domain_inputs
from tfmtl.layers.grouped import GroupedMLP

STRUCTURE_NAMES = ("exp_d", "exp_t", "bal_d", "bal_t")


def _level_mix(values: tf.Tensor, own: tf.Tensor, balance: tf.Tensor, count: int) -> tf.Tensor:
    """``balance * own + (1 - balance) * mean(others)`` over the ``count`` slices of ``values`` [B, count, U]."""
    if count == 1:
        return own
    others = (tf.reduce_sum(values, axis=1, keepdims=own.shape.rank == 3) - own) / (count - 1)
    return balance * own + (1.0 - balance) * others


@register
class M3oEExperts(keras.layers.Layer):
    """M3oE's three expert modules and two-level fusion (Zhang et al., SIGIR 2024).

    * shared experts, mixed by a softmax gate per (domain, task):
      ``s_dt = sum_e g_dt(x)_e f_e(x)`` (:class:`DomainExpertMixing`);
    * one expert per domain ``h_d`` and one per task ``h_t``;
    * level 1, domain and task mixing: ``m_d = bal_d h_d + (1 - bal_d) mean_{j != d} h_j``
      and likewise ``m_t`` with ``bal_t``;
    * level 2, fusion per (domain, task): ``z_dt = s_dt + exp_d m_d + exp_t m_t``.

    The structure weights ``exp_d, exp_t, bal_d, bal_t`` are ``sigmoid`` of four
    learnable scalars (initial value ``sigmoid(structure_init)``; the official
    code starts at ``sigmoid(1) ~ 0.73``). With ``structure_trainable=False``
    the main optimizer leaves them alone; a bilevel (DARTS-style) step can still
    update them on validation batches (see ``tfmtl.training.structure_weights``).

    Args:
      num_domains: D domains.
      num_tasks: T tasks.
      num_experts: E shared experts.
      expert_units: hidden widths of every expert; ``U = expert_units[-1]``.
      gate_units: hidden widths of the shared-expert gates (``()``: linear).
      structure_trainable: whether the main optimizer trains the structure weights.
      structure_init: initial raw structure weight (value ``sigmoid(structure_init)``).
      activation: hidden-layer activation.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Shapes: ``[x [batch, d], domain int [batch]]`` -> ``[batch, T, U]``: the T
    fused representations of each example's own domain (``U = expert_units[-1]``).
    ``return_gates=True`` also returns the shared-expert gates ``[batch, T, E]``.

    Example:

    >>> layer = M3oEExperts(num_domains=3, num_tasks=2, num_experts=4, expert_units=[8])
    >>> layer([tf.ones([5, 6]), tf.constant([0, 1, 2, 1, 0])]).shape.as_list()
    [5, 2, 8]
    >>> sorted(layer.structure_values())
    ['bal_d', 'bal_t', 'exp_d', 'exp_t']
    """

    def __init__(self, num_domains: int, num_tasks: int, num_experts: int, expert_units: Sequence[int],
                 gate_units: Sequence[int] = (), structure_trainable: bool = True, structure_init: float = 1.0,
                 activation: str = "relu", batch_norm: bool = False, dropout: float = 0.0,
                 stop_gate_gradient: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_arguments("M3oEExperts", counts=dict(num_domains=num_domains, num_tasks=num_tasks,
                                                   num_experts=num_experts),
                        units=dict(expert_units=expert_units), optional_units=dict(gate_units=gate_units),
                        rates=dict(dropout=dropout))
        self.stop_gate_gradient = bool(stop_gate_gradient)
        self.num_domains = int(num_domains)
        self.num_tasks = int(num_tasks)
        self.num_experts = int(num_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.gate_units = [int(u) for u in gate_units]
        self.structure_trainable = bool(structure_trainable)
        self.structure_init = float(structure_init)
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = float(dropout)
        common = dict(activation=activation, batch_norm=batch_norm, dropout=dropout)
        self.shared = DomainExpertMixing(self.num_domains, self.num_tasks, self.num_experts, self.expert_units,
                                         self.gate_units, stop_gate_gradient=self.stop_gate_gradient, **common)
        self.domain_experts = GroupedMLP(self.num_domains, self.expert_units, **common)
        self.task_experts = GroupedMLP(self.num_tasks, self.expert_units, **common)

    def build(self, input_shape):
        self._structure = {name: self.add_weight(name=f"structure_{name}", shape=(),
                                                 initializer=keras.initializers.Constant(self.structure_init),
                                                 trainable=self.structure_trainable)
                           for name in STRUCTURE_NAMES}
        super().build(input_shape)

    @property
    def structure_weights(self) -> list[tf.Variable]:
        """The four raw (pre-sigmoid) structure variables, in :data:`STRUCTURE_NAMES` order."""
        return [self._structure[name] for name in STRUCTURE_NAMES]

    def structure_values(self) -> dict[str, float]:
        """The effective structure weights ``sigmoid(raw)`` as floats."""
        return {name: float(tf.sigmoid(self._structure[name])) for name in STRUCTURE_NAMES}

    def call(self, inputs, training=None, return_gates: bool = False):
        x, domain = split_domain_inputs(inputs)
        exp_d, exp_t, bal_d, bal_t = (tf.sigmoid(self._structure[name]) for name in STRUCTURE_NAMES)
        shared, gates = self.shared([x, domain], training=training, return_gates=True)  # [B, T, U], [B, T, E]
        domain_all = self.domain_experts(x, training=training)  # [B, D, U]
        domain_mix = _level_mix(domain_all, select_domain(domain_all, domain), bal_d, self.num_domains)  # [B, U]
        task_all = self.task_experts(x, training=training)  # [B, T, U]
        task_mix = _level_mix(task_all, task_all, bal_t, self.num_tasks)  # [B, T, U]
        fused = shared + exp_d * domain_mix[:, None, :] + exp_t * task_mix
        return (fused, gates) if return_gates else fused

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "num_tasks": self.num_tasks,
                "num_experts": self.num_experts, "expert_units": self.expert_units, "gate_units": self.gate_units,
                "structure_trainable": self.structure_trainable, "structure_init": self.structure_init,
                "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout,
                "stop_gate_gradient": self.stop_gate_gradient}


__all__ = ["STRUCTURE_NAMES", "M3oEExperts"]
