"""DeepFM (Guo et al., 2017): FM first and second order plus a DNN on the same embeddings."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import GroupedMLP, TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("deepfm")
@register
class DeepFM(MultiTaskModel):
    """``sigmoid(y_FM,k + y_DNN,k)`` per task; every task has its own DNN and FM
    weights, and all share the field embeddings.

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: label names to predict (default: all labels of the spec).
      dnn_units: widths of each task's DNN (at least one).
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.multitask_frame(200)
    >>> DeepFM(spec, dnn_units=[8]).output_names
    ['task_a', 'task_b']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, dnn_units: Sequence[int] = (512, 256),
                 batch_norm: bool = True, dropout: float = 0.0, **kwargs):
        check_arguments("DeepFM", units=dict(dnn_units=dnn_units), rates=dict(dropout=dropout))
        kwargs["fm"] = True
        super().__init__(spec, tasks, dnn_units=list(dnn_units), batch_norm=batch_norm, dropout=dropout, **kwargs)

    def task_logits(self, features, num_tasks, *, dnn_units, batch_norm, dropout):
        deep = GroupedMLP(num_tasks, dnn_units, batch_norm=batch_norm, dropout=dropout, name="dnn")(features.vector)
        return TaskTowers(num_tasks, name="deep_logits")(deep)
