"""Field embeddings: every field's table packed into one table with offsets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register


@register
class FieldEmbedding(keras.layers.Layer):
    """Embeds F categorical fields with one gather from one packed table.

    One table (rows = sum of field sizes) and per-field offsets replace F
    separate ``Embedding`` layers: one gather per batch instead of F.

    Args:
      field_sizes: number of ids of each field.
      embedding_dim: width D of every field's embedding.

    Shapes: ids ``int [batch, F]`` (field-local ids) -> ``float [batch, F, D]``.
    With ``field=k`` in ``call``, ids of any shape (e.g. a padded list ``[batch, T]``)
    are all ids of field ``k`` -> ``[..., D]``; negative ids (padding) embed as id 0
    and are left to the caller's mask.

    Example:

    >>> layer = FieldEmbedding([3, 5], embedding_dim=4)
    >>> layer(tf.constant([[0, 4], [2, 1]])).shape.as_list()
    [2, 2, 4]
    >>> layer(tf.constant([[4, 1, -1]]), field=1).shape.as_list()
    [1, 3, 4]
    """

    def __init__(self, field_sizes: Sequence[int], embedding_dim: int, embeddings_initializer="uniform",
                 embeddings_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not field_sizes or min(field_sizes) < 1:
            raise ValueError(f"FieldEmbedding: field_sizes must be non-empty and >= 1, got {list(field_sizes)}")
        self.field_sizes = [int(s) for s in field_sizes]
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self._offsets = tf.constant(np.concatenate([[0], np.cumsum(self.field_sizes)[:-1]]), tf.int64)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(sum(self.field_sizes), self.embedding_dim),
            initializer=self.embeddings_initializer, regularizer=self.embeddings_regularizer)
        super().build(input_shape)

    def call(self, ids: tf.Tensor, field: int | None = None) -> tf.Tensor:
        ids = tf.cast(ids, tf.int64)
        if field is None:
            return self._lookup(ids + self._offsets)
        if not 0 <= field < len(self.field_sizes):
            raise ValueError(f"FieldEmbedding: field must be in [0, {len(self.field_sizes)}), got {field}")
        return self._lookup(tf.maximum(ids, 0) + self._offsets[field])

    def _lookup(self, rows: tf.Tensor) -> tf.Tensor:
        # embedding_lookup, not tf.gather: under ParameterServerStrategy with a variable_partitioner the
        # table is a ShardedVariable, whose tf.gather only takes 1-D ids; embedding_lookup dispatches to
        # a per-shard gather for ids of any shape (and is tf.gather for a plain variable).
        return tf.nn.embedding_lookup(self.embeddings, rows)

    def get_config(self) -> dict:
        return {**super().get_config(), "field_sizes": self.field_sizes, "embedding_dim": self.embedding_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer)}
