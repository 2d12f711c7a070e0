"""Shared-Bottom: one shared MLP, one tower per task (Caruana, 1997)."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import MLP, TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("shared_bottom")
@register
class SharedBottom(MultiTaskModel):
    """``tower_k(MLP_shared(x))`` per task.

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: label names to predict (default: all labels of the spec).
      bottom_units: widths of the shared MLP (at least one).
      tower_units: hidden widths of each task tower.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.multitask_frame(200)
    >>> SharedBottom(spec, bottom_units=[8], tower_units=[4]).output_names
    ['task_a', 'task_b']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, bottom_units: Sequence[int] = (512, 256),
                 tower_units: Sequence[int] = (64,), batch_norm: bool = True, dropout: float = 0.0, **kwargs):
        check_arguments("SharedBottom", units=dict(bottom_units=bottom_units),
                        optional_units=dict(tower_units=tower_units), rates=dict(dropout=dropout))
        super().__init__(spec, tasks, bottom_units=list(bottom_units), tower_units=list(tower_units),
                         batch_norm=batch_norm, dropout=dropout, **kwargs)

    def task_logits(self, features, num_tasks, *, bottom_units, tower_units, batch_norm, dropout):
        bottom = MLP(bottom_units, batch_norm=batch_norm, dropout=dropout, name="shared_bottom")(features.vector)
        return TaskTowers(num_tasks, tower_units, batch_norm=batch_norm, dropout=dropout, name="towers")(bottom)
