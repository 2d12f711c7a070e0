"""AITM (Xi et al., KDD 2021): per-step towers with adaptive information transfer along the funnel."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import keras, register
from tfmtl.features import SpecError
from tfmtl.layers import AITM as AITMLayer
from tfmtl.layers import MLP, AITMCalibrator, AITMHead
from tfmtl.models.base import ESMM_OUTPUTS, MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("aitm")
@register(name="AITMModel")
class AITM(MultiTaskModel):
    """Outputs ``ctr``, ``cvr`` and ``ctcvr`` like :class:`~tfmtl.models.ESMM`.

    ``tasks = [click_label, conversion_label]`` (conversion = clicked and
    converted, over all exposures). Each step has its own tower on the shared
    embeddings; the conversion tower's output is fused with the transferred click
    tower output by :class:`tfmtl.layers.AITM`; the losses are BCE(click, ctr),
    BCE(conversion, ctcvr) and ``alpha`` times the behavioural expectation
    calibrator ``max(ctcvr - ctr, 0)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.funnel_frame(300)
    >>> list(AITM(spec, tasks=["click", "conversion"], tower_units=[8]).output)
    ['ctr', 'cvr', 'ctcvr']

    Args:
        tower_units: widths of each step's tower (the official code: 128, 64, 32).
        alpha: weight of the calibrator penalty.
        dropout: dropout in the towers and after the transfer function.
    """

    esmm_head = True

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, tower_units: Sequence[int] = (128, 64, 32),
                 alpha: float = 0.6, batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        if kwargs.get("fm"):
            raise SpecError("AITM: fm=True is not supported (the calibrator acts on the towers' logits)")
        if not tower_units:
            raise ValueError("AITM: tower_units must have at least one width")
        super().__init__(spec, tasks, tower_units=list(tower_units), alpha=float(alpha), batch_norm=batch_norm,
                         dropout=dropout, **kwargs)

    def task_logits(self, features, num_tasks, *, tower_units, alpha, batch_norm, dropout):
        click, conversion = (MLP(tower_units, batch_norm=batch_norm, dropout=dropout, name=f"tower_{i}")(
            features.vector) for i in range(num_tasks))
        fused = AITMLayer(dropout=dropout, name="aitm")([click, conversion])
        logits = keras.layers.Concatenate(name="logits")([keras.layers.Dense(1, name="click_logit")(click),
                                                           keras.layers.Dense(1, name="conversion_logit")(fused)])
        return AITMCalibrator(alpha, from_logits=True, name="calibrator")(logits)

    def _head(self, logits, tasks):
        probabilities = AITMHead(name="aitm_head")(logits)
        return {name: keras.layers.Activation("linear", name=name)(probabilities[name]) for name in ESMM_OUTPUTS}
