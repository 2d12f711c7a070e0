"""Gated fusion of modality embeddings, robust to missing modalities (MAMEX)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers.grouped import GroupedDense, GroupedMLP
from tfmtl.layers.modality.ops import masked_softmax, modality_balance_loss

FUSION_MODES = ("gate", "mean", "concat")


@register
class ModalityFusion(keras.layers.Layer):
    """Fuses M modality embeddings into one item representation, robust to missing modalities.

    Args:
      num_modalities: M modalities.
      mode: ``"gate"``, ``"mean"`` or ``"concat"``.
      gate_units: hidden widths of each modality's scorer (``"gate"``).
      balance_weight: weight of :func:`modality_balance_loss` (``"gate"``).
      modality_dropout: training-time probability of hiding a present modality, in ``[0, 1)``.
      activation: the scorers' hidden activation.

    Modes:

    * ``"gate"`` (MAMEX): ``w = masked_softmax(s_m(e_m[, c]))``, ``z = sum_m w_m e_m``.
      Each modality's score depends only on its own embedding (and an optional
      context ``c``, e.g. the user), so a missing modality only removes its own
      term: the weights of the others keep their ratios and renormalise.
      ``balance_weight`` times :func:`modality_balance_loss` is added with
      ``add_loss`` so the gate cannot collapse onto one modality.
    * ``"mean"``: average of the present modalities.
    * ``"concat"``: concatenation, missing modalities zeroed (``[batch, M * U]``).

    ``modality_dropout`` (training only) hides each present modality with that
    probability, never all of an example's: it trains the model for items
    whose modality is missing at serving time (e.g. no collaborative signal
    for a cold item).

    Shapes: ``[embeddings [batch, M, U], mask bool [batch, M]]`` or ``[embeddings,
    mask, context [batch, C]]`` -> ``[batch, U]`` (concat: ``[batch, M * U]``);
    ``return_weights=True`` also returns the modality weights ``[batch, M]``
    (concat: the mean weights, for reporting). An example with no modality gets zeros.

    Example:

    >>> fusion = ModalityFusion(num_modalities=3)
    >>> z, w = fusion([tf.random.normal([2, 3, 4]), tf.constant([[True, False, True]] * 2)],
    ...               return_weights=True)
    >>> z.shape.as_list(), w.numpy().sum(axis=1).round(4).tolist(), float(w[0, 1])
    ([2, 4], [1.0, 1.0], 0.0)
    """

    def __init__(self, num_modalities: int, mode: str = "gate", gate_units: Sequence[int] = (),
                 balance_weight: float = 0.01, modality_dropout: float = 0.0, activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        if mode not in FUSION_MODES:
            raise ValueError(f"ModalityFusion: mode must be one of {FUSION_MODES}, got {mode!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"ModalityFusion: modality_dropout must be in [0, 1), got {modality_dropout}")
        self.num_modalities = int(num_modalities)
        self.mode = mode
        self.gate_units = [int(u) for u in gate_units]
        self.balance_weight = float(balance_weight)
        self.modality_dropout = float(modality_dropout)
        self.activation = activation
        if mode == "gate":
            self.scorer_hidden = (GroupedMLP(self.num_modalities, self.gate_units, activation=activation)
                                  if self.gate_units else None)
            self.scorer = GroupedDense(self.num_modalities, 1)

    def call(self, inputs, training=None, return_weights: bool = False):
        embeddings, mask = inputs[0], tf.cast(inputs[1], tf.bool)
        context = inputs[2] if len(inputs) > 2 else None
        if training and self.modality_dropout:
            mask = self._drop(mask)
        present = tf.cast(mask, embeddings.dtype)
        embeddings = embeddings * present[:, :, None]
        if self.mode == "gate":
            weights = masked_softmax(self.gate_logits(embeddings, context), mask)
            if self.balance_weight:
                self.add_loss(self.balance_weight * modality_balance_loss(weights, mask))
        else:
            weights = present / tf.maximum(tf.reduce_sum(present, axis=1, keepdims=True), 1.0)
        if self.mode == "concat":
            fused = tf.reshape(embeddings, [-1, self.num_modalities * embeddings.shape[-1]])
        else:
            fused = tf.einsum("bm,bmu->bu", weights, embeddings)
        return (fused, weights) if return_weights else fused

    def gate_logits(self, embeddings: tf.Tensor, context: tf.Tensor | None = None) -> tf.Tensor:
        """Unmasked gate scores ``[batch, M]``: modality m's from its own embedding (and the context)."""
        x = embeddings
        if context is not None:
            x = tf.concat([x, tf.tile(context[:, None, :], [1, self.num_modalities, 1])], axis=-1)
        if self.scorer_hidden is not None:
            x = self.scorer_hidden(x)
        return tf.squeeze(self.scorer(x), axis=-1)

    def _drop(self, mask: tf.Tensor) -> tf.Tensor:
        keep = tf.random.uniform(tf.shape(mask)) >= self.modality_dropout
        dropped = tf.logical_and(mask, keep)
        # Never hide every modality of an example: fall back to its original mask.
        return tf.where(tf.reduce_any(dropped, axis=1, keepdims=True), dropped, mask)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_modalities": self.num_modalities, "mode": self.mode,
                "gate_units": self.gate_units, "balance_weight": self.balance_weight,
                "modality_dropout": self.modality_dropout, "activation": self.activation}


__all__ = ["FUSION_MODES", "ModalityFusion"]
