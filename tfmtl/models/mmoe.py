"""MMoE (Ma et al., KDD 2018): shared experts mixed by one gate per task."""

from __future__ import annotations

from collections.abc import Sequence

from tfmtl._keras import register
from tfmtl.layers import MixtureOfExperts, TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


@register_model("mmoe")
@register
class MMoE(MultiTaskModel):
    """``tower_k(sum_e g_k(x)_e f_e(x))`` per task.

    Args:
      num_experts: number of expert MLPs.
      expert_units: widths of each expert. (256, 128) gave the same census AUC as (512, 256) with 43 %
        fewer parameters and 0.0002-0.0007 more on the other tabular data sets (docs/training.md).
      gate_units: hidden widths of each gating MLP; ``()`` is the paper's linear
        softmax gate, ``(64, 64)`` a gating MLP of depth 3.
      tower_units: widths of each task tower.
      cross: tfmtl's default, ``"parallel"``, adds a DCN-v2 cross network's logit beside
        the experts' (see :class:`~tfmtl.models.base.MultiTaskModel`; with the spec's
        64 PLE bins it lifted every tabular benchmark data set, docs/training.md);
        ``None`` is the paper's MMoE.
      cross_layers: depth of that cross network; 3 (the other models' default is 2) lifted
        census income by 0.0004 over 3 seeds and left the other data sets within 0.0002
        (docs/training.md).

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.multitask_frame(200)
    >>> model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
    >>> model.compile(); _ = model.fit(df, epochs=1, verbose=0)
    >>> sorted(model.predict(df, verbose=0))
    ['task_a', 'task_b']
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, num_experts: int = 8,
                 expert_units: Sequence[int] = (256, 128), gate_units: Sequence[int] = (),
                 tower_units: Sequence[int] = (64,), batch_norm: bool = True, dropout: float = 0.0,
                 cross: str | None = "parallel", cross_layers: int = 3, **kwargs):
        check_arguments("MMoE", counts=dict(num_experts=num_experts), units=dict(expert_units=expert_units),
                        optional_units=dict(gate_units=gate_units, tower_units=tower_units),
                        rates=dict(dropout=dropout))
        super().__init__(spec, tasks, num_experts=num_experts, expert_units=list(expert_units),
                         gate_units=list(gate_units), tower_units=list(tower_units), batch_norm=batch_norm,
                         dropout=dropout, cross=cross, cross_layers=cross_layers, **kwargs)

    def task_logits(self, features, num_tasks, *, num_experts, expert_units, gate_units, tower_units, batch_norm,
                    dropout):
        mixed = MixtureOfExperts(num_experts, expert_units, num_tasks, gate_units=gate_units, batch_norm=batch_norm,
                                 dropout=dropout, name="mmoe")(features.vector)
        return TaskTowers(num_tasks, tower_units, batch_norm=batch_norm, dropout=dropout, name="towers")(mixed)
