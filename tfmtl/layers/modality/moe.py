"""One modality's mixture of experts with a softmax or top-k gate (MAMEX)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers.grouped import GroupedDense, GroupedMLP
from tfmtl.layers.modality.ops import load_balance_loss, masked_softmax, modality_mask


@register
class ModalityMoE(keras.layers.Layer):
    """One modality's mixture of experts: ``sum_e g(x)_e f_e(x)`` with a softmax or top-k gate.

    The gate is a linear softmax over ``num_experts`` experts (MLPs of
    ``expert_units`` then a linear map to ``units``; ``expert_units=()`` gives
    the paper's linear experts). With ``top_k`` only the k largest gate logits
    are kept and renormalised. ``load_balance_weight`` times
    :func:`load_balance_loss` of the full softmax is added with ``add_loss``
    (missing examples excluded). NaNs of missing examples are zeroed before the
    experts and their output is zero.

    Args:
      num_experts: E experts (>= 1).
      units: output width U (>= 1).
      top_k: keep the k largest gate logits (``None``: all).
      expert_units: hidden widths of each expert (``()``: linear experts).
      load_balance_weight: weight of :func:`load_balance_loss` (0: none).
      activation: hidden-layer activation.

    Shapes: ``x [batch, d]`` (and optional ``present=bool [batch]``, default :func:`modality_mask`) ->
    ``[batch, units]``; ``return_gates=True`` also returns the gate ``[batch, E]``.

    Example:

    >>> moe = ModalityMoE(num_experts=4, units=8, top_k=2)
    >>> out, gates = moe(tf.random.normal([3, 5]), return_gates=True)
    >>> out.shape.as_list(), int(tf.reduce_sum(tf.cast(gates[0] > 0, tf.int32))), len(moe.losses)
    ([3, 8], 2, 1)
    """

    def __init__(self, num_experts: int, units: int, top_k: int | None = None, expert_units: Sequence[int] = (),
                 load_balance_weight: float = 0.01, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        if num_experts < 1 or units < 1:
            raise ValueError(f"ModalityMoE: num_experts and units must be >= 1, got {num_experts}, {units}")
        if top_k is not None and not 1 <= top_k <= num_experts:
            raise ValueError(f"ModalityMoE: top_k must be in [1, {num_experts}], got {top_k}")
        self.num_experts = int(num_experts)
        self.units = int(units)
        self.top_k = None if top_k is None else int(top_k)
        self.expert_units = [int(u) for u in expert_units]
        self.load_balance_weight = float(load_balance_weight)
        self.activation = activation
        self.hidden = GroupedMLP(self.num_experts, self.expert_units, activation=activation) if expert_units else None
        self.projection = GroupedDense(self.num_experts, self.units)
        self.gate = keras.layers.Dense(self.num_experts)

    def call(self, x: tf.Tensor, present: tf.Tensor | None = None, return_gates: bool = False):
        # ``present``, not ``mask``: Keras gives a ``mask`` argument its own (per-timestep) meaning.
        x = tf.cast(x, self.compute_dtype)
        present = modality_mask(x) if present is None else tf.reshape(tf.cast(present, tf.bool), [-1])
        x = tf.where(tf.math.is_finite(x), x, 0.0)
        experts = self.projection(self.hidden(x) if self.hidden is not None else x)  # [B, E, U]
        logits = self.gate(x)  # [B, E]
        probabilities = tf.nn.softmax(logits, axis=-1)
        if self.top_k is not None and self.top_k < self.num_experts:
            chosen = tf.reduce_sum(tf.one_hot(tf.math.top_k(logits, self.top_k).indices, self.num_experts), axis=1)
            gates = masked_softmax(logits, chosen > 0)
        else:
            gates = probabilities
        if self.load_balance_weight:
            self.add_loss(self.load_balance_weight * load_balance_loss(probabilities, present))
        gates = gates * tf.cast(present, gates.dtype)[:, None]
        outputs = tf.einsum("be,beu->bu", gates, experts)
        return (outputs, gates) if return_gates else outputs

    def get_config(self) -> dict:
        return {**super().get_config(), "num_experts": self.num_experts, "units": self.units, "top_k": self.top_k,
                "expert_units": self.expert_units, "load_balance_weight": self.load_balance_weight,
                "activation": self.activation}


__all__ = ["ModalityMoE"]
