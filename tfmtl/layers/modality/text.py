"""Raw text -> mean-pooled token embeddings, for a text modality without precomputed embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register


@register
class TextEncoder(keras.layers.Layer):
    """Raw text -> ``TextVectorization`` token ids -> embeddings -> masked mean ``[batch, embedding_dim]``.

    The vocabulary is a constructor argument (build it with :func:`text_vocabulary`
    on the training texts) so the layer's config alone rebuilds it. Empty
    texts give zeros.

    Args:
      vocabulary: the tokens (see :func:`text_vocabulary`).
      embedding_dim: width of the token embeddings and the output.
      sequence_length: tokens kept per text.
      standardize: ``TextVectorization``'s standardisation.

    Shapes: ``string [batch]`` -> ``[batch, embedding_dim]``.

    Example:

    >>> encoder = TextEncoder(vocabulary=["star", "wars", "toy", "story"], embedding_dim=4)
    >>> encoder(tf.constant(["Star Wars", ""])).shape.as_list()
    [2, 4]
    """

    def __init__(self, vocabulary: Sequence[str], embedding_dim: int = 16, sequence_length: int = 16,
                 standardize: str = "lower_and_strip_punctuation", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = [str(token) for token in vocabulary]
        self.embedding_dim = int(embedding_dim)
        self.sequence_length = int(sequence_length)
        self.standardize = standardize
        self.vectorize = keras.layers.TextVectorization(vocabulary=self.vocabulary, standardize=standardize,
                                                        output_mode="int", output_sequence_length=sequence_length)
        # + 2: the padding id 0 and the out-of-vocabulary id 1 TextVectorization adds.
        self.embedding = keras.layers.Embedding(len(self.vocabulary) + 2, self.embedding_dim)

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        ids = self.vectorize(tf.reshape(texts, [-1]))
        mask = tf.cast(ids > 0, self.compute_dtype)[:, :, None]
        total = tf.reduce_sum(self.embedding(ids) * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary": self.vocabulary, "embedding_dim": self.embedding_dim,
                "sequence_length": self.sequence_length, "standardize": self.standardize}


def text_vocabulary(texts: Sequence[str], max_tokens: int | None = None,
                    standardize: str = "lower_and_strip_punctuation") -> list[str]:
    """The :class:`TextEncoder` vocabulary of ``texts`` (most frequent first, at most ``max_tokens``)."""
    vectorize = keras.layers.TextVectorization(max_tokens=None if max_tokens is None else max_tokens + 2,
                                               standardize=standardize)
    vectorize.adapt(tf.constant([str(t) for t in texts]))
    return [token for token in vectorize.get_vocabulary() if token not in ("", "[UNK]")]


__all__ = ["TextEncoder", "text_vocabulary"]
