"""The FSMD family: DeepFM's FM term stacked on multi-task bodies.

The FM is the paper's by default (``fm="shared"``): DeepFM's FM part unchanged, one FM
over all fields with the dense features included, the same term for every task.
``fm="per_task"`` is tfmtl's variant (per-task first-order and cross weights).
The paper has no DCN cross network, so ``FG`` leaves out the one :class:`MMoE` adds by
default (pass ``cross=`` to add it).

- ``Base``: FM + shared bottom.
- ``FG``: FM + MMoE gates per task.
- ``FS``: FM + PLE (multi-level shared and task experts).
- ``FSMD``: FS trained with the ESMM head (pCTCVR = pCTR x pCVR over all exposures).
"""

from __future__ import annotations

from tfmtl._keras import register
from tfmtl.models.mmoe import MMoE
from tfmtl.models.ple import PLE
from tfmtl.models.registry import register_model
from tfmtl.models.shared_bottom import SharedBottom

PAPER_EXPERT_UNITS = (512, 256)  # the FSMD paper's DNN (Table I)


def _paper_body(kwargs: dict) -> dict:
    """The body's arguments as the paper has it: an FM always, no DCN cross unless asked."""
    fm = kwargs.pop("fm", "shared")
    if fm is None or fm is False:
        raise ValueError("the FSMD family always has an FM: fm must be 'shared' (the paper's) or 'per_task'")
    return {"cross": None, **kwargs, "fm": fm}


@register_model("base")
@register
class Base(SharedBottom):
    """FSMD's Base: DeepFM + shared bottom. Arguments as :class:`SharedBottom`, plus ``fm``
    (``"shared"``, the paper's, default; or ``"per_task"``)."""

    def __init__(self, spec, tasks=None, **kwargs):
        super().__init__(spec, tasks, **_paper_body(kwargs))


@register_model("fg")
@register
class FG(MMoE):
    """FSMD's FG: FM + MMoE gates per task. Arguments as :class:`MMoE`, with the paper's experts of
    (512, 256) by default (MMoE's own default is smaller)."""

    def __init__(self, spec, tasks=None, **kwargs):
        super().__init__(spec, tasks, **{"expert_units": PAPER_EXPERT_UNITS, **_paper_body(kwargs)})


@register_model("fs")
@register
class FS(PLE):
    """FSMD's FS: FM + PLE. Arguments as :class:`PLE`."""

    def __init__(self, spec, tasks=None, **kwargs):
        super().__init__(spec, tasks, **_paper_body(kwargs))


@register_model("fsmd")
@register
class FSMD(FS):
    """FS with the ESMM head: ``tasks = [click_label, conversion_label]``; outputs ctr, cvr, ctcvr.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> df, spec = synthetic.funnel_frame(300)
    >>> sorted(FSMD(spec, tasks=["click", "conversion"], expert_units=[8], tower_units=[4]).output_names)
    ['ctcvr', 'ctr', 'cvr']
    """

    esmm_head = True
