"""PLE (Tang et al., RecSys 2020): stacked CGC levels of task-specific and shared experts."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import PLE as PLELayer
from tfmtl.layers import TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("ple")
# Not "tfmtl>PLE": that name belongs to the PLE layer, and one name must not serve two classes.
@register(name="PLEModel")
class PLE(MultiTaskModel):
    """Progressive Layered Extraction; ``num_levels=1`` is CGC.

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: label names to predict (default: all labels of the spec).
      num_levels: extraction levels (>= 1).
      specific_experts: experts of each task per level.
      shared_experts: shared experts per level.
      expert_units: widths of every expert.
      gate_units: hidden widths of each gate (``()``: linear softmax gate).
      tower_units: hidden widths of each task tower.
      batch_norm: batch normalisation after each hidden dense layer.
      dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.multitask_frame(200)
    >>> PLE(spec, num_levels=2, expert_units=[8], tower_units=[4]).output_names
    ['task_a', 'task_b']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, num_levels: int = 2, specific_experts: int = 2,
                 shared_experts: int = 2, expert_units: Sequence[int] = (512, 256), gate_units: Sequence[int] = (),
                 tower_units: Sequence[int] = (64,), batch_norm: bool = True, dropout: float = 0.0, **kwargs):
        check_arguments("PLE", counts=dict(num_levels=num_levels), units=dict(expert_units=expert_units),
                        optional_units=dict(gate_units=gate_units, tower_units=tower_units),
                        rates=dict(dropout=dropout))
        super().__init__(spec, tasks, num_levels=num_levels, specific_experts=specific_experts,
                         shared_experts=shared_experts, expert_units=list(expert_units), gate_units=list(gate_units),
                         tower_units=list(tower_units), batch_norm=batch_norm, dropout=dropout, **kwargs)

    def task_logits(self, features, num_tasks, *, num_levels, specific_experts, shared_experts, expert_units,
                    gate_units, tower_units, batch_norm, dropout):
        extracted = PLELayer(num_levels, num_tasks, specific_experts, shared_experts, expert_units,
                             gate_units=gate_units, batch_norm=batch_norm, dropout=dropout, name="ple")(features.vector)
        return TaskTowers(num_tasks, tower_units, batch_norm=batch_norm, dropout=dropout, name="towers")(extracted)
