"""How far a test AUC can be trusted: DeLong's variance of AUCs and the paired test between two scorers.

A test AUC is an estimate from a finite test set; two models scored on the same
rows are compared by the difference of their AUCs and that difference's standard
error, which DeLong, DeLong & Clarke-Pearson (1988) derive from each positive's and
each negative's "placement" among the other class. Computed here with midranks as
in Sun & Xu (2014), O(n log n) per scorer, ties counted as half.

Example:

>>> import numpy as np
>>> y = np.array([1, 1, 0, 0])
>>> aucs, cov = delong_auc(y, np.array([0.9, 0.4, 0.5, 0.1]))
>>> float(aucs[0])
0.75
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata


def _placements(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC, and for each positive the share of negatives it outranks (V10), for each negative the share of
    positives that outrank it (V01); a tie counts one half."""
    m, n = len(positives), len(negatives)
    rank_all = rankdata(np.concatenate([positives, negatives]))
    rank_pos, rank_neg = rankdata(positives), rankdata(negatives)
    v10 = (rank_all[:m] - rank_pos) / n
    v01 = 1.0 - (rank_all[m:] - rank_neg) / m
    return float(v10.mean()), v10, v01


def delong_auc(labels: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The AUC of each scorer on ``labels`` (0/1, shape ``[n]``) and their ``[k, k]`` DeLong covariance.

    Raises:
        ValueError: no scorer, a scorer's length differs from the labels', or one class is absent.
    """
    labels = np.asarray(labels).ravel()
    if not scores:
        raise ValueError("delong_auc: pass at least one array of scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("delong_auc: labels must be 0 or 1")
    positive = labels == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError(f"delong_auc: labels need both classes, got {m} positives and {n} negatives")
    aucs, v10s, v01s = [], [], []
    for i, score in enumerate(scores):
        score = np.asarray(score, dtype=np.float64).ravel()
        if score.shape != labels.shape:
            raise ValueError(f"delong_auc: scores[{i}] has {score.size} values for {labels.size} labels")
        auc, v10, v01 = _placements(score[positive], score[~positive])
        aucs.append(auc)
        v10s.append(v10)
        v01s.append(v01)
    covariance = np.atleast_2d(np.cov(np.stack(v10s))) / m + np.atleast_2d(np.cov(np.stack(v01s))) / n
    return np.array(aucs), covariance


def paired_auc_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                          level: float = 0.95) -> dict[str, float]:
    """AUC(a) - AUC(b) on the same rows with its DeLong standard error, ``level`` interval and two-sided p.

    Returns ``auc_a``, ``auc_b``, ``se_a``, ``se_b`` (each AUC's own standard error), ``difference``,
    ``se``, ``ci_low``, ``ci_high`` and ``p``.
    """
    aucs, cov = delong_auc(labels, scores_a, scores_b)
    difference = float(aucs[0] - aucs[1])
    se = math.sqrt(max(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1], 0.0))
    z = float(norm.ppf(0.5 + level / 2.0))
    p = 1.0 if se == 0.0 else math.erfc(abs(difference) / se / math.sqrt(2.0))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "se_a": math.sqrt(cov[0, 0]),
            "se_b": math.sqrt(cov[1, 1]), "difference": difference, "se": se, "ci_low": difference - z * se,
            "ci_high": difference + z * se, "p": p}
