"""Single-task DNN: the baseline every multi-task model is measured against."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import MLP, TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("single_task")
@register
class SingleTask(MultiTaskModel):
    """One DNN for one task: ``sigmoid(w . MLP(x))``.

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: the one label to predict.
      units: widths of the MLP (at least one).
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.multitask_frame(200)
    >>> SingleTask(spec, tasks=["task_a"], units=[8]).output_names
    ['task_a']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, units: Sequence[int] = (512, 256),
                 batch_norm: bool = True, dropout: float = 0.0, **kwargs):
        check_arguments("SingleTask", units=dict(units=units), rates=dict(dropout=dropout))
        super().__init__(spec, tasks, units=list(units), batch_norm=batch_norm, dropout=dropout, **kwargs)

    @classmethod
    def _resolve_tasks(cls, spec, tasks):
        tasks = super()._resolve_tasks(spec, tasks)
        if len(tasks) != 1:
            raise ValueError(f"SingleTask predicts one task; got tasks={tasks} (train one model per task)")
        return tasks

    def task_logits(self, features, num_tasks, *, units, batch_norm, dropout):
        hidden = MLP(units, batch_norm=batch_norm, dropout=dropout, name="dnn")(features.vector)
        return TaskTowers(num_tasks, name="towers")(hidden)
