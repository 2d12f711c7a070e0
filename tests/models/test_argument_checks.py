"""Models refuse bad constructor arguments (and unknown tasks) with a ValueError naming the argument."""

import pytest

from tfmtl.datasets import synthetic, synthetic_domains
from tfmtl.models import ESMM, MAMEX, PLE, STAR, DeepFM, M3oE, MMoE, SharedBottom, SingleTask


@pytest.fixture(scope="module")
def spec():
    return synthetic.multitask_frame(50)[1]


@pytest.fixture(scope="module")
def domain_spec():
    return synthetic_domains.multidomain_frame(60, num_domains=2, num_tasks=2)[1]


@pytest.mark.parametrize("cls, kwargs, message", [
    (MMoE, dict(num_experts=0), r"MMoE: num_experts must be an integer >= 1, got 0"),
    (MMoE, dict(expert_units=[]), r"MMoE: expert_units must hold at least one layer width"),
    (MMoE, dict(tower_units=[8, 0]), r"MMoE: tower_units must hold integers >= 1, got \[8, 0\]"),
    (MMoE, dict(dropout=1.5), r"MMoE: dropout must be a number in \[0, 1\)"),
    (PLE, dict(num_levels=0), r"PLE: num_levels must be an integer >= 1"),
    (PLE, dict(specific_experts=0, shared_experts=0), r"CGC: specific_experts \+ shared_experts must be >= 1"),
    (SharedBottom, dict(bottom_units=[]), r"SharedBottom: bottom_units"),
    (ESMM, dict(tower_units="64"), r"ESMM: tower_units must be a list of layer widths"),
    (DeepFM, dict(dnn_units=[]), r"DeepFM: dnn_units"),
    (SingleTask, dict(units=[0]), r"SingleTask: units"),
    (MAMEX, dict(modalities=[], num_experts=0), r"MAMEX: num_experts must be an integer >= 1"),
])
def test_bad_model_arguments(spec, cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(spec, **kwargs)


@pytest.mark.parametrize("cls, kwargs, message", [
    (M3oE, dict(num_experts=0), r"M3oE: num_experts must be an integer >= 1"),
    (M3oE, dict(structure_update_every=0), r"M3oE: structure_update_every must be an integer >= 1"),
    (M3oE, dict(expert_units=[]), r"M3oE: expert_units"),
    (STAR, dict(star_units=[]), r"STAR: star_units must hold at least one layer width"),
])
def test_bad_multidomain_arguments(domain_spec, cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(domain_spec, **kwargs)


def test_unknown_task_names_are_refused(spec):
    with pytest.raises(ValueError, match="nope"):
        MMoE(spec, tasks=["task_a", "nope"])
