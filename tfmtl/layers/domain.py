"""Multi-domain layers routed by a domain id: STAR-style dense, domain-gated experts, M3oE.

Every layer takes the domain id as a second input, ``int [batch]`` in
``[0, num_domains)``. Per-domain variants are computed side by side as one
grouped einsum and each example then gathers its own domain's slice: for the
handful of domains of multi-domain recommendation that is cheaper than gathering
a weight matrix per example, and any number of domains works unchanged.

* :class:`StarDense`: STAR's star-topology layer, kernel = shared * domain-specific.
* :class:`DomainExpertMixing`: shared experts, one softmax gate per (domain, task).
* :class:`M3oEExperts`: M3oE's shared / domain / task expert modules and its
  two-level fusion, weighted by four learnable structure weights.
* :class:`DomainTaskTowers`: one tower per (domain, task), routed by domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers.experts import ExpertGates
from tfmtl.layers.grouped import GroupedMLP
from tfmtl.layers.towers import TaskTowers

STRUCTURE_NAMES = ("exp_d", "exp_t", "bal_d", "bal_t")


def select_domain(values: tf.Tensor, domain: tf.Tensor) -> tf.Tensor:
    """Each example's own domain slice: values ``[batch, D, ...]``, domain ``[batch]`` -> ``[batch, ...]``."""
    return tf.gather(values, tf.cast(domain, tf.int32), axis=1, batch_dims=1)


def _split(inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError("expected inputs [features, domain_id]")
    return inputs[0], tf.reshape(inputs[1], [-1])


@register
class StarDense(keras.layers.Layer):
    """STAR's star-topology dense layer: ``y = act(x (W_shared * W_d) + b_shared + b_d)`` for domain d.

    The domain kernels start at ones, so every domain starts as the shared
    layer: the product of two Glorot-initialised matrices would shrink the
    signal by another factor of the fan-in.

    Args:
      num_domains: D domains.
      units: output width U.

    Shapes: ``[x [batch, d], domain int [batch]]`` -> ``[batch, U]``.

    Example:

    >>> layer = StarDense(num_domains=3, units=4)
    >>> layer([tf.ones([2, 5]), tf.constant([0, 2])]).shape.as_list()
    [2, 4]
    """

    def __init__(self, num_domains: int, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", domain_kernel_initializer="ones", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if num_domains < 1 or units < 1:
            raise ValueError(f"StarDense: num_domains and units must be >= 1, got {num_domains}, {units}")
        self.num_domains = int(num_domains)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.domain_kernel_initializer = keras.initializers.get(domain_kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        d_in = int(tf.TensorShape(input_shape[0])[-1])
        self.shared_kernel = self.add_weight(name="shared_kernel", shape=(d_in, self.units),
                                             initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        # No regulariser on the domain kernel: L2 would pull its multipliers from 1 towards 0.
        self.domain_kernel = self.add_weight(name="domain_kernel", shape=(self.num_domains, d_in, self.units),
                                             initializer=self.domain_kernel_initializer)
        if self.use_bias:
            self.shared_bias = self.add_weight(name="shared_bias", shape=(self.units,), initializer="zeros")
            self.domain_bias = self.add_weight(name="domain_bias", shape=(self.num_domains, self.units),
                                               initializer="zeros")
        super().build(input_shape)

    def call(self, inputs) -> tf.Tensor:
        x, domain = _split(inputs)
        outputs = tf.einsum("bi,dio->bdo", x, self.domain_kernel * self.shared_kernel)  # [B, D, U]
        if self.use_bias:
            outputs = outputs + self.domain_bias + self.shared_bias
        return self.activation(select_domain(outputs, domain))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "units": self.units,
                "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "domain_kernel_initializer": keras.initializers.serialize(self.domain_kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


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
        self.stop_gate_gradient = bool(stop_gate_gradient)
        if min(num_domains, num_tasks, num_experts) < 1 or not expert_units:
            raise ValueError("DomainExpertMixing: need >= 1 domain, task and expert, and non-empty expert_units")
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
        x, domain = _split(inputs)
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
    code starts at ``sigmoid(1) ~ 0.73``). ``stop_gate_gradient`` as in
    :class:`DomainExpertMixing` (the official code's ``gate(emb.detach())``). With ``structure_trainable=False``
    the main optimizer leaves them alone; a bilevel (DARTS-style) step can still
    update them on validation batches (see ``tfmtl.models.m3oe``).

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
        x, domain = _split(inputs)
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


@register
class DomainTaskTowers(keras.layers.Layer):
    """One tower per (domain, task); an example's task-t logit comes from its own domain's tower t.

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
        h, domain = _split(inputs)
        if h.shape.rank == 3:
            h = tf.reshape(tf.tile(h[:, None], [1, self.num_domains, 1, 1]),
                           [-1, self.num_domains * self.num_tasks, h.shape[-1]])
        logits = self.towers(h, training=training)  # [B, D*T]
        return select_domain(tf.reshape(logits, [-1, self.num_domains, self.num_tasks]), domain)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_domains": self.num_domains, "num_tasks": self.num_tasks,
                "units": self.units, "activation": self.activation, "batch_norm": self.batch_norm,
                "dropout": self.dropout}


__all__ = ["STRUCTURE_NAMES", "DomainExpertMixing", "DomainTaskTowers", "M3oEExperts", "StarDense", "select_domain"]
