"""DataFrame -> batched, shuffled, prefetched ``tf.data.Dataset``.

Shuffled rows are gathered by index per batch, so an epoch's shuffle costs one
permutation instead of a per-element shuffle buffer. Rows in order (validation,
``predict``) are cut into batches up front, so no Python function is traced and
no per-row work happens while the batches stream.

Example:

>>> import pandas as pd
>>> from tfmtl.features import FeatureSpec, Label
>>> df = pd.DataFrame({"city": ["a", "b", "a"], "clicked": [0, 1, 1]})
>>> spec = FeatureSpec.from_dataframe(df, labels=[Label("clicked")])
>>> x, y = next(iter(dataframe_to_dataset(spec, df, {"clicked": "clicked"}, batch_size=2)))
>>> x["city"].shape.as_list(), y["clicked"].shape.as_list()
([2], [2, 1])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl.features.spec import FeatureSpec


def dataframe_to_dataset(
    spec: FeatureSpec,
    df: pd.DataFrame,
    targets: Mapping[str, str] | None = None,
    *,
    batch_size: int = 256,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    sample_weights: bool = True,
    extra_features: Mapping[str, np.ndarray] | None = None,
) -> tf.data.Dataset:
    """Batches of ``features`` or ``(features, labels[, weights])``.

    Args:
      spec: the feature spec; ``df`` is checked against it first.
      targets: ``{model output name: label name}``; ``None`` yields features only
        (for ``predict``).
      sample_weights: yield the spec's weight column as a third element.
      extra_features: more model inputs ``{name: array [N, ...]}`` aligned with ``df``'s
        rows (e.g. MAMEX's modality inputs).
    """
    spec.check_dataframe(df, require_labels=list(targets.values()) if targets else ())
    element: Any = {**spec.feature_arrays(df), **(extra_features or {})}
    if targets:
        labels = {output: spec.label_array(df, label) for output, label in targets.items()}
        weights = spec.weight_array(df) if sample_weights else None
        element = (element, labels) if weights is None else (element, labels, weights)
    return batch_arrays(element, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder)


def batch_arrays(element: Any, *, batch_size: int, shuffle: bool = False, seed: int | None = None,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A prefetched dataset of batches of ``element``, a nest of arrays that share their first dimension.

    >>> ds = batch_arrays({"x": np.arange(5.0)}, batch_size=2)
    >>> [b["x"].numpy().tolist() for b in ds]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = [len(a) for a in tf.nest.flatten(element)]
    rows = lengths[0]
    if any(n != rows for n in lengths):
        raise ValueError(f"all arrays must have the same number of rows, got {lengths}")
    if shuffle:
        return _gathered_batches(element, rows, batch_size, seed, drop_remainder)
    arrays = tf.nest.map_structure(np.asarray, element)
    whole = rows // batch_size * batch_size
    # Full batches as one [num_batches, batch_size, ...] tensor per input: each batch is a slice of it.
    full = tf.nest.map_structure(lambda a: tf.constant(a[:whole].reshape(-1, batch_size, *a.shape[1:])), arrays)
    ds = tf.data.Dataset.from_tensor_slices(full)
    if whole < rows and not drop_remainder:
        rest = tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda a: tf.constant(a[whole:]), arrays))
        ds = ds.concatenate(rest) if whole else rest
    return ds.prefetch(tf.data.AUTOTUNE)


def _gathered_batches(element, rows: int, batch_size: int, seed: int | None, drop_remainder: bool) -> tf.data.Dataset:
    tensors = tf.nest.map_structure(tf.constant, element)
    indices = tf.data.Dataset.range(rows).shuffle(rows, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=drop_remainder)
    gather = lambda idx: tf.nest.map_structure(lambda t: tf.gather(t, idx), tensors)  # noqa: E731
    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
