"""with_weighting / make_weighting: a weighting scheme by name, as the CLI and the TFX Trainer choose it."""

import pytest

from tfmtl.datasets import synthetic
from tfmtl.models import SharedBottom
from tfmtl.training import (
    MultiObjectiveModel,
    PIDWeighting,
    StaticWeights,
    UncertaintyWeighting,
    base_model,
    make_weighting,
    with_weighting,
)


@pytest.fixture(scope="module")
def model():
    _, spec = synthetic.multitask_frame(50)
    return SharedBottom(spec, bottom_units=[4], tower_units=[2])


def test_none_is_the_model_itself(model):
    assert with_weighting(model) is model and base_model(model) is model


def test_pid_wraps_every_output_with_the_controller(model):
    wrapped = with_weighting(model, "pid", accuracy_objective="task_b", set_point=0.4, kp=0.02,
                             weights={"task_a": 2.0}, auxiliary_scale=0.5)
    assert isinstance(wrapped, MultiObjectiveModel) and base_model(wrapped) is model
    assert sorted(wrapped.objectives) == ["task_a", "task_b"] and wrapped.accuracy_objective == "task_b"
    weighting = wrapped.weighting
    assert isinstance(weighting, PIDWeighting) and weighting.accuracy_objective == "task_b"
    assert weighting.controller.set_point == 0.4 and weighting.controller.kp == 0.02
    assert weighting._q == {"task_a": 1.0}  # auxiliary_scale 0.5 * preference 2.0


def test_static_and_uncertainty(model):
    static = with_weighting(model, "static", weights={"task_a": 3.0}).weighting
    assert isinstance(static, StaticWeights) and static.weights_by_objective == {"task_a": 3.0}
    assert isinstance(with_weighting(model, "uncertainty").weighting, UncertaintyWeighting)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weighting="bogus"), "weighting must be one of"),
    (dict(weighting="pid"), "needs set_point"),
    (dict(weighting="pid", set_point=0.3, accuracy_objective="nope"), "accuracy_objective 'nope'"),
    (dict(weighting="static", weights={"nope": 1.0}), r"weights name \['nope'\]"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_weighting(objectives=["task_a", "task_b"], **kwargs)
