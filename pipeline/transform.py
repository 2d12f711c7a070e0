"""The Transform module: ``preprocessing_fn`` derived from the tfmtl feature spec.

The spec travels in ``custom_config["spec"]`` (its JSON config), so the TFX graph and
the Keras path (:class:`tfmtl.features.FeaturePreprocessing`) apply the same
vocabularies, log/standardisation constants and bucket boundaries and emit the
contract of :func:`tfmtl.features.encoded_names`: categorical -> int64 ids
(0 = out of vocabulary or missing), numeric -> float32 standardised (missing -> 0),
bucketised numeric -> also ``<name>__bucket``; plus one float 0/1 column per label
(and the weight column, if the spec has one).

Where the statistics come from (``custom_config["statistics"]``):

* ``"spec"`` (default): every statistic is a constant from the spec, which was
  fitted on the training rows (``FeatureSpec.from_dataframe``). A pipeline model and
  a ``model.fit`` model then see bit-identical inputs.
* ``"analyzers"``: vocabularies (``tft.vocabulary``), means and variances
  (``tft.mean`` / ``tft.var``, after ``log1p`` where the spec says ``log``) are
  re-estimated by TFT analyzers over the pipeline's train split, for data too big to
  fit a spec in memory. Structure (which columns, dtypes, ``log``, bucket
  boundaries, hashing, labels) still comes from the spec; the Trainer rebuilds the
  spec from the analyzer output (:func:`fitted_spec`) so embedding sizes match. On
  the same rows the two modes agree on vocabulary sets, means and variances.
  Numeric features with a ``"ple"`` or ``"periodic"`` encoding keep the spec's mean
  and variance in both modes (see below).

Numeric encodings (PLE, periodic) are not computed here: the graph emits the same
standardised value for every numeric feature, and the model's own layers embed it
(``tfmtl.layers.numeric``), with the PLE bin edges from the spec moved onto the
standardised scale by the spec's mean and variance. One implementation serves
``model.fit``, the pipeline model and the exported signatures, so they cannot skew;
re-estimating the edges with ``tft.quantiles`` would give a second set of edges that
differs from the spec's (approximate quantiles), which is why the edges, and the
statistics that place them, are facts of the spec.

List features (:class:`tfmtl.features.ListFeature`) arrive as var-len ``tf.Example``
features (a SparseTensor ``[batch, n]``), as CSV strings joined with ``"|"``
(``"a|b|c"``, one value per example), or both: every value is split on
:data:`LIST_SEPARATOR`, so a list element must not contain it. Elements are cleaned
like scalar strings (leading spaces dropped, ``na_values`` and ``""`` missing and
dropped), then fitted to ``max_length`` exactly as the Keras path fits them
(:func:`tfmtl.features.fit_list`: the last ``max_length`` values) and looked up in
the vocabulary of the table the list uses: ``int64 [batch, max_length]`` ids, ``-1``
at padding. List features need ``"spec"`` statistics (their vocabularies are not
re-estimated by analyzers yet).

Raw values are coerced by the spec's dtype whatever type the ExampleGen inferred
(CSV ints for numeric columns, Parquet strings, ...), and leading spaces are dropped
from strings: the census CSV has a space after every comma, which the Keras path
drops with ``skipinitialspace=True``. For CSV input the pipeline also passes
``custom_config["na_values"]`` (pandas' missing-value strings, such as the census
``"NA"``), so what pandas reads as missing is missing here too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from pandas._libs.parsers import STR_NA_VALUES  # pandas' default na_values (stable since pandas 1.0)

from tfmtl.features import (
    BUCKET_SUFFIX,
    CategoricalFeature,
    FeatureSpec,
    Label,
    ListFeature,
    NumericFeature,
    SpecError,
    fit_list,
)
from tfmtl.features.schema import INT64, SCALAR

SPEC_KEY = "spec"
STATISTICS_KEY = "statistics"
NA_VALUES_KEY = "na_values"
# The strings pandas.read_csv reads as missing by default (its STR_NA_VALUES); CSV pipelines
# treat them as missing too, as the Keras path does ("NA" in the census data).
PANDAS_NA_VALUES = tuple(sorted(STR_NA_VALUES))
SPEC_STATISTICS, ANALYZER_STATISTICS = "spec", "analyzers"
_VOCABULARY_PREFIX = "vocabulary_"
_MEAN_PREFIX, _VARIANCE_PREFIX = "mean__", "variance__"
_SEPARATOR = "\x1f"  # between a column's index and its value in the one vocabulary table
LIST_SEPARATOR = "|"  # between the values of a CSV-encoded list cell


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Raw columns -> encoded features and labels; see the module docstring.

    Columns are stacked where the work is the same (string cleaning, vocabulary
    lookup, standardisation), as ``FeaturePreprocessing`` does: the graph stays
    small, which is most of the Transform's cost on small data and of every trace.
    """
    spec = FeatureSpec.from_config(custom_config[SPEC_KEY])
    analyzers = custom_config.get(STATISTICS_KEY, SPEC_STATISTICS) == ANALYZER_STATISTICS
    na_values = tuple(custom_config.get(NA_VALUES_KEY) or ("",))
    if spec.lists and analyzers:
        raise SpecError(f"list features {[f.name for f in spec.lists]} need statistics='spec' in the Transform "
                        "(their vocabularies are not re-estimated by analyzers)")
    list_names = {f.name for f in spec.lists}
    columns = _clean_strings({name: _scalar(inputs[name]) for name in spec.feature_names if name not in list_names},
                             na_values)
    # Labels apart: serving has no label columns, and a feature must not depend on one
    # (the Transform layer drops every output whose inputs are missing).
    targets = [label.column for label in spec.labels] + [spec.weight_column]
    columns.update(_clean_strings({name: _scalar(inputs[name]) for name in dict.fromkeys(targets)
                                   if name in inputs and name not in columns}, na_values))
    outputs: dict[str, tf.Tensor] = {}
    outputs.update(_categorical_ids(spec.categorical, columns, analyzers))
    outputs.update(_numeric_values(spec.numeric, columns, analyzers))
    for feature in spec.lists:
        outputs[feature.name] = _list_ids(spec, feature, inputs[feature.name], na_values)
    for label in spec.labels:
        if label.column in columns:  # absent at serving time: the TFT layer prunes these outputs
            outputs[label.name] = _label(label, *columns[label.column])
    if spec.weight_column in columns:
        value, present = columns[spec.weight_column]
        outputs[spec.weight_column] = tf.where(present, _to_float(value), 1.0)
    return outputs


# ----------------------------------------------------------------- raw values
def _scalar(x: tf.Tensor | tf.SparseTensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One value per example ``[batch]`` and whether it was present.

    Raw columns arrive as ``[batch]``, ``[batch, 1]`` (schema shape [1]) or a
    SparseTensor (a column that may be missing, at most one value per example).
    """
    if isinstance(x, tf.SparseTensor):
        shape = tf.stack([x.dense_shape[0], 1])
        fill = "" if x.dtype == tf.string else tf.zeros([], x.dtype)
        value = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, shape), fill)
        present = tf.sparse.to_dense(tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.bool), shape), False)
        return tf.reshape(value, [-1]), tf.reshape(present, [-1])
    x = tf.reshape(x, [-1])
    return x, tf.ones_like(x, tf.bool)


def _clean_strings(columns: dict, na_values: tuple[str, ...]) -> dict:
    """Strips leading spaces and marks ``na_values`` missing (as ``""``), all string columns at once.

    A missing string becomes ``""``, as ``FeatureSpec.feature_arrays`` makes it.
    """
    names = [name for name, (value, _) in columns.items() if value.dtype == tf.string]
    if not names:
        return columns
    values = strip_leading_spaces(tf.stack([columns[n][0] for n in names], axis=1))
    missing = tf.strings.regex_full_match(values, "|".join(re.escape(na) for na in na_values))
    present = tf.stack([columns[n][1] for n in names], axis=1) & ~missing
    values = tf.where(present, values, "")
    # unstack, not values[:, i]: one op instead of a slice (and three constants) per column.
    return {**columns, **dict(zip(names, zip(tf.unstack(values, axis=1), tf.unstack(present, axis=1))))}


def strip_leading_spaces(x: tf.Tensor) -> tf.Tensor:
    """What ``pandas.read_csv(skipinitialspace=True)`` does to a value: only leading spaces go.

    Not ``tf.strings.strip``: some census values end in a space (``"Handlers equip
    cleaners etc "``) and keep it in the Keras path's vocabulary.
    """
    return tf.strings.regex_replace(x, "^ +", "")


def _to_float(x: tf.Tensor) -> tf.Tensor:
    if x.dtype == tf.string:
        # Empty strings are already marked missing; parse them as 0 to keep the op total.
        return tf.strings.to_number(tf.where(x == "", "0", x), tf.float32)
    return tf.cast(x, tf.float32)


def _to_int64(x: tf.Tensor) -> tf.Tensor:
    if x.dtype == tf.string:
        return tf.strings.to_number(tf.where(x == "", "-1", x), tf.int64)
    return tf.cast(x, tf.int64)


def _category_key(feature: CategoricalFeature, value: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    """The raw value in the spec's type: int64 codes (missing: -1) or strings (missing: "")."""
    if feature.dtype == INT64:
        # -1 is never in a vocabulary, as FeatureSpec.feature_arrays fills missing codes.
        return tf.where(present, _to_int64(value), tf.constant(-1, tf.int64))
    return value if value.dtype == tf.string else tf.strings.as_string(value)


# ------------------------------------------------------------------ features
def _categorical_ids(features: list[CategoricalFeature], columns: dict, analyzers: bool) -> dict[str, tf.Tensor]:
    outputs = {}
    looked_up = []
    for feature in features:
        key = _category_key(feature, *columns[feature.name])
        if feature.hash_buckets is not None:
            # keras.layers.Hashing: FarmHash64 of the string form, modulo the bins.
            strings = key if key.dtype == tf.string else tf.strings.as_string(key)
            outputs[feature.name] = tf.strings.to_hash_bucket_fast(strings, feature.hash_buckets)
        elif analyzers:
            outputs[feature.name] = _analyzer_ids(feature, key, columns[feature.name][1])
        else:
            looked_up.append((feature, key))
    if looked_up:
        outputs.update(_spec_ids(looked_up))
    return outputs


def _spec_ids(looked_up: list[tuple[CategoricalFeature, tf.Tensor]]) -> dict[str, tf.Tensor]:
    """Ids 1..n of every spec vocabulary (0 otherwise) through one table keyed ``"<column>\x1f<value>"``."""
    strings = [f for f, key in looked_up if key.dtype == tf.string]
    codes = [f for f, key in looked_up if key.dtype != tf.string]
    keys = dict(looked_up)
    parts = []
    if strings:
        parts.append(tf.stack([keys[f] for f in strings], axis=1))
    if codes:
        parts.append(tf.strings.as_string(tf.stack([keys[f] for f in codes], axis=1)))
    order = strings + codes
    values = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    prefixes = tf.constant([f"{i}{_SEPARATOR}" for i in range(len(order))])
    ids = _vocabulary_table(order).lookup(tf.strings.join([tf.broadcast_to(prefixes, tf.shape(values)), values]))
    return {feature.name: column for feature, column in zip(order, tf.unstack(ids, axis=1))}


def _vocabulary_table(features: list[CategoricalFeature]) -> tf.lookup.StaticHashTable:
    keys = [f"{i}{_SEPARATOR}{value}" for i, f in enumerate(features) for value in f.vocabulary]
    ids = [index + 1 for f in features for index in range(len(f.vocabulary))]
    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(ids, tf.int64))
    return tf.lookup.StaticHashTable(initializer, default_value=0)


def _analyzer_ids(feature: CategoricalFeature, key: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    # ids 1..n for the vocabulary (fitted on present values only), 0 for anything else, as in the spec mode.
    strings = key if key.dtype == tf.string else tf.strings.as_string(key)
    vocabulary = tft.vocabulary(tf.boolean_mask(strings, present), vocab_filename=_VOCABULARY_PREFIX + feature.name)
    ids = tft.apply_vocabulary(strings, vocabulary, default_value=-1) + 1
    return tf.where(present, tf.cast(ids, tf.int64), tf.constant(0, tf.int64))


def _list_values(x: tf.Tensor | tf.SparseTensor, feature: ListFeature, na_values: tuple[str, ...]) -> tf.RaggedTensor:
    """A raw list column -> ``[batch, None]`` values in the spec's dtype, missing elements dropped."""
    if isinstance(x, tf.SparseTensor):
        values = tf.RaggedTensor.from_sparse(x)
    else:
        x = tf.convert_to_tensor(x)
        values = tf.RaggedTensor.from_tensor(tf.reshape(x, [tf.shape(x)[0], -1]))
    if values.dtype == tf.string:
        # Split every value on the separator: a CSV cell "a|b" and var-len ["a", "b"] give the same list.
        values = tf.strings.split(values, LIST_SEPARATOR).merge_dims(1, 2)
        values = tf.ragged.map_flat_values(strip_leading_spaces, values)
        missing = tf.strings.regex_full_match(values, "|".join(re.escape(na) for na in na_values))
        values = tf.ragged.boolean_mask(values, ~missing & tf.not_equal(values, ""))
        if feature.dtype == INT64:
            return tf.ragged.map_flat_values(tf.strings.to_number, values, tf.int64)
        return values
    if feature.dtype == INT64:
        return tf.cast(values, tf.int64)
    return tf.ragged.map_flat_values(tf.strings.as_string, values)


def _list_ids(spec: FeatureSpec, feature: ListFeature, x, na_values: tuple[str, ...]) -> tf.Tensor:
    """``int64 [batch, max_length]`` ids of the list's table (its own or the shared one), ``-1`` at padding."""
    raw = fit_list(_list_values(x, feature, na_values), feature)
    owner = spec.table_owner(feature)
    strings = raw if raw.dtype == tf.string else tf.strings.as_string(raw)
    if owner.hash_buckets is not None:
        ids = tf.strings.to_hash_bucket_fast(strings, owner.hash_buckets)
    else:
        # Python constants: the Transform's SavedModel cannot capture a computed table initializer.
        keys = [str(v) for v in owner.vocabulary] or [_SEPARATOR]  # an empty vocabulary: everything is OOV
        ids = list(range(1, len(owner.vocabulary) + 1)) or [0]
        initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(ids, tf.int64))
        ids = tf.lookup.StaticHashTable(initializer, default_value=0).lookup(strings)
    return tf.where(tf.not_equal(raw, feature.pad), ids, tf.constant(-1, tf.int64))


def _numeric_values(features: list[NumericFeature], columns: dict, analyzers: bool) -> dict[str, tf.Tensor]:
    """Standardised values (and bucket ids) with the same float32 ops as ``FeaturePreprocessing._dense``."""
    if not features:
        return {}
    raw = tf.stack([tf.where(columns[f.name][1], _to_float(columns[f.name][0]), float("nan")) for f in features],
                   axis=1)
    missing = tf.math.is_nan(raw)
    logged = tf.where(tf.constant([f.log for f in features]), tf.math.log1p(tf.maximum(raw, 0.0)), raw)
    if analyzers:
        # Embedded encodings keep the spec's statistics: their bin edges are placed with them.
        moments = [_moments(f.name, value, gap) if f.encoding == SCALAR else
                   (tf.constant(f.mean, tf.float32), tf.constant(f.std, tf.float32))
                   for f, value, gap in zip(features, tf.unstack(logged, axis=1), tf.unstack(missing, axis=1))]
        means, stds = tf.stack([m for m, _ in moments]), tf.stack([s for _, s in moments])
    else:
        means = tf.constant([f.mean for f in features], tf.float32)
        # A constant column has variance 0: divide by 1, as FeaturePreprocessing does.
        stds = tf.constant([max(f.variance, 0.0) ** 0.5 or 1.0 for f in features], tf.float32)
    standardised = (logged - means) / stds
    standardised = tf.where(missing, tf.zeros_like(standardised), standardised)
    outputs = dict(zip((f.name for f in features), tf.unstack(standardised, axis=1)))
    # Keras buckets the raw value with missing as 0.0 (FeaturePreprocessing).
    filled = tf.unstack(tf.where(missing, 0.0, raw), axis=1)
    for feature, value in zip(features, filled):
        if feature.boundaries:
            buckets = tft.apply_buckets(value, tf.constant([feature.boundaries], tf.float32))
            outputs[feature.name + BUCKET_SUFFIX] = tf.cast(buckets, tf.int64)
    return outputs


def _moments(name: str, logged: tf.Tensor, missing: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    observed = tf.boolean_mask(logged, ~missing)
    mean = tft.mean(observed, name=_MEAN_PREFIX + name)
    variance = tft.var(observed, name=_VARIANCE_PREFIX + name)
    return mean, tf.where(variance > 0, tf.sqrt(variance), 1.0)


def _label(label: Label, value: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    if label.positive is None:
        return tf.where(present, _to_float(value), 0.0)
    if value.dtype == tf.string:
        hits = [tf.equal(value, str(p)) for p in label.positive]
    else:
        hits = [tf.equal(tf.cast(value, tf.float64), float(p)) for p in label.positive]
    return tf.cast(tf.reduce_any(tf.stack(hits), axis=0) & present, tf.float32)


# ------------------------------------------------------------- fitted spec
def fitted_spec(spec: FeatureSpec, tft_output: tft.TFTransformOutput, statistics: str = SPEC_STATISTICS
                ) -> FeatureSpec:
    """The spec whose vocabularies match the Transform graph (it sizes the embeddings).

    With ``"spec"`` statistics the graph applied the spec as is. With
    ``"analyzers"`` the vocabularies were re-estimated: read them back from the
    Transform output, in the order of their ids.
    """
    if statistics != ANALYZER_STATISTICS:
        return spec
    features = []
    for feature in spec.features:
        if isinstance(feature, CategoricalFeature) and feature.vocabulary is not None:
            values = [v.decode() for v in tft_output.vocabulary_by_name(_VOCABULARY_PREFIX + feature.name)]
            feature = dataclasses.replace(feature, vocabulary=tuple(int(v) if feature.dtype == INT64 else v
                                                                   for v in values))
        features.append(feature)
    return dataclasses.replace(spec, features=tuple(features))
