"""Composite layers refuse bad constructor arguments with a ValueError naming the layer and the argument."""

import pytest

from tfmtl.layers import (
    CGC,
    MLP,
    PLE,
    DomainExpertMixing,
    DomainTaskTowers,
    ExpertGates,
    M3oEExperts,
    MixtureOfExperts,
    StarDense,
    TaskTowers,
)
from tfmtl.layers._checks import check_count, check_rate, check_units

CASES = [
    (lambda: MixtureOfExperts(num_experts=0, expert_units=[8], num_tasks=2),
     r"MixtureOfExperts: num_experts must be an integer >= 1, got 0"),
    (lambda: MixtureOfExperts(num_experts=2, expert_units=[], num_tasks=2),
     r"MixtureOfExperts: expert_units must hold at least one layer width, got \[\]"),
    (lambda: MixtureOfExperts(num_experts=2, expert_units=[8], num_tasks=0), r"MixtureOfExperts: num_tasks"),
    (lambda: MixtureOfExperts(num_experts=2, expert_units=[8], num_tasks=2, dropout=1.0),
     r"MixtureOfExperts: dropout must be a number in \[0, 1\), got 1.0"),
    (lambda: ExpertGates(num_gates=2, num_experts=0), r"ExpertGates: num_experts must be an integer >= 1"),
    (lambda: ExpertGates(num_gates=2, num_experts=3, hidden_units=[0]),
     r"ExpertGates: hidden_units must hold integers >= 1, got \[0\]"),
    (lambda: TaskTowers(num_tasks=0), r"TaskTowers: num_tasks must be an integer >= 1"),
    (lambda: TaskTowers(num_tasks=2, units=8), r"TaskTowers: units must be a list of layer widths, got 8"),
    (lambda: MLP([]), r"MLP: units must hold at least one layer width"),
    (lambda: MLP([4], dropout=-0.1), r"MLP: dropout must be a number in \[0, 1\)"),
    (lambda: CGC(num_tasks=2, specific_experts=0, shared_experts=0, expert_units=[4]),
     r"CGC: specific_experts \+ shared_experts must be >= 1"),
    (lambda: CGC(num_tasks=2, specific_experts=-1, shared_experts=1, expert_units=[4]),
     r"CGC: specific_experts must be an integer >= 0, got -1"),
    (lambda: CGC(num_tasks=2, specific_experts=1, shared_experts=1, expert_units=[]), r"CGC: expert_units"),
    (lambda: PLE(num_levels=0, num_tasks=2, specific_experts=1, shared_experts=1, expert_units=[4]),
     r"PLE: num_levels must be an integer >= 1, got 0"),
    (lambda: StarDense(num_domains=0, units=4), r"StarDense: num_domains must be an integer >= 1"),
    (lambda: DomainExpertMixing(num_domains=2, num_tasks=2, num_experts=0, expert_units=[4]),
     r"DomainExpertMixing: num_experts"),
    (lambda: M3oEExperts(num_domains=0, num_tasks=2, num_experts=2, expert_units=[4]), r"M3oEExperts: num_domains"),
    (lambda: M3oEExperts(num_domains=2, num_tasks=2, num_experts=2, expert_units=[]), r"M3oEExperts: expert_units"),
    (lambda: DomainTaskTowers(num_domains=2, num_tasks=0), r"DomainTaskTowers: num_tasks"),
]


@pytest.mark.parametrize("make, message", CASES)
def test_bad_arguments_name_the_layer_and_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_checks_return_clean_values_and_refuse_bools_and_strings():
    assert check_count("X", "n", 3) == 3 and check_units("X", "u", (4, 2)) == [4, 2]
    assert check_rate("X", "r", 0) == 0.0
    with pytest.raises(ValueError, match="X: n must be an integer >= 1, got True"):
        check_count("X", "n", True)
    with pytest.raises(ValueError, match="X: u must be a list of layer widths, got '64'"):
        check_units("X", "u", "64")
    with pytest.raises(ValueError, match=r"X: u must hold integers >= 1, got \[4, 2.5\]"):
        check_units("X", "u", [4, 2.5])
