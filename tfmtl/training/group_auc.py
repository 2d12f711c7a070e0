"""Group AUC (GAUC): the ROC AUC of each user (or any group), averaged with a weight per group.

``GAUC = sum_g w_g AUC_g / sum_g w_g`` over the groups that hold both classes; a group with only
positives or only negatives has no AUC and is skipped, as in DIN (Zhou et al., KDD 2018, Eq. 8) and
EasyRec's ``gauc``. The weight ``w_g`` is the group's impressions (the sum of its sample weights,
its row count without them: DIN's and EasyRec's ``mean_by_sample_num``), its clicks (the sum of its
positives' weights: ``mean_by_positive_num``) or 1 (``uniform``: EasyRec's ``mean``).

Within a group the AUC is the weighted Mann-Whitney statistic with ties counted one half, exactly
what ``sklearn.metrics.roc_auc_score(y, score, sample_weight=w)`` returns.

:class:`GroupAUC` is a streaming Keras metric. Its state is exact: every (group, label, score,
weight) row it has seen, not per-group histograms over fixed thresholds as ``keras.metrics.AUC``
keeps. Histograms cost ``groups x thresholds`` memory, which is largest exactly where GAUC is used
(a million users x 200 thresholds = 200M counters) and coarse for a user with a handful of
impressions; the exact rows cost 16 bytes per row and give sklearn's value. Because the state is
every row, batches that split a user are merged correctly: the AUC is computed only in
:meth:`GroupAUC.result`, over all rows seen since the last reset. ``result`` sorts the rows seen so
far (``O(n log n)``), and Keras calls it after every step, so keep the metric to validation and
test sets of up to a few million rows; for more, score predictions with :func:`group_auc`.

Under ``model.fit`` / ``evaluate`` a tfmtl model hands each batch's features to its group metrics
(:func:`batch_features`), so ``GroupAUC(group="user_id")`` in ``compile(metrics=...)`` reads the
``user_id`` input of every batch. Called directly, ``update_state(..., groups=ids)`` takes the ids.

Example:

>>> labels, scores = [1, 0, 1, 0, 1], [0.9, 0.2, 0.3, 0.6, 0.5]
>>> users = ["a", "a", "b", "b", "c"]      # c has one class: skipped
>>> round(group_auc(labels, scores, users), 4)   # a: 1.0 (2 rows), b: 0.0 (2 rows)
0.5
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register

__all__ = ["GAUC_WEIGHTINGS", "GroupAUC", "batch_features", "group_auc", "group_auc_metrics"]

GAUC_WEIGHTINGS = ("impressions", "clicks", "uniform")

# The features of the batch a tfmtl model's train/test step is running, for the group metrics it updates.
_BATCH_FEATURES: contextvars.ContextVar = contextvars.ContextVar("tfmtl_batch_features", default=None)
_FINGERPRINT_BUCKETS = 2**63 - 1  # string ids become 64-bit fingerprints: collisions ~n^2 / 2^64


@contextlib.contextmanager
def batch_features(data: Any) -> Iterator[None]:
    """Makes a step's features visible to the :class:`GroupAUC` metrics updated inside the block.

    ``data`` is what a Keras ``train_step``/``test_step`` receives (``x`` or ``(x, y[, w])``);
    only a dict of features is handed on. A model's step wraps its metric update in this.
    """
    x = keras.utils.unpack_x_y_sample_weight(data)[0] if isinstance(data, (tuple, list)) else data
    token = _BATCH_FEATURES.set(x if isinstance(x, Mapping) else None)
    try:
        yield
    finally:
        _BATCH_FEATURES.reset(token)


def _group_keys(groups, name: str) -> tf.Tensor:
    """Group ids ``[N]`` as int64 keys: integers as they are, strings as 64-bit fingerprints."""
    if isinstance(groups, (tf.SparseTensor, tf.RaggedTensor)):
        raise ValueError(f"GroupAUC '{name}': group ids must be one dense value per row, got {type(groups).__name__}")
    if not tf.is_tensor(groups):
        array = np.asarray(groups)
        if array.size == 0:
            array = array.astype(np.int64)
        groups = tf.constant(array.astype(str) if array.dtype.kind in "OUS" else array)
    groups = tf.reshape(groups, [-1])
    if groups.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(groups, _FINGERPRINT_BUCKETS)
    if groups.dtype.is_integer or groups.dtype == tf.bool:
        return tf.cast(groups, tf.int64)
    raise ValueError(f"GroupAUC '{name}': group ids must be strings or integers, got {groups.dtype.name}")


@register
class GroupAUC(keras.metrics.Metric):
    """Streaming group AUC of a binary output: the per-group ROC AUC averaged by group weight.

    Args:
      group: the feature that names the group (e.g. ``"user_id"``); under ``fit``/``evaluate``
        of a tfmtl model its values come from each batch's inputs. ``None``: pass
        ``groups=`` to :meth:`update_state`.
      weighting: ``"impressions"`` (the group's sample-weight sum; its row count without
        weights), ``"clicks"`` (its positives' weight sum) or ``"uniform"``.
      name: logged as ``<output>_<name>`` when compiled per output (default ``gauc``).

    Shapes: ``y_true``, ``y_pred``: ``[batch]`` or ``[batch, 1]`` (labels > 0.5 are positive);
    ``sample_weight``, ``groups``: ``[batch]``. ``result()``: a float32 scalar (0 when no group
    holds both classes, as ``keras.metrics.AUC`` gives 0 without both classes).

    Example:

    >>> metric = GroupAUC()
    >>> metric.update_state([1, 0], [0.9, 0.2], groups=[7, 7])     # one user split over two batches:
    >>> metric.update_state([0, 1], [0.95, 0.1], groups=[7, 8])    # user 7 is ranked over all four rows
    >>> round(float(metric.result()), 4)   # user 7: pairs (0.9>0.2) (0.9<0.95) -> 0.5; user 8 skipped
    0.5
    """

    def __init__(self, group: str | None = None, weighting: str = "impressions", name: str = "gauc",
                 dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if weighting not in GAUC_WEIGHTINGS:
            raise ValueError(f"GroupAUC '{name}': weighting must be one of {GAUC_WEIGHTINGS}, got {weighting!r}")
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"GroupAUC '{name}': group must be a feature name, got {group!r}")
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            # Each replica would keep its own rows and the read would not merge them.
            raise ValueError(f"GroupAUC '{name}': not supported under a strategy with several replicas; "
                             "score the predictions with tfmtl.training.group_auc instead")
        self.group = group
        self.weighting = weighting
        with tf.init_scope():
            self._keys = self._rows("keys", tf.int64)
            self._labels = self._rows("labels", tf.float32)
            self._scores = self._rows("scores", tf.float32)
            self._weights = self._rows("weights", tf.float32)

    def _rows(self, name: str, dtype) -> tf.Variable:
        return tf.Variable(tf.zeros([0], dtype), shape=tf.TensorShape([None]), trainable=False,
                           name=f"{self.name}_{name}")

    def update_state(self, y_true, y_pred, sample_weight=None, groups=None):
        """Appends a batch's rows; ``groups`` (``[batch]`` ids) overrides the ``group`` feature."""
        if groups is None:
            groups = self._groups_from_batch()
        keys = _group_keys(groups, self.name)
        scores = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        labels = tf.cast(tf.cast(tf.reshape(y_true, [-1]), tf.float32) > 0.5, tf.float32)
        weights = tf.ones_like(scores) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32),
                                                                                 [-1])
        weights = tf.broadcast_to(weights, tf.shape(scores))
        with tf.control_dependencies([
                tf.debugging.assert_equal(tf.size(keys), tf.size(scores), message=(
                    f"GroupAUC '{self.name}': one group id per prediction is needed")),
                tf.debugging.assert_equal(tf.size(labels), tf.size(scores), message=(
                    f"GroupAUC '{self.name}': y_true and y_pred differ in size"))]):
            return tf.group(self._keys.assign(tf.concat([self._keys, keys], 0)),
                            self._labels.assign(tf.concat([self._labels, labels], 0)),
                            self._scores.assign(tf.concat([self._scores, scores], 0)),
                            self._weights.assign(tf.concat([self._weights, weights], 0)))

    def _groups_from_batch(self):
        if self.group is None:
            raise ValueError(f"GroupAUC '{self.name}': no group ids; pass groups=... to update_state, or name the "
                             "group feature (GroupAUC(group='user_id')) and train or evaluate a tfmtl model")
        features = _BATCH_FEATURES.get()
        if features is None:
            raise ValueError(f"GroupAUC '{self.name}': group feature '{self.group}' needs the batch's features, "
                             "which only a tfmtl model's fit/evaluate hands on; call update_state(..., groups=...)")
        if self.group not in features:
            raise ValueError(f"GroupAUC '{self.name}': group feature '{self.group}' is not an input of the batch "
                             f"(inputs: {sorted(features)})")
        return features[self.group]

    def result(self):
        return tf.cast(_weighted_group_auc(self._keys, self._labels, self._scores, self._weights, self.weighting),
                       self.dtype)

    def reset_state(self):
        for variable in (self._keys, self._labels, self._scores, self._weights):
            variable.assign(tf.zeros([0], variable.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "group": self.group, "weighting": self.weighting}


def _weighted_group_auc(keys, labels, scores, weights, weighting: str) -> tf.Tensor:
    """GAUC of the rows, float64: each group's tie-aware weighted AUC, averaged over two-class groups."""
    keys, labels = tf.convert_to_tensor(keys), tf.cast(labels, tf.float64)
    scores, weights = tf.convert_to_tensor(scores), tf.cast(weights, tf.float64)
    distinct, group = tf.unique(keys, out_idx=tf.int64)
    groups = tf.size(distinct, out_type=tf.int64)
    # Rows sorted by (group, score): a stable sort by score, then a stable sort by group.
    by_score = tf.argsort(scores, stable=True)
    order = tf.gather(by_score, tf.argsort(tf.gather(group, by_score), stable=True))
    group, score = tf.gather(group, order), tf.gather(scores, order)
    positive = tf.gather(weights * labels, order)
    negative = tf.gather(weights * (1.0 - labels), order)
    # Blocks of rows with the same group and score (ties): a pair inside a block counts 1/2.
    starts = tf.concat([tf.ones_like(group[:1], tf.bool),
                        tf.logical_or(group[1:] != group[:-1], score[1:] != score[:-1])], 0)
    block = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    blocks = tf.reduce_sum(tf.cast(starts, tf.int64))
    block_group = tf.math.unsorted_segment_max(group, block, blocks)
    block_pos = tf.math.unsorted_segment_sum(positive, block, blocks)
    block_neg = tf.math.unsorted_segment_sum(negative, block, blocks)
    # Negative weight below each block within its group: the exclusive running sum minus the group's start.
    below = tf.cumsum(block_neg, exclusive=True)
    below -= tf.gather(tf.math.unsorted_segment_min(below, block_group, groups), block_group)
    wins = tf.math.unsorted_segment_sum(block_pos * (below + 0.5 * block_neg), block_group, groups)
    pos = tf.math.unsorted_segment_sum(block_pos, block_group, groups)
    neg = tf.math.unsorted_segment_sum(block_neg, block_group, groups)
    both = tf.logical_and(pos > 0, neg > 0)
    auc = tf.where(both, wins / tf.where(both, pos * neg, 1.0), 0.0)
    if weighting == "impressions":
        weight = pos + neg
    elif weighting == "clicks":
        weight = pos
    else:
        weight = tf.ones_like(pos)
    weight = tf.where(both, weight, 0.0)
    total = tf.reduce_sum(weight)
    return tf.where(total > 0, tf.reduce_sum(weight * auc) / tf.where(total > 0, total, 1.0), 0.0)


def group_auc(y_true, y_pred, groups, sample_weight=None, weighting: str = "impressions") -> float:
    """GAUC of arrays (e.g. ``model.predict`` outputs), with :class:`GroupAUC`'s maths.

    >>> round(group_auc([1, 0, 0, 1], [0.8, 0.4, 0.7, 0.1], groups=[1, 1, 2, 2], weighting="clicks"), 4)
    0.5
    """
    metric = GroupAUC(weighting=weighting)
    metric.update_state(np.asarray(y_true), np.asarray(y_pred), sample_weight=sample_weight, groups=groups)
    return float(metric.result())


def group_auc_metrics(outputs: Sequence[str], group: str, weighting: str = "impressions",
                      name: str = "gauc") -> dict[str, list[GroupAUC]]:
    """``compile(metrics=...)`` entries: one :class:`GroupAUC` per output, logged ``<output>_gauc``.

    Merge them with the outputs' other metrics, e.g.
    ``{o: [*model.default_metrics()[o], *group_auc_metrics([o], "user_id")[o]] for o in model.label_map}``.
    """
    return {output: [GroupAUC(group, weighting=weighting, name=name)] for output in outputs}
