"""ESMM (Ma et al., SIGIR 2018): CTR and CVR towers, trained on CTR and CTCVR over all exposures."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("esmm")
@register
class ESMM(MultiTaskModel):
    """Outputs ``ctr``, ``cvr`` and ``ctcvr = ctr * cvr``.

    ``tasks = [click_label, conversion_label]`` where the conversion label is
    "clicked and converted" over all exposures; the losses are BCE(click, ctr)
    and BCE(conversion, ctcvr).

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: ``[click_label, conversion_label]``.
      tower_units: hidden widths of the CTR and CVR towers.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.funnel_frame(300)
    >>> ESMM(spec, tasks=["click", "conversion"], tower_units=[8]).output_names
    ['ctr', 'cvr', 'ctcvr']
    """

    esmm_head = True

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, tower_units: Sequence[int] = (512, 256),
                 batch_norm: bool = True, dropout: float = 0.0, **kwargs):
        check_arguments("ESMM", optional_units=dict(tower_units=tower_units), rates=dict(dropout=dropout))
        super().__init__(spec, tasks, tower_units=list(tower_units), batch_norm=batch_norm, dropout=dropout,
                         **kwargs)

    def task_logits(self, features, num_tasks, *, tower_units, batch_norm, dropout):
        return TaskTowers(num_tasks, tower_units, batch_norm=batch_norm, dropout=dropout, name="towers")(
            features.vector)
