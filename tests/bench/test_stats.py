"""bench/_stats.py: DeLong's AUC variance and the paired test, against hand calculations and their definition."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench import _stats


def _delong_by_definition(labels, *scores):
    """DeLong (1988) as written: every positive against every negative, a tie worth 1/2; O(m n)."""
    positive = labels == 1
    v10s, v01s, aucs = [], [], []
    for score in scores:
        pos, neg = score[positive], score[~positive]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    cov = np.atleast_2d(np.cov(np.stack(v10s))) / positive.sum() + np.atleast_2d(np.cov(np.stack(v01s))) / (
        ~positive).sum()
    return np.array(aucs), cov


def test_a_four_row_example_worked_by_hand():
    # Positives 0.9 and 0.4 outrank 2 and 1 of the negatives (0.5, 0.1): V10 = (1, 0.5), AUC 0.75;
    # negatives are outranked by 1 and 2 positives: V01 = (0.5, 1). var = 0.125/2 + 0.125/2.
    aucs, cov = _stats.delong_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1]))
    assert aucs.tolist() == [0.75]
    assert cov.shape == (1, 1) and cov[0, 0] == pytest.approx(0.125)


def test_midranks_give_the_definition_and_sklearns_auc_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    a = np.round(labels + rng.normal(0, 1.0, 300), 1)  # rounded: many ties
    b = np.round(0.5 * labels + a * 0.3 + rng.normal(0, 1.0, 300), 1)
    aucs, cov = _stats.delong_auc(labels, a, b)
    want_aucs, want_cov = _delong_by_definition(labels, a, b)
    np.testing.assert_allclose(aucs, want_aucs, rtol=1e-12)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-10)
    assert aucs[0] == pytest.approx(roc_auc_score(labels, a), abs=1e-12)


def test_the_standard_error_matches_the_spread_of_auc_over_fresh_test_sets():
    rng = np.random.default_rng(1)
    estimates, errors = [], []
    for _ in range(300):
        labels = (rng.random(400) < 0.3).astype(int)
        scores = labels * 1.2 + rng.normal(0, 1, 400)
        aucs, cov = _stats.delong_auc(labels, scores)
        estimates.append(aucs[0])
        errors.append(math.sqrt(cov[0, 0]))
    assert np.std(estimates) == pytest.approx(np.mean(errors), rel=0.15)


def test_the_paired_difference_is_antisymmetric_and_zero_against_itself():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 500)
    a, b = labels + rng.normal(0, 1, 500), labels + rng.normal(0, 1.5, 500)
    ab, ba = _stats.paired_auc_difference(labels, a, b), _stats.paired_auc_difference(labels, b, a)
    assert ab["difference"] == pytest.approx(-ba["difference"]) and ab["se"] == pytest.approx(ba["se"])
    assert ab["difference"] == pytest.approx(roc_auc_score(labels, a) - roc_auc_score(labels, b))
    assert ab["ci_low"] == pytest.approx(ab["difference"] - 1.959964 * ab["se"], rel=1e-6)
    assert 0 < ab["p"] < 0.05  # noise 1.0 against 1.5 on 500 rows: a real difference
    same = _stats.paired_auc_difference(labels, a, a)
    assert same["difference"] == 0.0 and same["se"] == 0.0 and same["p"] == 1.0


@pytest.mark.parametrize("labels, scores, message", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "both classes, got 3 positives and 0 negatives"),
    ([1, 0, 2], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
    ([1, 0, 0], [0.1, 0.2], r"scores\[0\] has 2 values for 3 labels"),
])
def test_bad_input_is_named(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        _stats.delong_auc(np.array(labels), np.array(scores))

