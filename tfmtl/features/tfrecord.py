"""TFRecord files of ``tf.train.Example`` -> batched ``tf.data.Dataset``, the DataFrame path's batches, streamed.

The files the TFX pipeline's ExampleGen writes (GZIP ``*.gz``), or any TFRecord of raw rows: one
``tf.Example`` per row, a feature per column. Records are batched first and parsed a batch at a time
with ``tf.io.parse_example`` (vectorised, in parallel), so memory is the prefetched batches whatever
the number of rows. Each batch is what :func:`tfmtl.features.dataframe_to_dataset` yields for the same
rows as a DataFrame: features ``{name: [batch]}`` (``[batch, max_length]`` for a list feature: the
last ``max_length`` values, padded with the pad token, as :func:`~tfmtl.features.frames.list_array`),
labels ``{output: [batch, 1]}`` float32, optional weights ``[batch]``.

A missing key is a missing value, as a null cell is: ``""`` / ``-1`` (OOV) for a categorical, an empty
list, NaN for a numeric. A row without its 0/1 label or weight fails the read, naming the column.
The value kind of each column (``int64_list``, ``float_list`` or ``bytes_list``) is read from the first
record that has it, since ExampleGen writes whole numbers of a numeric column as ``int64_list``.

Example:

>>> import os, tempfile
>>> import tensorflow as tf
>>> from tfmtl.features import CategoricalFeature, FeatureSpec, Label
>>> spec = FeatureSpec((CategoricalFeature("city", vocabulary=("a", "b")),), (Label("clicked"),))
>>> path = os.path.join(tempfile.mkdtemp(), "rows.tfrecord")
>>> with tf.io.TFRecordWriter(path) as writer:
...     for city, clicked in [(b"a", 0), (b"b", 1), (b"a", 1)]:
...         row = {"city": tf.train.Feature(bytes_list=tf.train.BytesList(value=[city])),
...                "clicked": tf.train.Feature(int64_list=tf.train.Int64List(value=[clicked]))}
...         writer.write(tf.train.Example(features=tf.train.Features(feature=row)).SerializeToString())
>>> x, y = next(iter(tfrecord_to_dataset(spec, path, {"clicked": "clicked"}, batch_size=2)))
>>> x["city"].numpy().tolist(), y["clicked"].numpy().tolist()
([b'a', b'b'], [[0.0], [1.0]])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfmtl.features.paths import expand_paths
from tfmtl.features.preprocessing import fit_list
from tfmtl.features.schema import INT64, PAD, Label, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import FeatureSpec

COMPRESSIONS = ("auto", "GZIP", "ZLIB", "")
_KIND_DTYPES = {"bytes_list": tf.string, "int64_list": tf.int64, "float_list": tf.float32}


def tfrecord_to_dataset(
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
    compression: str = "auto",
) -> tf.data.Dataset:
    """Batches of ``features`` or ``(features, labels[, weights])`` from TFRecord files of ``tf.Example``.

    Args:
      spec: the feature spec.
      paths: a file, a directory (all its files), a glob, or a list of those; read in sorted order.
      targets: ``{model output name: label name}``; ``None`` yields features only.
      shuffle: shuffle records within a ``shuffle_buffer`` (the DataFrame path permutes the whole frame;
        both are unshuffled by default).
      compression: ``"auto"`` (GZIP for ``*.gz`` files, as ExampleGen writes them, else none), ``"GZIP"``,
        ``"ZLIB"`` or ``""``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if compression not in COMPRESSIONS:
        raise SpecError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    files = expand_paths(paths, "*", "TFRecord")
    if compression == "auto":
        gzipped = {f.endswith(".gz") for f in files}
        if len(gzipped) > 1:
            raise SpecError(f"some TFRecord files end in .gz and some do not ({files[:3]}...): "
                            "give compression= for all of them")
        compression = "GZIP" if gzipped.pop() else ""
    targets = dict(targets or {})
    labels = {output: spec.label(name) for output, name in targets.items()}
    weighted = bool(targets and sample_weights and spec.weight_column)
    kinds = _value_kinds(files, compression)
    parsing = _parsing(spec, labels.values(), weighted, kinds)

    def parse(serialized: tf.Tensor) -> Any:
        parsed = tf.io.parse_example(serialized, parsing)
        features = {}
        for feature in spec.features:
            value = parsed[feature.name]
            if isinstance(feature, ListFeature):
                features[feature.name] = fit_list(value, feature)
            elif isinstance(feature, NumericFeature):
                features[feature.name] = _numeric(value)
            else:
                features[feature.name] = value  # parsed in the spec's dtype (checked against the files' kind)
        if not labels:
            return features
        y = {output: _label(parsed[label.column], label) for output, label in labels.items()}
        if not weighted:
            return features, y
        weights = tf.cast(parsed[spec.weight_column], tf.float32)
        tf.debugging.assert_non_negative(weights, f"weight column {spec.weight_column} must hold "
                                                  "non-negative numbers")
        return features, y, weights

    dataset = tf.data.TFRecordDataset(files, compression_type=compression)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _value_kinds(files: Sequence[str], compression: str, records: int = 1000) -> dict[str, str]:
    """``{key: "bytes_list" | "int64_list" | "float_list"}`` from the first records that have each key."""
    kinds: dict[str, str] = {}
    for raw in tf.data.TFRecordDataset(files[:1], compression_type=compression).take(records):
        try:
            example = tf.train.Example.FromString(raw.numpy())
        except Exception as error:  # a protobuf DecodeError: not a tf.Example file
            raise SpecError(f"{files[0]}: a record is not a serialised tf.train.Example ({error})") from None
        for key, value in example.features.feature.items():
            kind = value.WhichOneof("kind")
            if kind is not None:
                kinds.setdefault(key, kind)
    return kinds


def _parsing(spec: FeatureSpec, labels, weighted: bool, kinds: Mapping[str, str]) -> dict[str, Any]:
    """The ``parse_example`` features: the spec's dtypes, read as the kind the files hold where it may differ."""

    def dtype_of(column: str, wanted: tf.DType, allowed: tuple, what: str) -> tf.DType:
        kind = kinds.get(column)
        if kind is None:
            return wanted
        if kind not in allowed:
            raise SpecError(f"{what} '{column}' must be {' or '.join(k.split('_')[0] for k in allowed)} in the "
                            f"tf.Example records, the files hold {kind}")
        return _KIND_DTYPES[kind]

    parsing: dict[str, Any] = {}
    for feature in spec.features:
        if isinstance(feature, NumericFeature):
            dtype = dtype_of(feature.name, tf.float32, ("float_list", "int64_list"), "numeric feature")
            if dtype == tf.float32:
                parsing[feature.name] = tf.io.FixedLenFeature([], dtype, default_value=np.nan)
            else:  # an integer column, read var-len so that a missing value becomes NaN (_numeric), not a number
                parsing[feature.name] = tf.io.RaggedFeature(dtype)
            continue
        kind = ("int64_list",) if feature.dtype == INT64 else ("bytes_list",)
        dtype = dtype_of(feature.name, tf.int64 if feature.dtype == INT64 else tf.string, kind,
                         "list feature" if isinstance(feature, ListFeature) else "categorical feature")
        parsing[feature.name] = (tf.io.RaggedFeature(dtype) if isinstance(feature, ListFeature)
                                 else tf.io.FixedLenFeature([], dtype, default_value=PAD[feature.dtype]))
    for label in labels:
        if label.positive is None:
            dtype = dtype_of(label.column, tf.float32, ("float_list", "int64_list"), "label column")
        else:
            dtype = dtype_of(label.column, _positive_dtype(label), ("bytes_list", "int64_list", "float_list"),
                             "label column")
        parsing[label.column] = tf.io.FixedLenFeature([], dtype)  # required: a row without its label fails
    if weighted:
        parsing[spec.weight_column] = tf.io.FixedLenFeature(
            [], dtype_of(spec.weight_column, tf.float32, ("float_list", "int64_list"), "weight column"))
    return parsing


def _numeric(value: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
    """``[batch]`` float32; an integer column was parsed var-len so that a missing value is NaN, not 0."""
    if isinstance(value, tf.RaggedTensor):
        return tf.cast(value, tf.float32).to_tensor(default_value=np.nan, shape=[None, 1])[:, 0]
    return tf.cast(value, tf.float32)


def _positive_dtype(label: Label) -> tf.DType:
    values = label.positive or ()
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return tf.int64
    if all(isinstance(v, (int, float, np.number)) for v in values):
        return tf.float32
    return tf.string


def _label(value: tf.Tensor, label: Label) -> tf.Tensor:
    """A parsed label column as ``[batch, 1]`` float32 0/1, as :meth:`FeatureSpec.label_array` makes it."""
    if label.positive is not None:
        if value.dtype == tf.string:
            positives = tf.constant([str(v).encode() for v in label.positive])
        else:
            try:
                numbers = [float(v) for v in label.positive]
            except ValueError:
                raise SpecError(f"label '{label.name}': column '{label.column}' holds numbers in the tf.Example "
                                f"records, but the positive values are {list(label.positive)}") from None
            positives = tf.cast(tf.constant(numbers), value.dtype)
        hit = tf.reduce_any(tf.equal(value[:, None], positives[None, :]), axis=1)
        return tf.cast(hit, tf.float32)[:, None]
    value = tf.cast(value, tf.float32)
    tf.debugging.assert_equal(tf.reduce_all((value == 0) | (value == 1)), True,
                              # no quotes: TF escapes them in the message
                              f"label {label.name}: column {label.column} must hold 0/1 values")
    return value[:, None]
