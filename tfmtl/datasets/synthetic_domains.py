"""Synthetic multi-domain and multi-modal data with known structure, for tests and examples.

* :func:`multidomain_frame`: domains x tasks whose label functions share a
  controllable part across domains and across tasks.
* :func:`multimodal_frame`: user-item exposures whose items are described by
  modalities of controllable informativeness, optionally missing.

Example:

>>> df, spec = multidomain_frame(100, num_domains=2, num_tasks=3)
>>> spec.label_names, sorted(df["domain"].unique())
(['task_0', 'task_1', 'task_2'], [0, 1])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from tfmtl.datasets.synthetic import TOY_EMBEDDING_DIM
from tfmtl.features import CategoricalFeature, FeatureSpec, Label

_WORDS = 12  # words per latent direction in the synthetic titles


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def label_weights(num_domains: int, num_tasks: int, latent_dim: int, domain_correlation: float,
                  task_correlation: float, rng: np.random.Generator) -> np.ndarray:
    """Weight vectors ``[D, T, K]`` with the given expected correlations.

    ``w_dt = a g + b u_d + c v_t + e n_dt`` with independent standard normal
    ``g, u_d, v_t, n_dt``; ``a^2 = rho_D rho_T``, ``b^2 = rho_T (1 - rho_D)``,
    ``c^2 = rho_D (1 - rho_T)``, ``e^2 = (1 - rho_D)(1 - rho_T)``, so two domains'
    weights for one task correlate by ``rho_D`` and two tasks' weights in one
    domain by ``rho_T``.
    """
    for name, value in (("domain_correlation", domain_correlation), ("task_correlation", task_correlation)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    rd, rt = domain_correlation, task_correlation
    a, b, c, e = np.sqrt([rd * rt, rt * (1 - rd), rd * (1 - rt), (1 - rd) * (1 - rt)])
    shared = rng.normal(size=(1, 1, latent_dim))
    per_domain = rng.normal(size=(num_domains, 1, latent_dim))
    per_task = rng.normal(size=(1, num_tasks, latent_dim))
    noise = rng.normal(size=(num_domains, num_tasks, latent_dim))
    return a * shared + b * per_domain + c * per_task + e * noise


def multidomain_frame(n: int, num_domains: int = 3, num_tasks: int = 2, domain_correlation: float = 0.5,
                      task_correlation: float = 0.5, seed: int = 0, latent_dim: int = 6, num_users: int = 40,
                      num_items: int = 60, strength: float = 2.0) -> tuple[pd.DataFrame, FeatureSpec]:
    """Rows with a ``domain`` (0..D-1), features ``user, item, x1..x3`` and labels ``task_0..task_{T-1}``.

    Each row's latent signals ``s`` (``latent_dim``: user and item effects plus
    a projection of ``x``) give ``P(task_t) = sigmoid(strength * s . w_{d,t})`` for
    its domain d, with ``w`` from :func:`label_weights`. The true probabilities
    are in ``p_task_t``. ``domain`` is a spec feature with the fixed vocabulary
    ``0..D-1`` (vocabulary position = domain index).
    """
    rng = np.random.default_rng(seed)
    weights = label_weights(num_domains, num_tasks, latent_dim, domain_correlation, task_correlation, rng)
    weights /= np.sqrt(latent_dim)
    user = rng.integers(0, num_users, size=n)
    item = rng.integers(0, num_items, size=n)
    x = rng.normal(size=(n, 3))
    signals = (rng.normal(size=(num_users, latent_dim))[user] + rng.normal(size=(num_items, latent_dim))[item]
               + x @ rng.normal(size=(3, latent_dim))) / np.sqrt(3.0)
    domain = rng.integers(0, num_domains, size=n)
    logits = strength * np.einsum("nk,ntk->nt", signals, weights[domain])
    probabilities = _sigmoid(logits)
    labels = rng.random(probabilities.shape) < probabilities
    df = pd.DataFrame({"user": user.astype(str), "item": item.astype(str), "x1": x[:, 0], "x2": x[:, 1],
                       "x3": x[:, 2], "domain": domain.astype(np.int64)})
    for t in range(num_tasks):
        df[f"task_{t}"] = labels[:, t].astype(np.int64)
        df[f"p_task_{t}"] = probabilities[:, t]
    spec = FeatureSpec.from_dataframe(df, labels=[Label(f"task_{t}") for t in range(num_tasks)],
                                      categorical=["user", "item"], numeric=["x1", "x2", "x3"],
                                      exclude=["domain"] + [f"p_task_{t}" for t in range(num_tasks)],
                                      embedding_dim=TOY_EMBEDDING_DIM)
    domain_field = CategoricalFeature("domain", vocabulary=tuple(range(num_domains)), dtype="int64")
    return df, FeatureSpec(spec.features + (domain_field,), spec.labels)


def multimodal_frame(n: int, modalities: Mapping[str, int] | None = None,
                     informativeness: Mapping[str, float] | None = None, missing_rate: float = 0.0,
                     text: bool = False, num_users: int = 40, num_items: int = 80, latent_dim: int = 4,
                     seed: int = 0) -> tuple[pd.DataFrame, FeatureSpec, dict]:
    """User-item exposures with ``click`` and ``conversion`` labels and item modalities.

    Items have latent vectors ``z``; ``P(click) = sigmoid(2 u . z)`` and a
    conversion needs a click. Modality m of an item is
    ``x_m = i_m z A_m + sqrt(1 - i_m^2) noise`` (``i_m`` its informativeness in
    [0, 1]) in columns ``<m>_0..``; each (item, modality) is missing (NaN) with
    probability ``missing_rate``. ``text=True`` adds a ``title`` column whose
    words name the item's strongest latent direction (empty when missing).

    Returns ``(df, spec, modalities)``: the spec holds the user-side features
    (``user``, ``age``); ``modalities`` maps a name to its column list, or to
    ``"title"`` for the text (the form :class:`~tfmtl.models.MAMEX` takes).
    ``item`` stays in the frame (not in the spec) for cold-start splits.
    """
    modalities = dict(modalities or {"text_emb": 8, "image": 8, "meta": 4})
    informativeness = {m: 1.0 for m in modalities} | dict(informativeness or {})
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(num_users, latent_dim))
    items = rng.normal(size=(num_items, latent_dim))
    user = rng.integers(0, num_users, size=n)
    item = rng.integers(0, num_items, size=n)
    affinity = np.sum(users[user] * items[item], axis=1) / np.sqrt(latent_dim)
    click = rng.random(n) < _sigmoid(2.0 * affinity)
    conversion = click & (rng.random(n) < _sigmoid(affinity + items[item, 0]))
    age = 20 + 40 * _sigmoid(users[user, 0]) + rng.normal(scale=2.0, size=n)
    df = pd.DataFrame({"user": user.astype(str), "age": age, "item": item.astype(str),
                       "click": click.astype(np.int64), "conversion": conversion.astype(np.int64)})
    columns = {}
    for name, dim in modalities.items():
        share = float(informativeness[name])
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"informativeness of '{name}' must be in [0, 1], got {share}")
        values = share * items @ rng.normal(size=(latent_dim, dim)) / np.sqrt(latent_dim)
        values += np.sqrt(1 - share**2) * rng.normal(size=(num_items, dim))
        values[rng.random(num_items) < missing_rate] = np.nan
        columns[name] = [f"{name}_{j}" for j in range(dim)]
        for j, column in enumerate(columns[name]):
            df[column] = values[item, j]
    if text:
        direction = np.argmax(np.abs(items), axis=1) * 2 + (items[np.arange(num_items), np.argmax(np.abs(items), 1)]
                                                            > 0)
        words = [f"w{d}_{rng.integers(_WORDS)} w{d}_{rng.integers(_WORDS)} noise{rng.integers(50)}" for d in direction]
        titles = np.where(rng.random(num_items) < missing_rate, "", np.asarray(words, dtype=object))
        df["title"] = titles[item]
        columns["title"] = "title"
    spec = FeatureSpec.from_dataframe(df[["user", "age", "click", "conversion"]],
                                      labels=[Label("click"), Label("conversion")], embedding_dim=TOY_EMBEDDING_DIM)
    return df, spec, columns


__all__ = ["label_weights", "multidomain_frame", "multimodal_frame"]
