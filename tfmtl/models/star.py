"""STAR-style multi-domain model (Sheng et al., CIKM 2021): star-topology FCN plus an auxiliary network.

Also home of :func:`domain_ids`, which every domain-routed model uses to read the
domain index from the encoded features.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.features import CategoricalFeature, SpecError
from tfmtl.layers import MLP
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain import StarDense
from tfmtl.models.base import EncodedFeatures, MultiTaskModel
from tfmtl.models.registry import register_model


def domain_ids(features: EncodedFeatures, domain_feature: str) -> tuple[tf.Tensor, int]:
    """The domain index ``int32 [batch]`` and the number of domains, read from the spec's domain field.

    The domain feature must be categorical with a vocabulary; vocabulary
    position ``i`` is domain ``i`` (see :func:`tfmtl.datasets.movielens.domain_feature`
    for a fixed-order vocabulary). An out-of-vocabulary value is routed to
    domain 0.
    """
    spec = features.spec
    feature = spec.feature(domain_feature)
    if not isinstance(feature, CategoricalFeature) or feature.vocabulary is None:
        raise SpecError(f"domain feature '{domain_feature}' must be categorical with a vocabulary (not hashed)")
    position = [f.name for f in spec.fields].index(domain_feature)
    # Lookup id i + 1 is vocabulary entry i; id 0 (unknown) falls back to domain 0.
    index = tf.cast(tf.maximum(features.ids[:, position] - 1, 0), tf.int32)
    return index, len(feature.vocabulary)


@register_model("star")
@register
class STAR(MultiTaskModel):
    """Star topology: every layer's kernel is ``W_shared * W_domain``; plus an auxiliary network.

    ``logit_t = StarFCN_t(x; domain) + Aux_t(x)``: the star layers (``star_units``
    then one output unit per task) share knowledge across domains through
    ``W_shared`` while ``W_domain`` specialises them; the auxiliary MLP sees the
    whole input, the domain embedding included. Partitioned normalisation of
    the paper is left out.

    Args:
      domain_feature: the spec's domain field (categorical with a vocabulary).
      star_units: widths of the hidden star layers.
      aux_units: hidden widths of the auxiliary network; ``None`` drops it.

    Example:

    >>> from tfmtl.datasets import synthetic_domains
    >>> df, spec = synthetic_domains.multidomain_frame(200, num_domains=3)
    >>> STAR(spec, star_units=[8], aux_units=[4]).output_names
    ['task_0', 'task_1']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, domain_feature: str = "domain",
                 star_units: Sequence[int] = (256, 128), aux_units: Sequence[int] | None = (64,),
                 dropout: float = 0.0, **kwargs):
        check_arguments("STAR", units=dict(star_units=star_units), optional_units=dict(aux_units=aux_units or ()),
                        rates=dict(dropout=dropout))
        super().__init__(spec, tasks, domain_feature=domain_feature, star_units=list(star_units),
                         aux_units=None if aux_units is None else list(aux_units), dropout=dropout, **kwargs)

    def task_logits(self, features, num_tasks, *, domain_feature, star_units, aux_units, dropout):
        domain, num_domains = domain_ids(features, domain_feature)
        h = features.vector
        for i, units in enumerate(star_units):
            h = StarDense(num_domains, units, activation="relu", name=f"star_{i}")([h, domain])
            if dropout:
                h = keras.layers.Dropout(dropout, name=f"star_dropout_{i}")(h)
        logits = StarDense(num_domains, num_tasks, name="star_logits")([h, domain])
        if aux_units is not None:
            aux = MLP(aux_units, dropout=dropout, name="aux_mlp")(features.vector) if aux_units else features.vector
            logits = keras.layers.Add(name="star_plus_aux")([logits, keras.layers.Dense(num_tasks, name="aux")(aux)])
        return logits


__all__ = ["STAR", "domain_ids"]
