"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), trained with BCE.

The user is the sequence of items they interacted with. Item ids are ``1..num_items``;
``0`` is padding. Histories are left-padded to ``T <= max_len`` so that the most
recent item is always at position ``T - 1``.

Forward pass (the paper's section III):

* ``E_t = sqrt(d) * M[s_t] + P[t]`` (item embedding ``M``, learned positions ``P``),
  dropout, padding zeroed;
* ``num_blocks`` causal self-attention blocks (:class:`~tfmtl.layers.SelfAttentionEncoder`
  with ``causal=True, norm_first=True``; point-wise feed-forward of width ``d``);
  a final layer normalisation gives ``F_t``, the user state after ``s_1..s_t``;
* score of item ``i`` after position ``t``: ``r_{i,t} = <F_t, M[i]>`` (the input item
  embedding is shared with the output, as in the paper's SASRec).

Training (the paper's Eq. 4): at every real position ``t`` one positive (the next item
``o_t``) and one sampled negative ``j``; loss
``-[log sigmoid(r_{o_t,t}) + log sigmoid(-r_{j,t})]`` summed over real positions and
averaged over them (:func:`sasrec_bce_loss`).
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.layers.sequence import SelfAttentionEncoder

__all__ = ["SASRec", "sasrec_bce_loss"]


def sasrec_bce_loss(positive_logits: tf.Tensor, negative_logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """SASRec's BCE: ``sum_t m_t * [softplus(-r_pos,t) + softplus(r_neg,t)] / sum_t m_t``.

    ``softplus(-x) = -log sigmoid(x)``. Padded positions (``mask`` 0) do not count; a
    batch without any real position gives 0.

    Shapes: all ``[batch, T]`` -> scalar.

    >>> float(sasrec_bce_loss(tf.constant([[0.0, 9.0]]), tf.constant([[0.0, 9.0]]), tf.constant([[1.0, 0.0]])))
    1.3862943649291992
    """
    mask = tf.cast(mask, positive_logits.dtype)
    per_position = tf.nn.softplus(-positive_logits) + tf.nn.softplus(negative_logits)
    return tf.math.divide_no_nan(tf.reduce_sum(per_position * mask), tf.reduce_sum(mask))


@register
class SASRec(keras.Model):
    """SASRec next-item model: ``{"history", "positive", "negative"}`` -> per-position logits.

    Inputs (int, ``[batch, T]``, 0 = padding): ``history`` (the input sequence),
    ``positive`` (the next item at each position, i.e. ``history`` shifted by one) and
    ``negative`` (one sampled item per position). Outputs ``{"positive": [batch, T],
    "negative": [batch, T]}``: the logits ``r_{i,t}``; train with :func:`sasrec_bce_loss`
    and mask ``positive > 0``. For retrieval, :meth:`user_embeddings` gives the state
    after the last position and :meth:`item_embeddings` the ``[num_items, d]`` table
    (row ``i - 1`` for item ``i``); their dot product is the score.

    Example:

    >>> model = SASRec(num_items=20, max_len=4, dim=8)
    >>> out = model({"history": tf.constant([[0, 3, 5, 7]]), "positive": tf.constant([[3, 5, 7, 9]]),
    ...              "negative": tf.constant([[1, 2, 4, 6]])})
    >>> out["positive"].shape.as_list(), model.user_embeddings(tf.constant([[0, 3, 5, 7]])).shape.as_list()
    ([1, 4], [1, 8])

    Args:
        num_items: number of items (ids ``1..num_items``).
        max_len: longest history ``T``.
        dim: embedding width ``d``.
        num_blocks: self-attention blocks (the paper: 2).
        num_heads: attention heads (the paper: 1).
        dropout: dropout on the embeddings, attention weights and block outputs (the paper:
            0.2 on MovieLens-1M).
        l2: L2 penalty on the item embeddings (0: none, as the paper's code).
    """

    def __init__(self, num_items: int, max_len: int = 50, dim: int = 64, num_blocks: int = 2, num_heads: int = 1,
                 dropout: float = 0.2, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value, low in (("num_items", num_items, 1), ("max_len", max_len, 1), ("dim", dim, 1),
                                 ("num_blocks", num_blocks, 1), ("num_heads", num_heads, 1)):
            if int(value) < low:
                raise ValueError(f"SASRec: {name} must be >= {low}, got {value}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"SASRec: dropout must be in [0, 1), got {dropout}")
        if float(l2) < 0:
            raise ValueError(f"SASRec: l2 must be >= 0, got {l2}")
        self.num_items, self.max_len, self.dim = int(num_items), int(max_len), int(dim)
        self.num_blocks, self.num_heads = int(num_blocks), int(num_heads)
        self.dropout, self.l2 = float(dropout), float(l2)
        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        self.item_embedding = keras.layers.Embedding(self.num_items + 1, self.dim, embeddings_regularizer=reg,
                                                     name="item_embedding")
        self.position_embedding = keras.layers.Embedding(self.max_len, self.dim, name="position_embedding")
        self.embedding_dropout = keras.layers.Dropout(self.dropout)
        self.blocks = [SelfAttentionEncoder(self.max_len, self.num_heads, ff_units=self.dim, dropout=self.dropout,
                                            causal=True, positions=False, norm_first=True, name=f"block_{i}")
                       for i in range(self.num_blocks)]
        self.final_norm = keras.layers.LayerNormalization(name="final_norm")

    def encode(self, history: tf.Tensor, training=None) -> tf.Tensor:
        """``[batch, T]`` item ids -> ``[batch, T, d]`` states ``F_t`` (zero at padding)."""
        history = tf.convert_to_tensor(history)
        if history.shape.rank != 2:
            raise ValueError(f"SASRec: history must be [batch, T], got shape {history.shape}")
        if history.shape[1] is not None and history.shape[1] > self.max_len:
            raise ValueError(f"SASRec: history length {history.shape[1]} exceeds max_len={self.max_len}")
        mask = tf.cast(history > 0, tf.float32)
        length = tf.shape(history)[1]
        x = self.item_embedding(history) * math.sqrt(self.dim) + self.position_embedding(tf.range(length))[None]
        x = self.embedding_dropout(x, training=training) * mask[:, :, None]
        for block in self.blocks:
            x = block(x, mask=mask, training=training)
        return self.final_norm(x) * mask[:, :, None]

    def call(self, inputs, training=None) -> dict[str, tf.Tensor]:
        missing = sorted({"history", "positive", "negative"} - set(inputs))
        if missing:
            raise ValueError(f"SASRec: inputs lack {missing} (need history, positive, negative)")
        states = self.encode(inputs["history"], training=training)
        return {name: tf.reduce_sum(states * self.item_embedding(inputs[name]), axis=-1)
                for name in ("positive", "negative")}

    def user_embeddings(self, history: tf.Tensor) -> tf.Tensor:
        """``[batch, d]``: the state after the last position of left-padded histories."""
        return self.encode(history, training=False)[:, -1]

    def item_embeddings(self) -> tf.Tensor:
        """``[num_items, d]``: row ``i - 1`` is item ``i`` (padding row left out)."""
        if not self.item_embedding.built:
            self.item_embedding.build((None,))
        return self.item_embedding.embeddings[1:]

    def get_config(self) -> dict:
        return {"name": self.name, "num_items": self.num_items, "max_len": self.max_len, "dim": self.dim,
                "num_blocks": self.num_blocks, "num_heads": self.num_heads, "dropout": self.dropout, "l2": self.l2}
