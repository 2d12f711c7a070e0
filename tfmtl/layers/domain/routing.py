"""Routing by a domain id: split ``[features, domain_id]`` inputs and gather each example's own domain."""

from __future__ import annotations

import tensorflow as tf


def select_domain(values: tf.Tensor, domain: tf.Tensor) -> tf.Tensor:
    """Each example's own domain slice: values ``[batch, D, ...]``, domain ``[batch]`` -> ``[batch, ...]``."""
    return tf.gather(values, tf.cast(domain, tf.int32), axis=1, batch_dims=1)


def split_domain_inputs(inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError("expected inputs [features, domain_id]")
    return inputs[0], tf.reshape(inputs[1], [-1])


__all__ = ["select_domain", "split_domain_inputs"]
