"""Parquet -> batched ``tf.data.Dataset``, the same batches as the DataFrame path, in flat memory.

For data that does not fit a DataFrame: pyarrow reads one row group at a time, the
row group goes through the DataFrame path's own conversions
(:meth:`FeatureSpec.feature_arrays`, ``label_array``, ``weight_array``) and is cut into
batches, so ``parquet_to_dataset(spec, path, ...)`` yields exactly what
:func:`tfmtl.features.dataframe_to_dataset` yields for ``pd.read_parquet(path)``
(features ``{name: [batch]}`` or ``[batch, max_length]`` for list features, labels
``{output: [batch, 1]}``, optional weights). Batches run across row groups and files,
so only the last batch of the whole stream is short, as in the DataFrame path.

Lists and nulls follow the DataFrame path: list columns are padded to ``max_length``
with the pad token; a null categorical (or list cell, or list element) is the pad
token / OOV; a null numeric is NaN (the model's numeric encoding decides what that
means, as for a DataFrame). A null 0/1 label or a null weight is refused, naming the
file, the row group and the column, as ``check_dataframe`` refuses it.

Memory is one row group (converted) plus the prefetched batches, whatever the number
of rows; write files with row groups of ~10^5-10^6 rows.

Example:

>>> import pandas as pd, tempfile, os
>>> from tfmtl.features import FeatureSpec, Label
>>> df = pd.DataFrame({"city": ["a", "b", "a"], "clicked": [0, 1, 1]})
>>> spec = FeatureSpec.from_dataframe(df, labels=[Label("clicked")])
>>> path = os.path.join(tempfile.mkdtemp(), "part.parquet")
>>> df.to_parquet(path)
>>> x, y = next(iter(parquet_to_dataset(spec, path, {"clicked": "clicked"}, batch_size=2)))
>>> x["city"].numpy().tolist(), y["clicked"].numpy().tolist()
([b'a', b'b'], [[0.0], [1.0]])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfmtl.features.paths import expand_paths
from tfmtl.features.schema import INT64, STRING, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import FeatureSpec


def parquet_to_dataset(
    spec: FeatureSpec,
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    targets: Mapping[str, str] | None = None,
    *,
    batch_size: int = 256,
    shuffle: bool = False,
    shuffle_buffer: int = 100_000,
    seed: int | None = None,
    drop_remainder: bool = False,
    sample_weights: bool = True,
) -> tf.data.Dataset:
    """Batches of ``features`` or ``(features, labels[, weights])`` from Parquet files.

    Args:
      spec: the feature spec; each file's columns are checked against it first (footer only).
      paths: a file, a directory of ``*.parquet`` files, a glob, or a list of those;
        files are read in sorted order, one after the other.
      targets: ``{model output name: label name}``; ``None`` yields features only.
      shuffle: shuffle rows within a ``shuffle_buffer`` (the DataFrame path
        permutes the whole frame; both are unshuffled by default).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    files = expand_paths(paths, "*.parquet", "Parquet")
    targets = dict(targets or {})
    labels = {output: spec.label(name) for output, name in targets.items()}
    weighted = bool(targets and sample_weights and spec.weight_column)
    columns = list(dict.fromkeys(
        spec.feature_names + [label.column for label in labels.values()]
        + ([spec.weight_column] if weighted else [])))
    refused_nulls = [label.column for label in labels.values() if label.positive is None]
    refused_nulls += [spec.weight_column] if weighted else []
    for path in files:
        _check_file(spec, path, columns, refused_nulls)

    def element(frame) -> Any:
        features = spec.feature_arrays(frame)
        if not labels:
            return features
        y = {output: spec.label_array(frame, name) for output, name in targets.items()}
        return (features, y, spec.weight_array(frame)) if weighted else (features, y)

    def batches() -> Iterator[Any]:
        carry = None  # rows of the last row group that did not fill a batch
        for path in files:
            parquet = pq.ParquetFile(path)
            for group in range(parquet.metadata.num_row_groups):
                frame = parquet.read_row_group(group, columns=columns).to_pandas()
                try:
                    spec.check_dataframe(frame, require_labels=list(targets.values()))
                except SpecError as e:
                    raise SpecError(f"{path}, row group {group}: {e}") from e
                arrays = element(frame)
                if carry is not None:
                    arrays = tf.nest.map_structure(lambda a, b: np.concatenate([a, b]), carry, arrays)
                rows = len(tf.nest.flatten(arrays)[0])
                whole = rows // batch_size * batch_size
                for start in range(0, whole, batch_size):
                    yield tf.nest.map_structure(lambda a: a[start:start + batch_size], arrays)  # noqa: B023
                carry = tf.nest.map_structure(lambda a: a[whole:], arrays) if whole < rows else None  # noqa: B023
        if carry is not None and not drop_remainder:
            yield carry

    dataset = tf.data.Dataset.from_generator(batches, output_signature=_signature(spec, labels, weighted))
    if shuffle:
        dataset = dataset.unbatch().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _signature(spec: FeatureSpec, labels: Mapping[str, Any], weighted: bool) -> Any:
    """The ``tf.TensorSpec`` nest of one batch: the dtypes and shapes ``feature_arrays`` produces."""
    features = {}
    for feature in spec.features:
        if isinstance(feature, ListFeature):
            dtype = tf.string if feature.dtype == STRING else tf.int64
            features[feature.name] = tf.TensorSpec([None, feature.max_length], dtype)
        elif isinstance(feature, NumericFeature):
            features[feature.name] = tf.TensorSpec([None], tf.float32)
        else:
            features[feature.name] = tf.TensorSpec([None], tf.int64 if feature.dtype == INT64 else tf.string)
    if not labels:
        return features
    y = {output: tf.TensorSpec([None, 1], tf.float32) for output in labels}
    return (features, y, tf.TensorSpec([None], tf.float32)) if weighted else (features, y)


def _check_file(spec: FeatureSpec, path: str, columns: list[str], refused_nulls: list[str]) -> None:
    """Columns present, numeric or list where the spec says so, no nulls where refused: from the footer only."""
    parquet = pq.ParquetFile(path)
    schema, metadata = parquet.schema_arrow, parquet.metadata
    absent = [c for c in columns if c not in schema.names]
    if absent:
        raise SpecError(f"{path}: column(s) {absent} are missing from the Parquet file")
    for feature in spec.features:
        kind = schema.field(feature.name).type
        if isinstance(feature, ListFeature):
            if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_null(kind)):
                raise SpecError(f"{path}: list feature '{feature.name}' needs a list column, "
                                f"the Parquet column is {kind}")
        elif (isinstance(feature, NumericFeature) or feature.dtype == INT64) and not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
            raise SpecError(f"{path}: feature '{feature.name}' must be numeric ({spec.raw_dtype(feature)}), "
                            f"the Parquet column is {kind}")
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            if column.path_in_schema not in refused_nulls:
                continue
            stats = column.statistics
            if stats is not None and stats.has_null_count and stats.null_count > 0:
                raise SpecError(f"{path}, row group {group}: column '{column.path_in_schema}' has "
                                f"{stats.null_count} null(s); labels and weights must not be missing")


__all__ = ["parquet_to_dataset"]
