"""Adapters that feed the authors' official code our benchmark splits (issue 33).

The official code lives outside the repository (see bench/official/README.md); these modules only
export our rows in the format it reads and run it from a path given on the command line.
"""


def seed_gap(official: dict, tfmtl: dict) -> dict:
    """Issue 33's gap rule, decided here once: ``official - tfmtl`` of the means, two seed spreads (twice the
    larger of the two standard deviations; a side without one, e.g. a single seed, counts as 0) and whether the
    difference exceeds them.

    >>> seed_gap({"mean": 0.78, "std": 0.001}, {"mean": 0.79, "std": 0.002})["exceeds"]
    True
    """
    difference = official["mean"] - tfmtl["mean"]
    spreads = 2 * max(official.get("std") or 0, tfmtl.get("std") or 0)
    return {"official_minus_tfmtl": difference, "two_seed_spreads": spreads, "exceeds": abs(difference) > spreads}
