"""Parquet -> batched ``tf.data.Dataset`` with tensorflow-io, the same batches as the DataFrame path.

For data that does not fit a DataFrame: rows stream from the Parquet files through
``tfio.IODataset.from_parquet`` and are coerced to the spec's raw dtypes, so
``parquet_to_dataset(spec, path, ...)`` yields exactly what
:func:`tfmtl.features.dataframe_to_dataset` yields for ``pd.read_parquet(path)``
(features ``{name: [batch]}``, labels ``{output: [batch, 1]}``, optional weights).

Nulls are refused: tensorflow-io 0.37 skips null cells and shifts the rest of the
column, so a file with nulls in a used column raises :class:`SpecError` (fill them,
or read the file with pandas and use the DataFrame path).

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

import functools
import glob
import os
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfmtl.features.spec import INT64, FeatureSpec, NumericFeature, SpecError


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
      spec: the feature spec; each file's columns are checked against it first.
      paths: a file, a directory of ``*.parquet`` files, a glob, or a list of those;
        files are read in sorted order, one after the other.
      targets: ``{model output name: label name}``; ``None`` yields features only.
      shuffle: shuffle rows within a ``shuffle_buffer`` (the DataFrame path
        permutes the whole frame; both are unshuffled by default).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if spec.lists:
        raise SpecError(f"parquet_to_dataset does not read list features {[f.name for f in spec.lists]} "
                        "(tensorflow-io reads scalar columns); read the file with pandas and use "
                        "dataframe_to_dataset")
    files = _expand(paths)
    targets = dict(targets or {})
    labels = {output: spec.label(name) for output, name in targets.items()}
    columns = list(dict.fromkeys(
        spec.feature_names + [label.column for label in labels.values()]
        + ([spec.weight_column] if targets and sample_weights and spec.weight_column else [])))
    for path in files:
        _check_file(spec, path, columns)

    def convert(row: Mapping[str, tf.Tensor]):
        features = {f.name: _feature(f, row[f.name]) for f in spec.features}
        if not labels:
            return features
        y = {output: tf.reshape(_label(label, row[label.column]), [-1, 1]) for output, label in labels.items()}
        if sample_weights and spec.weight_column:
            return features, y, tf.cast(row[spec.weight_column], tf.float32)
        return features, y

    # tfio needs each file's schema when the dataset is built, so files are chained in Python.
    dataset = functools.reduce(tf.data.Dataset.concatenate, [_read(path, columns) for path in files])
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _read(path, columns: list[str]) -> tf.data.Dataset:
    try:
        import tensorflow_io as tfio  # heavy import, only when reading Parquet
    except ImportError as e:
        raise ImportError(f"reading Parquet ({path}) needs tensorflow-io: pip install 'tfmtl[parquet]'. Its last "
                          "release (0.37) is built for TensorFlow 2.16 only; with a newer TensorFlow read the "
                          "files with pandas and use dataframe_to_dataset") from e
    return tfio.IODataset.from_parquet(path, columns=columns)


def _expand(paths) -> list[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[str] = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            files += sorted(glob.glob(os.path.join(item, "*.parquet")))
        elif any(c in item for c in "*?["):
            files += sorted(glob.glob(item))
        else:
            files.append(item)
    if not files:
        raise SpecError(f"no Parquet files found in {paths!r}")
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise SpecError(f"Parquet file(s) not found: {missing[:3]}")
    return files


def _check_file(spec: FeatureSpec, path: str, columns: list[str]) -> None:
    """Columns present, numeric where the spec needs numbers, free of nulls: from the footer only."""
    parquet = pq.ParquetFile(path)
    schema, metadata = parquet.schema_arrow, parquet.metadata
    absent = [c for c in columns if c not in schema.names]
    if absent:
        raise SpecError(f"{path}: column(s) {absent} are missing from the Parquet file")
    for feature in spec.features:
        kind = schema.field(feature.name).type
        if (isinstance(feature, NumericFeature) or feature.dtype == INT64) and not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise SpecError(f"{path}: feature '{feature.name}' must be numeric ({spec.raw_dtype(feature)}), "
                            f"the Parquet column is {kind}")
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            if column.path_in_schema not in columns:
                continue
            stats = column.statistics
            if stats is None or not stats.has_null_count or stats.null_count > 0:
                raise SpecError(
                    f"{path}: column '{column.path_in_schema}' has nulls (or no null count); tensorflow-io "
                    "would shift its values. Fill missing values before writing, or use dataframe_to_dataset.")


def _feature(feature, value: tf.Tensor) -> tf.Tensor:
    # The same coercions as FeatureSpec.feature_arrays (str() of a bool is "True", not "true").
    if isinstance(feature, NumericFeature):
        return tf.cast(value, tf.float32)
    if feature.dtype == INT64:
        return tf.cast(value, tf.int64)
    if value.dtype == tf.bool:
        return tf.where(value, "True", "False")
    return value if value.dtype == tf.string else tf.strings.as_string(value)


def _label(label, value: tf.Tensor) -> tf.Tensor:
    # pandas.Series.isin is type-strict: strings match string positives, numbers numeric ones.
    if label.positive is None:
        return tf.cast(value, tf.float32)
    if value.dtype == tf.string:
        hits = [tf.equal(value, p) for p in label.positive if isinstance(p, str)]
    else:
        hits = [tf.equal(tf.cast(value, tf.float64), float(p)) for p in label.positive if not isinstance(p, str)]
    if not hits:
        return tf.zeros_like(value, tf.float32)
    return tf.cast(tf.reduce_any(tf.stack(hits), axis=0), tf.float32)


__all__ = ["parquet_to_dataset"]
