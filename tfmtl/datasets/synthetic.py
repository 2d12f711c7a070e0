"""Synthetic data with known structure, for tests and examples.

Example:

>>> df, spec = multitask_frame(100, seed=0)
>>> spec.label_names, len(df)
(['task_a', 'task_b'], 100)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfmtl.features import FeatureSpec, Label

# Toy frames keep the fields narrow: tests and doctests stay fast, and the fields they add by hand
# (CategoricalFeature, ListFeature: width 4 unless told) match them.
TOY_EMBEDDING_DIM = 4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def multitask_frame(n: int, seed: int = 0, task_correlation: float = 0.5) -> tuple[pd.DataFrame, FeatureSpec]:
    """Two binary tasks driven by a shared and a task-specific signal.

    ``task_correlation`` in [0, 1] is the share of the shared signal in each task's logit.
    """
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "black"], size=n)
    size = rng.integers(0, 5, size=n)
    x1 = rng.normal(size=n)
    x2 = rng.exponential(size=n)
    color_effect = pd.Series(color).map({"red": 1.0, "green": -1.0, "blue": 0.5, "black": 0.0}).to_numpy()
    shared = color_effect + x1
    logit_a = task_correlation * shared + (1 - task_correlation) * (size - 2.0)
    logit_b = task_correlation * shared + (1 - task_correlation) * (x2 - 1.0) * 2
    df = pd.DataFrame({
        "color": color, "size": size, "x1": x1, "x2": x2,
        "task_a": (rng.random(n) < _sigmoid(2 * logit_a)).astype(int),
        "task_b": (rng.random(n) < _sigmoid(2 * logit_b)).astype(int),
    })
    spec = FeatureSpec.from_dataframe(df, labels=[Label("task_a"), Label("task_b")], categorical=["size"],
                                      embedding_dim=TOY_EMBEDDING_DIM)
    return df, spec


def funnel_frame(n: int, seed: int = 0, ctr: float = 0.3, cvr: float = 0.3) -> tuple[pd.DataFrame, FeatureSpec]:
    """Exposures with a click -> conversion funnel; known propensities in ``p_click``/``p_conversion``.

    ``conversion`` is 1 only for clicked rows (click AND convert), as ESMM's
    CTCVR label over the entire exposure space.
    """
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 20, size=n)
    item = rng.integers(0, 30, size=n)
    price = rng.lognormal(size=n)
    user_effect = np.sin(user)
    item_effect = np.cos(item)
    p_click = _sigmoid(np.log(ctr / (1 - ctr)) + user_effect + item_effect)
    p_conversion = _sigmoid(np.log(cvr / (1 - cvr)) + item_effect - 0.5 * np.log(price))
    click = rng.random(n) < p_click
    conversion = click & (rng.random(n) < p_conversion)
    df = pd.DataFrame({"user": user.astype(str), "item": item.astype(str), "price": price,
                       "click": click.astype(int), "conversion": conversion.astype(int),
                       "p_click": p_click, "p_conversion": p_conversion})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("click"), Label("conversion")],
                                      exclude=["p_click", "p_conversion"], embedding_dim=TOY_EMBEDDING_DIM)
    return df, spec
