"""Evaluation metrics of multi-objective recommendation (MoRec) and per-task AUC helpers.

Top-K lists come from tensorflow-recommenders' retrieval layers
(:func:`retrieve_top_k`, a ``tfrs.layers.factorized_top_k.BruteForce`` index) or from a
score matrix (:func:`top_k_from_scores`). On lists ``top_k_ids [Q, K]`` of item ids and
the held-out items ``target_ids [Q]``:

* ``hit@K``: share of queries whose target is in the list;
* ``rhit@K``: revenue hit, ``mean_q hit_q * price[target_q]`` (price-weighted hit);
* ``min_hit@K``: least misery, the lowest hit@K over item groups (queries grouped by
  their target's group; empty groups ignored);
* ``pop_kl@K``: MoRec's Eq. 9, ``D_KL(Q || P) = sum_g Q_g log(Q_g / P_g)``, ``Q`` the target
  popularity-group distribution (the training data's), ``P`` that of all recommended
  items (lower is better; MoRec's tables print it x100, ``percent=True``).

A run is *valid* when its hit@K is at least 97% of the base model's
(:func:`is_valid`); ``Imp`` is the mean relative improvement over the base
(:func:`relative_improvement`). The functions are TensorFlow ops (graph-safe);
:func:`ranking_report` returns Python floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras

__all__ = ["retrieve_top_k", "top_k_from_scores", "hits_at_k", "hit_at_k", "revenue_hit_at_k", "group_hit_at_k",
           "min_group_hit_at_k", "popularity_distribution", "popularity_kl", "ranking_report", "is_valid",
           "relative_improvement", "auc_metrics", "task_aucs"]


# ---------------------------------------------------------------- top-K lists
def retrieve_top_k(query_embeddings, candidate_embeddings, k: int = 10, candidate_ids=None, exclude=None,
                   query_batch_size: int | None = None):
    """Exact top-K retrieval by dot product through ``tfrs.layers.factorized_top_k.BruteForce``.

    Args:
      query_embeddings: ``[Q, D]``.
      candidate_embeddings: ``[I, D]``.
      k: list length.
      candidate_ids: ``[I]`` identifiers returned instead of row indices.
      exclude: ``[Q, E]`` ids to leave out per query (e.g. the user's training items; pad
        ragged rows with an id that is no candidate, such as -1).
      query_batch_size: answer the queries in chunks of this size. tfrs compares every
        retrieved id with every excluded one (``Q x (k + E) x E`` booleans), so chunk
        when ``E`` is large (a user's whole history).

    Returns:
      ``(scores [Q, k], ids [Q, k])``, best first.

    >>> scores, ids = retrieve_top_k(tf.eye(2), tf.constant([[1., 0.], [0., 1.], [2., 0.]]), k=2)
    >>> ids.numpy().tolist()
    [[2, 0], [1, 0]]
    """
    import tensorflow_recommenders as tfrs  # imported late: it needs tf.keras to be Keras 2

    index = tfrs.layers.factorized_top_k.BruteForce(k=k)
    candidate_embeddings = tf.convert_to_tensor(candidate_embeddings, tf.float32)
    ids = None if candidate_ids is None else tf.convert_to_tensor(candidate_ids)
    index.index(candidate_embeddings, ids)
    queries = tf.convert_to_tensor(query_embeddings, tf.float32)
    if exclude is not None:
        exclude = tf.convert_to_tensor(exclude)
        # tfrs compares with ``==``: the row indices it uses without ids are int32, numpy ids int64.
        id_dtype = tf.int32 if ids is None else ids.dtype
        if exclude.dtype.is_integer and id_dtype.is_integer:
            exclude = tf.cast(exclude, id_dtype)
    num_queries = int(queries.shape[0])
    size = max(int(query_batch_size or num_queries), 1)
    if num_queries > size and num_queries % size:
        # Pad the last chunk to the common shape: tfrs' traced query function is then reused.
        pad = size - num_queries % size
        queries = tf.concat([queries, tf.zeros([pad, queries.shape[1]], queries.dtype)], 0)
        if exclude is not None:
            exclude = tf.concat([exclude, tf.repeat(exclude[:1], pad, axis=0)], 0)
    chunks = []
    for start in range(0, max(int(queries.shape[0]), 1), size):
        part = queries[start:start + size]
        if exclude is not None:
            chunks.append(index.query_with_exclusions(part, exclude[start:start + size], k=k))
        else:
            chunks.append(index(part, k=k))
    scores, ids = (chunks[0] if len(chunks) == 1 else
                   (tf.concat([c[0] for c in chunks], 0), tf.concat([c[1] for c in chunks], 0)))
    return scores[:num_queries], ids[:num_queries]


def top_k_from_scores(scores, k: int = 10, exclude_mask=None) -> tf.Tensor:
    """``[Q, k]`` item indices of the highest scores ``[Q, I]``; ``exclude_mask`` (True = skip).

    >>> top_k_from_scores([[0.1, 0.9, 0.5]], k=2).numpy().tolist()
    [[1, 2]]
    """
    scores = tf.convert_to_tensor(scores, tf.float32)
    if exclude_mask is not None:
        scores = tf.where(tf.convert_to_tensor(exclude_mask, tf.bool), tf.float32.min, scores)
    return tf.math.top_k(scores, k=k).indices


# ------------------------------------------------------------------- hits
def hits_at_k(top_k_ids, target_ids, k: int | None = None) -> tf.Tensor:
    """``[Q]`` float 1.0 where the target is among the first ``k`` (default: all) ids.

    >>> hits_at_k([[3, 1], [0, 2]], [1, 5]).numpy().tolist()
    [1.0, 0.0]
    """
    top_k_ids = tf.convert_to_tensor(top_k_ids)
    if k is not None:
        top_k_ids = top_k_ids[:, :k]
    targets = tf.cast(tf.reshape(target_ids, [-1, 1]), top_k_ids.dtype)
    return tf.cast(tf.reduce_any(tf.equal(top_k_ids, targets), axis=1), tf.float32)


def hit_at_k(top_k_ids, target_ids, k: int | None = None) -> tf.Tensor:
    """Hit@K: the mean of :func:`hits_at_k`."""
    return tf.reduce_mean(hits_at_k(top_k_ids, target_ids, k))


def revenue_hit_at_k(top_k_ids, target_ids, item_price, k: int | None = None) -> tf.Tensor:
    """rHit@K: ``mean_q hit_q * price[target_q]``.

    >>> float(revenue_hit_at_k([[3, 1], [0, 2]], [1, 2], item_price=[0., 2., 4., 1.]))
    3.0
    """
    prices = tf.gather(tf.convert_to_tensor(item_price, tf.float32), tf.reshape(target_ids, [-1]))
    return tf.reduce_mean(hits_at_k(top_k_ids, target_ids, k) * prices)


def group_hit_at_k(top_k_ids, target_ids, item_group, num_groups: int, k: int | None = None) -> tf.Tensor:
    """``[num_groups]`` Hit@K of the queries whose target is in each group (NaN: no query)."""
    groups = tf.gather(tf.convert_to_tensor(item_group, tf.int32), tf.reshape(target_ids, [-1]))
    hits = hits_at_k(top_k_ids, target_ids, k)
    sums = tf.math.unsorted_segment_sum(hits, groups, num_groups)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(hits), groups, num_groups)
    return tf.where(counts > 0, sums / tf.maximum(counts, 1.0), np.nan)


def min_group_hit_at_k(top_k_ids, target_ids, item_group, num_groups: int, k: int | None = None) -> tf.Tensor:
    """min-Hit@K: the worst group's Hit@K, over groups with at least one query.

    >>> float(min_group_hit_at_k([[3, 1], [0, 2], [1, 0]], [1, 3, 0], item_group=[0, 0, 1, 1], num_groups=2))
    0.0
    """
    per_group = group_hit_at_k(top_k_ids, target_ids, item_group, num_groups, k)
    return tf.reduce_min(tf.where(tf.math.is_nan(per_group), np.inf, per_group))


# ---------------------------------------------------------- popularity KL
def popularity_distribution(top_k_ids, item_group, num_groups: int, k: int | None = None) -> tf.Tensor:
    """``[num_groups]`` share of each popularity group among all recommended items."""
    top_k_ids = tf.convert_to_tensor(top_k_ids)
    if k is not None:
        top_k_ids = top_k_ids[:, :k]
    groups = tf.gather(tf.convert_to_tensor(item_group, tf.int32), tf.reshape(top_k_ids, [-1]))
    counts = tf.math.bincount(groups, minlength=num_groups, maxlength=num_groups, dtype=tf.float32)
    return counts / tf.maximum(tf.reduce_sum(counts), 1.0)


def popularity_kl(top_k_ids, item_group, target_distribution, k: int | None = None,
                  epsilon: float = 1e-10, percent: bool = False) -> tf.Tensor:
    """Pop-KL@K, MoRec's Eq. 9: ``D_KL(Q || P) = sum_g Q_g log(Q_g / P_g)``.

    ``Q`` is the (normalised) target distribution over popularity groups (MoRec: the
    training data's), ``P`` the share of each group among all recommended items. The
    direction matters: a target group that is never recommended (``P_g = 0 < Q_g``)
    costs ``Q_g log(Q_g / epsilon)``, a large penalty, where ``KL(P || Q)`` would ignore it.
    As in the official MoRec code (microsoft/UniRec ``cal_popkl_metric``), ``epsilon`` is
    added to both distributions; groups with ``Q_g = 0`` contribute 0.

    Args:
      top_k_ids: ``[Q, K]`` recommended item ids.
      item_group: ``[I]`` popularity group of each item id.
      target_distribution: ``[G]`` target weights ``Q`` (normalised here).
      k: cut-off (default: the whole list).
      epsilon: smoothing of ``P`` and ``Q`` inside the log.
      percent: return ``100 * KL`` (the unit of MoRec's tables, e.g. 142.54).

    >>> round(float(popularity_kl([[0, 1], [0, 2]], item_group=[0, 1, 1], target_distribution=[0.5, 0.5])), 6)
    0.0
    """
    target = tf.convert_to_tensor(target_distribution, tf.float32)
    if target.shape.rank != 1:
        raise ValueError(f"target_distribution must be 1-D [num_groups], got shape {target.shape}")
    target = target / tf.reduce_sum(target)
    p = popularity_distribution(top_k_ids, item_group, int(target.shape[0]), k)
    terms = tf.where(target > 0, target * tf.math.log((target + epsilon) / (p + epsilon)), 0.0)
    kl = tf.reduce_sum(terms)
    return 100.0 * kl if percent else kl


# ----------------------------------------------------------------- reports
def ranking_report(top_k_ids, target_ids, *, item_price=None, item_group=None, num_groups: int | None = None,
                   item_popularity_group=None, target_distribution=None, k: int | None = None) -> dict[str, float]:
    """The MoRec metrics that the given item attributes allow, as floats keyed ``name@K``.

    Keys: ``hit@K`` always; ``rhit@K`` with ``item_price``; ``min_hit@K`` with ``item_group``
    (``num_groups`` defaults to ``max + 1``); ``pop_kl@K`` with ``item_popularity_group``
    and ``target_distribution``.
    """
    top_k_ids = tf.convert_to_tensor(top_k_ids)
    k = int(top_k_ids.shape[1]) if k is None else int(k)
    report = {f"hit@{k}": float(hit_at_k(top_k_ids, target_ids, k))}
    if item_price is not None:
        report[f"rhit@{k}"] = float(revenue_hit_at_k(top_k_ids, target_ids, item_price, k))
    if item_group is not None:
        groups = num_groups if num_groups is not None else int(np.max(item_group)) + 1
        report[f"min_hit@{k}"] = float(min_group_hit_at_k(top_k_ids, target_ids, item_group, groups, k))
    if item_popularity_group is not None and target_distribution is not None:
        report[f"pop_kl@{k}"] = float(popularity_kl(top_k_ids, item_popularity_group, target_distribution, k))
    return report


def is_valid(hit: float, base_hit: float, tolerance: float = 0.97) -> bool:
    """MoRec's validity rule: the run keeps at least ``tolerance`` of the base model's Hit@K."""
    return float(hit) >= tolerance * float(base_hit)


def relative_improvement(metrics: Mapping[str, float], base: Mapping[str, float],
                         names: Iterable[str] | None = None,
                         lower_is_better: Sequence[str] = ("pop_kl",)) -> float:
    """Imp: the mean over ``names`` (default: the keys both share) of the relative improvement
    ``(m - b) / |b|``, or ``(b - m) / |b|`` for metrics whose name starts with one of
    ``lower_is_better``.

    >>> round(relative_improvement({"rhit@10": 1.1, "pop_kl@10": 0.5}, {"rhit@10": 1.0, "pop_kl@10": 1.0}), 6)
    0.3
    """
    names = [n for n in metrics if n in base] if names is None else list(names)
    if not names:
        raise ValueError("no metric in common with the base")
    gains = []
    for name in names:
        m, b = float(metrics[name]), float(base[name])
        if b == 0:
            raise ValueError(f"base value of {name!r} is 0: relative improvement undefined")
        sign = -1.0 if name.startswith(tuple(lower_is_better)) else 1.0
        gains.append(sign * (m - b) / abs(b))
    return float(np.mean(gains))


# --------------------------------------------------------------- task AUCs
def auc_metrics(tasks: Iterable[str], num_thresholds: int = 1000) -> dict[str, list[keras.metrics.Metric]]:
    """``compile(metrics=...)`` argument: one ROC AUC per task output (reported ``<task>_auc``)."""
    return {task: [keras.metrics.AUC(name="auc", num_thresholds=num_thresholds)] for task in tasks}


def task_aucs(y_true: Mapping[str, np.ndarray], y_pred: Mapping[str, np.ndarray],
              sample_weight: Mapping[str, np.ndarray] | None = None, num_thresholds: int = 1000) -> dict[str, float]:
    """``{task: ROC AUC}`` for every task in ``y_true`` (predictions e.g. from ``model.predict``).

    >>> {task: round(auc, 3) for task, auc in task_aucs({"ctr": [0, 0, 1, 1]}, {"ctr": [0.1, 0.4, 0.35, 0.8]}).items()}
    {'ctr': 0.75}
    """
    result = {}
    for task, labels in y_true.items():
        metric = keras.metrics.AUC(num_thresholds=num_thresholds)
        weight = None if sample_weight is None else np.reshape(sample_weight[task], [-1])
        metric.update_state(np.reshape(labels, [-1]), np.reshape(y_pred[task], [-1]), sample_weight=weight)
        result[task] = float(metric.result())
    return result
