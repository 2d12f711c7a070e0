"""Behaviour-sequence layers: masked pooling and DIN target attention.

A history is a padded ``[batch, T, d]`` tensor of item embeddings with a
``[batch, T]`` mask (1/True for real positions, 0/False for padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register

_POOLING = ("mean", "sum", "max")


def _mask_of(mask, sequence: tf.Tensor) -> tf.Tensor:
    """A float ``[batch, T]`` mask; all ones when ``mask`` is None."""
    if mask is None:
        return tf.ones(tf.shape(sequence)[:2], sequence.dtype)
    return tf.cast(mask, sequence.dtype)


@register
class SequencePooling(keras.layers.Layer):
    """Mean, sum or max of a padded sequence over its real positions.

    Padding never contributes; an empty sequence (all-zero mask) pools to zeros
    for every mode, never NaN or -inf.

    Shapes: sequence ``[batch, T, d]``, mask ``[batch, T]`` -> ``[batch, d]``.

    Example:

    >>> x = tf.constant([[[1.0], [3.0], [100.0]]])
    >>> SequencePooling("mean")(x, mask=tf.constant([[1, 1, 0]])).numpy().tolist()
    [[2.0]]

    Args:
        mode: ``"mean"``, ``"sum"`` or ``"max"``.
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in _POOLING:
            raise ValueError(f"SequencePooling: mode must be one of {_POOLING}, got {mode!r}")
        self.mode = mode

    def call(self, sequence: tf.Tensor, mask=None) -> tf.Tensor:
        weights = _mask_of(mask, sequence)[:, :, None]
        if self.mode == "max":
            # Padding gets the lowest value so it never wins; rows without any real position give 0.
            lowest = tf.fill(tf.shape(sequence), tf.constant(sequence.dtype.min, sequence.dtype))
            pooled = tf.reduce_max(tf.where(weights > 0, sequence, lowest), axis=1)
            return tf.where(tf.reduce_sum(weights, axis=1) > 0, pooled, tf.zeros_like(pooled))
        total = tf.reduce_sum(sequence * weights, axis=1)
        if self.mode == "sum":
            return total
        return tf.math.divide_no_nan(total, tf.reduce_sum(weights, axis=1))

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@register
class TargetAttention(keras.layers.Layer):
    """DIN's local activation unit (Zhou et al., KDD 2018): the user's interest in a candidate.

    Each history item ``h_t`` gets a score from a small MLP over
    ``[h_t, c, h_t - c, h_t * c]`` (``c`` the candidate), and the output is the
    score-weighted sum of the history. As in the paper the scores are NOT
    normalised by a softmax by default (so the sum keeps the intensity of the
    interest); ``softmax=True`` normalises them over the real positions. Padding
    gets weight 0 either way.

    The paper's figure feeds the unit an outer product of ``h_t`` and ``c``; its
    official code (and DeepCTR, EasyRec, torch-rechub) uses the element-wise
    product, which this layer follows: it keeps the MLP input at ``4 * d``
    instead of ``2 * d + d * d``.

    Shapes: history ``[batch, T, d]``, candidate ``[batch, d]``, mask
    ``[batch, T]`` -> ``[batch, d]``; ``return_weights=True`` in ``call`` also
    returns the ``[batch, T]`` weights.

    Example:

    >>> layer = TargetAttention(units=[8])
    >>> layer(tf.ones([2, 5, 4]), tf.ones([2, 4]), mask=tf.ones([2, 5])).shape.as_list()
    [2, 4]

    Args:
        units: hidden widths of the attention MLP (the paper: 80, 40).
        activation: hidden activation (the paper uses PReLU/Dice; sigmoid as in
            its official code by default).
        softmax: normalise the scores over the real positions.
    """

    def __init__(self, units: Sequence[int] = (80, 40), activation: str = "sigmoid", softmax: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        units = [int(u) for u in units]
        if any(u < 1 for u in units):
            raise ValueError(f"TargetAttention: units must all be >= 1, got {units}")
        self.units = units
        self.activation = activation
        self.softmax = bool(softmax)
        self._hidden = [keras.layers.Dense(u, activation=activation) for u in units]
        self._score = keras.layers.Dense(1)

    def build(self, input_shape):
        # Keras passes the first input's shape: the history [batch, T, d].
        d = int(tf.TensorShape(input_shape)[-1])
        width = 4 * d
        for layer in self._hidden:
            layer.build((None, None, width))
            width = layer.units
        self._score.build((None, None, width))
        super().build(input_shape)

    def call(self, history: tf.Tensor, candidate: tf.Tensor, mask=None, return_weights: bool = False):
        if candidate.shape.rank != 2:
            raise ValueError(f"TargetAttention: candidate must be [batch, d], got shape {candidate.shape}")
        weights_mask = _mask_of(mask, history)
        target = tf.broadcast_to(candidate[:, None, :], tf.shape(history))
        x = tf.concat([history, target, history - target, history * target], axis=-1)
        for layer in self._hidden:
            x = layer(x)
        scores = self._score(x)[:, :, 0]
        if self.softmax:
            # Padding gets -inf-like scores; an all-padding row would softmax to uniform, so re-mask after.
            scores = tf.where(weights_mask > 0, scores, tf.fill(tf.shape(scores), tf.constant(-1e9, scores.dtype)))
            weights = tf.nn.softmax(scores, axis=-1) * weights_mask
        else:
            weights = scores * weights_mask
        output = tf.einsum("bt,btd->bd", weights, history)
        return (output, weights) if return_weights else output

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation, "softmax": self.softmax}


@register
class SelfAttentionEncoder(keras.layers.Layer):
    """One transformer block over a behaviour sequence, as in BST (Chen et al., 2019) or SASRec.

    Adds a learned position embedding (``positions=True``), then multi-head
    self-attention (padding masked out as keys) and a feed-forward layer, each with
    a residual connection and layer normalisation. Padded positions of the output
    are zero.

    ``causal=True`` lets position ``t`` attend to positions ``<= t`` only, as a
    next-item model needs (SASRec, Kang & McAuley 2018): the output at ``t`` does
    not depend on any later input. ``norm_first=True`` normalises each sub-layer's
    input (``x + f(LayerNorm(x))``, SASRec's and most current transformers' order)
    instead of its output (``LayerNorm(x + f(x))``, BST's and the original
    transformer's). A model stacking blocks adds positions once: ``positions=False``
    on the blocks after the first (or on all, when the model embeds positions).

    Shapes: sequence ``[batch, T, d]``, mask ``[batch, T]`` -> ``[batch, T, d]``
    (``T <= max_len``).

    Example:

    >>> SelfAttentionEncoder(max_len=5, num_heads=2)(tf.ones([2, 5, 4]), mask=tf.ones([2, 5])).shape.as_list()
    [2, 5, 4]
    >>> block = SelfAttentionEncoder(max_len=5, num_heads=1, causal=True, norm_first=True)
    >>> block(tf.ones([1, 5, 4])).shape.as_list()
    [1, 5, 4]

    Args:
        max_len: longest sequence (size of the position embedding).
        num_heads: attention heads.
        ff_units: width of the feed-forward layer; ``None``: ``4 * d``.
        dropout: dropout on the attention weights and the block outputs.
        causal: position ``t`` attends to positions ``<= t`` only.
        positions: add the learned position embedding.
        norm_first: pre-layer-normalisation (SASRec) instead of post (BST).
    """

    def __init__(self, max_len: int, num_heads: int = 2, ff_units: int | None = None, dropout: float = 0.0,
                 causal: bool = False, positions: bool = True, norm_first: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(max_len) < 1:
            raise ValueError(f"SelfAttentionEncoder: max_len must be >= 1, got {max_len}")
        if int(num_heads) < 1:
            raise ValueError(f"SelfAttentionEncoder: num_heads must be >= 1, got {num_heads}")
        if ff_units is not None and int(ff_units) < 1:
            raise ValueError(f"SelfAttentionEncoder: ff_units must be >= 1, got {ff_units}")
        self.max_len, self.num_heads = int(max_len), int(num_heads)
        self.ff_units = None if ff_units is None else int(ff_units)
        self.dropout = float(dropout)
        self.causal, self.use_positions, self.norm_first = bool(causal), bool(positions), bool(norm_first)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3:
            raise ValueError(f"SelfAttentionEncoder: sequence must be [batch, T, d], got shape {input_shape}")
        if input_shape[1] is not None and input_shape[1] > self.max_len:
            raise ValueError(f"SelfAttentionEncoder: sequence length {input_shape[1]} exceeds max_len={self.max_len}")
        d = int(input_shape[-1])
        if self.use_positions:
            self.positions = self.add_weight(name="positions", shape=(self.max_len, d),
                                             initializer=keras.initializers.RandomNormal(stddev=0.02))
        self._attention = keras.layers.MultiHeadAttention(self.num_heads, max(1, d // self.num_heads),
                                                          dropout=self.dropout, name="attention")
        self._attention._build_from_signature(input_shape, input_shape)
        self._ff = [keras.layers.Dense(self.ff_units or 4 * d, activation="relu", name="ff_hidden"),
                    keras.layers.Dense(d, name="ff_out")]
        self._ff[0].build(input_shape)
        self._ff[1].build(input_shape[:-1].concatenate([self.ff_units or 4 * d]))
        self._norms = [keras.layers.LayerNormalization(name=f"norm_{i}") for i in range(2)]
        for norm in self._norms:
            norm.build(input_shape)
        self._drop = keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def call(self, sequence: tf.Tensor, mask=None, training=None) -> tf.Tensor:
        weights = _mask_of(mask, sequence)
        length = tf.shape(sequence)[1]
        x = sequence + self.positions[None, :length] if self.use_positions else sequence
        # Every query attends to the real keys only; a query row without any keeps zeros (masked below).
        attention_mask = weights[:, None, :] > 0
        if self.causal:
            # [T, T] lower triangle: key s is visible to query t iff s <= t.
            lower = tf.linalg.band_part(tf.ones(tf.stack([length, length])), -1, 0) > 0
            attention_mask = tf.logical_and(attention_mask, lower[None])
        if self.norm_first:
            normed = self._norms[0](x)
            x = x + self._drop(self._attention(normed, normed, attention_mask=attention_mask, training=training),
                               training=training)
            x = x + self._drop(self._ff[1](self._ff[0](self._norms[1](x))), training=training)
        else:
            attended = self._attention(x, x, attention_mask=attention_mask, training=training)
            x = self._norms[0](x + self._drop(attended, training=training))
            x = self._norms[1](x + self._drop(self._ff[1](self._ff[0](x)), training=training))
        return x * weights[:, :, None]

    def get_config(self) -> dict:
        return {**super().get_config(), "max_len": self.max_len, "num_heads": self.num_heads,
                "ff_units": self.ff_units, "dropout": self.dropout, "causal": self.causal,
                "positions": self.use_positions, "norm_first": self.norm_first}
