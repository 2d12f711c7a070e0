"""Warm start a model on a new span's vocabularies from a model trained on the last span.

Every weight of the trained (old) model is copied into a model built from the new span's
:class:`~tfmtl.features.FeatureSpec`. The embedding tables are the exception, because a
vocabulary that grew or was re-ordered changes their rows:

* a vocabulary field: the row of each known value moves to the value's new id, the
  out-of-vocabulary row 0 stays row 0, and values new in this span keep the new model's
  initializer rows; per field this is ``tf.keras.utils.warmstart_embedding_matrix`` with the
  new model's own rows as the initializer (``Constant``), so the new rows are exactly the
  new model's;
* a hashed field (and a bucketised numeric with the same boundaries): rows are kept as
  they are, row ``i`` is still bucket ``i``;
* a list feature that ``shares`` another feature's table (a history over the item table)
  has no rows of its own: it follows its owner, whose rows are moved as above;
* a feature new in the spec keeps the initializer rows of its field.

tfmtl packs every field's table into one ``FieldEmbedding`` (``embedding``; the lists'
own tables in ``list_embedding``; the FM's first-order weights are one more packed table
over the same fields), so the remap is done per field slice of each packed table.

Layers are matched by name (tfmtl names every weighted layer). Any other weight must have the
same shape in both models: a different shape (a wider MLP, a PLE with other bins, a new domain
count) or a layer the trained model lacks raises :class:`WarmStartError` naming the layer.
Optimizer state is not carried: the new model starts a fresh optimizer.

:func:`grown_spec` makes the new span's spec from the old one: the same features and
statistics, with each vocabulary extended by the values first seen in the new rows.

Example:

>>> import pandas as pd
>>> from tfmtl.features import FeatureSpec, Label
>>> from tfmtl.models import SingleTask
>>> day1 = pd.DataFrame({"user": ["a", "b", "a"], "click": [1, 0, 1]})
>>> old_spec = FeatureSpec.from_dataframe(day1, labels=[Label("click")])
>>> old = SingleTask(old_spec, units=[4])
>>> day2 = pd.DataFrame({"user": ["c", "b", "c"], "click": [0, 1, 1]})
>>> new_spec = grown_spec(old_spec, day2)
>>> new_spec.feature("user").vocabulary
('a', 'b', 'c')
>>> report = warm_start(SingleTask(new_spec, units=[4]), old)
>>> report.carried["user"], report.new["user"]
(3, 1)
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.features.frames import flatten_lists
from tfmtl.features.schema import CategoricalFeature, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import FeatureSpec
from tfmtl.layers.embedding import FieldEmbedding

__all__ = ["WarmStartError", "WarmStartReport", "grown_spec", "load_for_warm_start", "warm_start"]

_OOV = object()  # the key of row 0 in both vocabularies: no real value equals it


class WarmStartError(ValueError):
    """The trained model's weights cannot be carried into the new model: the message names the layer."""


@dataclasses.dataclass
class WarmStartReport:
    """What :func:`warm_start` did: per embedded feature, rows carried over and rows left at the initializer
    (``carried[f] + new[f]`` is its id count; OOV included); ``weights``: weights copied as they are."""

    carried: dict[str, int] = dataclasses.field(default_factory=dict)
    new: dict[str, int] = dataclasses.field(default_factory=dict)
    weights: int = 0


def load_for_warm_start(model: keras.Model | str | os.PathLike) -> keras.Model:
    """A trained model, or the ``.keras`` file of one (loaded without its optimizer)."""
    if isinstance(model, keras.Model):
        return model
    path = os.fspath(model)
    if not os.path.exists(path):
        raise WarmStartError(f"warm start: no trained model at '{path}'")
    import tfmtl.models  # noqa: F401  (registers the model classes the file names)

    return keras.models.load_model(path, compile=False)


def warm_start(model: keras.Model, trained: keras.Model | str | os.PathLike, *, spec: FeatureSpec | None = None,
               trained_spec: FeatureSpec | None = None) -> WarmStartReport:
    """Copies ``trained``'s weights into ``model`` (in place), remapping the embedding rows by vocabulary.

    Args:
      model: the new model, built from the new span's spec (``model.spec`` unless ``spec``).
      trained: the trained model or its ``.keras`` path, with the old spec (``trained.spec``
        unless ``trained_spec``).

    Returns: a :class:`WarmStartReport`. Raises :class:`WarmStartError` naming the layer when a
    non-embedding weight differs in shape, or a field changed its kind or hash size.
    """
    trained = load_for_warm_start(trained)
    spec = FeatureSpec.coerce(spec if spec is not None else _spec_of(model, "model"))
    trained_spec = FeatureSpec.coerce(trained_spec if trained_spec is not None else _spec_of(trained, "trained"))
    report = WarmStartReport()
    old_layers = {layer.name: layer for layer in trained.layers}
    unmatched = [layer.name for layer in model.layers if layer.weights and layer.name not in old_layers]
    if unmatched:  # layers are matched by name: a missing one would silently stay at its initial weights
        raise WarmStartError(f"warm start: layer(s) {unmatched} of the new model have no layer of the same name in "
                             "the trained model; build both with the same architecture")
    updates = []
    for layer in model.layers:
        if not layer.weights:
            continue
        old = old_layers[layer.name]
        if len(old.weights) != len(layer.weights):
            raise WarmStartError(f"warm start: layer '{layer.name}' has {len(old.weights)} weights in the trained "
                                 f"model and {len(layer.weights)} in the new one")
        tables = _tables_by_variable(layer)
        old_tables = _tables_by_variable(old)
        for new_var, old_var in zip(layer.weights, old.weights):
            if id(new_var) in tables:
                kind = "lists" if layer.name == "list_embedding" else "fields"  # base.py's names
                value = _remap_table(kind, layer.name, old_tables.get(id(old_var)), tables[id(new_var)],
                                     old_var.numpy(), new_var.numpy(), trained_spec, spec, report)
                updates.append((new_var, value))
                continue
            if tuple(old_var.shape) != tuple(new_var.shape):
                raise WarmStartError(f"warm start: layer '{layer.name}': weight '{new_var.name}' has shape "
                                     f"{tuple(old_var.shape)} in the trained model and {tuple(new_var.shape)} in the "
                                     "new one; only embedding tables may change with the vocabularies")
            updates.append((new_var, old_var.numpy()))
            report.weights += 1
    for variable, value in updates:  # only once every check passed: a failed warm start leaves the model as it was
        variable.assign(value)
    return report


def _spec_of(model, what: str) -> FeatureSpec:
    spec = getattr(model, "spec", None)
    if spec is None:
        raise WarmStartError(f"warm start: the {what} model has no feature spec (not a tfmtl model); pass "
                             f"{'spec' if what == 'model' else 'trained_spec'}=")
    return spec


def _tables_by_variable(layer) -> dict[int, FieldEmbedding]:
    """``{id(variable): FieldEmbedding}`` of the packed embedding tables in ``layer`` (itself included)."""
    found = {}
    for sub in [layer, *layer._flatten_layers(include_self=False)]:
        if isinstance(sub, FieldEmbedding) and sub.built:
            found[id(sub.embeddings)] = sub
    return found


def _table_features(kind: str, spec: FeatureSpec) -> list:
    return spec.list_tables if kind == "lists" else spec.fields


def _remap_table(kind, layer_name, old_table, new_table, old_value, new_value, old_spec, new_spec,
                 report) -> np.ndarray:
    old_features, new_features = _table_features(kind, old_spec), _table_features(kind, new_spec)
    for table, features, which in ((old_table, old_features, "trained"), (new_table, new_features, "new")):
        sizes = [f.num_ids for f in features]
        if table is None or list(table.field_sizes) != sizes:
            raise WarmStartError(f"warm start: layer '{layer_name}': its table's field sizes "
                                 f"{None if table is None else table.field_sizes} do not match the {which} spec's "
                                 f"{kind} {sizes}")
    if old_value.shape[1:] != new_value.shape[1:]:
        raise WarmStartError(f"warm start: layer '{layer_name}': embedding width {old_value.shape[1:]} in the trained "
                             f"model, {new_value.shape[1:]} in the new one")
    old_offsets = dict(zip((f.name for f in old_features), np.cumsum([0] + [f.num_ids for f in old_features])))
    old_by_name = {f.name: f for f in old_features}
    value = new_value.copy()
    start = 0
    for feature in new_features:
        rows = slice(start, start + feature.num_ids)
        start += feature.num_ids
        before = old_by_name.get(feature.name)
        if before is None:
            report.new.setdefault(feature.name, feature.num_ids)
            continue
        old_rows = old_value[old_offsets[feature.name]:old_offsets[feature.name] + before.num_ids]
        value[rows], carried = _remap_field(layer_name, before, feature, old_rows, new_value[rows])
        report.carried[feature.name] = carried
        report.new[feature.name] = feature.num_ids - carried
    return value


def _remap_field(layer_name, before, after, old_rows, new_rows) -> tuple[np.ndarray, int]:
    """The new field's rows and how many came from the trained ones."""
    if isinstance(after, NumericFeature):
        if not isinstance(before, NumericFeature) or before.boundaries != after.boundaries:
            raise WarmStartError(f"warm start: layer '{layer_name}': feature '{after.name}''s bucket boundaries "
                                 "changed; keep the trained spec's numeric features (grown_spec does)")
        return old_rows, len(old_rows)
    if isinstance(before, NumericFeature) or (before.vocabulary is None) != (after.vocabulary is None):
        raise WarmStartError(f"warm start: layer '{layer_name}': feature '{after.name}' changed between a vocabulary, "
                             "hashing and buckets; its rows cannot be carried over")
    if after.vocabulary is None:  # hashed: bucket i is still bucket i
        if before.hash_buckets != after.hash_buckets:
            raise WarmStartError(f"warm start: layer '{layer_name}': feature '{after.name}' is hashed into "
                                 f"{before.hash_buckets} buckets in the trained spec and {after.hash_buckets} in the "
                                 "new one; the hash of a value changes with the bucket count")
        return old_rows, len(old_rows)
    old_vocabulary, new_vocabulary = [_OOV, *before.vocabulary], [_OOV, *after.vocabulary]
    rows = keras.utils.warmstart_embedding_matrix(old_vocabulary, new_vocabulary, tf.constant(old_rows),
                                                  keras.initializers.Constant(new_rows))
    carried = len(set(before.vocabulary) & set(after.vocabulary)) + 1  # + the OOV row
    return np.asarray(rows), carried


def grown_spec(spec: FeatureSpec, df: pd.DataFrame, *, min_frequency: int = 1) -> FeatureSpec:
    """``spec`` with each vocabulary extended by the values of ``df`` it lacks, known values keeping their ids.

    New values are appended most frequent first (ties by value), counted over the feature's
    column and, for a table owner, the list columns that share it. Hashed features, numeric
    statistics and labels are kept as they are, so every non-embedding weight keeps its shape.
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise SpecError("grown_spec: needs a non-empty DataFrame of the new span")
    sharers: dict[str, list[str]] = {}
    for feature in spec.lists:
        if feature.shares is not None:
            sharers.setdefault(feature.shares, []).append(feature.name)
    features = []
    for feature in spec.features:
        if not isinstance(feature, (CategoricalFeature, ListFeature)) or feature.vocabulary is None:
            features.append(feature)
            continue
        columns = [feature.name, *sharers.get(feature.name, [])]
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SpecError(f"grown_spec: column(s) {missing} of feature '{feature.name}' are missing from the "
                            "DataFrame")
        values = [flatten_lists(df[c]) if isinstance(spec.feature(c), ListFeature) else df[c].dropna()
                  for c in columns]
        values = pd.concat(values, ignore_index=True) if len(values) > 1 else values[0]
        values = values.astype(np.int64) if feature.dtype == "int64" else values.astype(str)
        counts = values.value_counts()
        known = set(feature.vocabulary)
        pad = feature.pad if isinstance(feature, ListFeature) else None
        fresh = [(v, n) for v, n in counts.items() if v not in known and n >= min_frequency and v != pad]
        fresh.sort(key=lambda kv: (-kv[1], str(kv[0])))
        cast = int if feature.dtype == "int64" else str
        features.append(dataclasses.replace(feature, vocabulary=feature.vocabulary + tuple(cast(v) for v, _ in fresh)))
    return dataclasses.replace(spec, features=tuple(features))
