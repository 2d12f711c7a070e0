"""Inferring a feature spec from a DataFrame: every default in :class:`InferenceOptions`.

:meth:`tfmtl.features.FeatureSpec.from_dataframe` is the entry point; this module holds how each
column becomes a feature and how an id space is sized (a vocabulary, or a hash space sized from the
distinct count so that collisions stay rare, see :func:`hash_buckets_for`).

>>> InferenceOptions().embedding_dim, InferenceOptions(numeric_encoding="scalar").numeric_encoding
(16, 'scalar')
>>> InferenceOptions().replace(embedding_dim=8).embedding_dim
8
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfmtl.features.frames import flatten_lists, is_list_column
from tfmtl.features.schema import (
    INT64,
    PAD,
    PLE,
    POOLINGS,
    SCALAR,
    STRING,
    CategoricalFeature,
    Feature,
    Label,
    ListFeature,
    NumericFeature,
    SpecError,
    check_numeric_encoding,
)

# A vocabulary covers recommender-sized id spaces: 1M ids at width 16 is a 64 MB float32 table, so
# inference hashes only above that, never silently (see expected_collision_share and InferenceReport).
DEFAULT_MAX_VOCABULARY = 1_000_000
# Above the cap the hash space is sized so that fewer than this share of the distinct ids share a bucket.
DEFAULT_MAX_COLLISION_SHARE = 0.05
# What FeatureSpec.from_dataframe infers unless told (bench/results/tabular.md). Wider fields and finer bins
# than the hand-written features' 4: with 4 and 16 the numeric fields were the bottleneck on every data set;
# 64 bins against 32 lifted california by 0.0013 and changed no other data set by more than 0.0005.
DEFAULT_NUMERIC_ENCODING = PLE
DEFAULT_EMBEDDING_DIM = 16
DEFAULT_NUMERIC_BINS = 64


def expected_collision_share(num_values: int, num_buckets: int) -> float:
    """Expected share of ``num_values`` distinct ids that share a bucket with another id.

    With a uniform hash one id avoids each of the other ``n - 1`` ids with probability
    ``1 - 1/m``, independently, so it collides with probability ``1 - (1 - 1/m)^(n - 1)``
    (about ``1 - exp(-(n - 1)/m)``); by linearity that is also the expected share of ids.
    """
    if num_values < 0 or num_buckets < 1:
        raise ValueError(f"expected_collision_share: need num_values >= 0 and num_buckets >= 1, "
                         f"got {num_values} and {num_buckets}")
    if num_values <= 1:
        return 0.0
    return float(-math.expm1((num_values - 1) * math.log1p(-1.0 / num_buckets))) if num_buckets > 1 else 1.0


def hash_buckets_for(num_values: int, max_collision_share: float = DEFAULT_MAX_COLLISION_SHARE) -> int:
    """Fewest hash buckets whose expected collision share for ``num_values`` ids is below the target.

    Inverts ``1 - (1 - 1/m)^(n - 1) < s``: ``m > 1 / (1 - (1 - s)^(1/(n - 1)))`` (about
    ``(n - 1) / -ln(1 - s)``, 19.5 buckets per id at s = 5%).
    """
    _check_share(max_collision_share)
    if num_values <= 1:
        return 1
    buckets = math.floor(-1.0 / math.expm1(math.log1p(-max_collision_share) / (num_values - 1))) + 1
    while expected_collision_share(num_values, buckets) >= max_collision_share:  # guards float rounding
        buckets += 1
    return buckets


@dataclasses.dataclass(frozen=True)
class TableChoice:
    """What inference chose for one categorical or list feature's id space, and why."""

    name: str
    distinct_values: int
    vocabulary_size: int | None
    hash_buckets: int | None
    expected_collision_share: float

    def __str__(self) -> str:
        if self.hash_buckets is None:
            return f"{self.name}: vocabulary of {self.vocabulary_size:,} values (of {self.distinct_values:,} distinct)"
        return (f"{self.name}: {self.distinct_values:,} distinct values hashed into {self.hash_buckets:,} buckets "
                f"(expected collision share {self.expected_collision_share:.1%})")


@dataclasses.dataclass(frozen=True)
class InferenceReport:
    """Per-feature id-space choices of :meth:`FeatureSpec.from_dataframe` (``spec.inference_report``)."""

    tables: tuple = ()

    @property
    def hashed(self) -> list[TableChoice]:
        return [t for t in self.tables if t.hash_buckets is not None]

    def __str__(self) -> str:
        return "\n".join(str(t) for t in self.tables)


def _check_share(value: float, name: str = "max_collision_share") -> None:
    if not 0 < value < 1:
        raise SpecError(f"{name} must be in (0, 1), got {value}")


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """Every default of spec inference, in one place.

    The command lines, the census data set and the pipeline build one of these (or
    :meth:`replace` one) and hand it to :meth:`tfmtl.features.FeatureSpec.from_dataframe`; which
    columns are labels, categoricals or excluded is said there, per data set.

    Attributes:
      embedding_dim: width of every inferred field. 16: with 4, the hand-written features' width,
        the numeric fields were the bottleneck on every tabular data set (bench/results/tabular.md).
      max_vocabulary: a categorical or list feature with more kept values than this is hashed. A
        million ids at width 16 is a 64 MB float32 table, so recommender ids get a vocabulary.
      max_collision_share: above the cap, the hash space is the fewest buckets that keep the expected
        share of ids sharing a bucket below this (:func:`hash_buckets_for`).
      hash_buckets: a fixed hash space above the cap instead (``None``: sized from the share).
      min_frequency: values seen fewer times map to the out-of-vocabulary id.
      numeric_buckets: ``> 0`` adds that many quantile buckets per numeric column as an embedded field.
      log_skew_threshold: non-negative numerics more skewed than this are ``log1p``-transformed.
      numeric_encoding: ``"scalar"``, ``"ple"`` or ``"periodic"`` (see
        :class:`~tfmtl.features.NumericFeature`). PLE wins where numerics carry the signal and is level
        elsewhere (bench/results/tabular_v1.md).
      numeric_bins: PLE bins. 64 against 32 lifted california by 0.0013 and moved no other data set by
        more than 0.0005.
      bins: ``"quantile"`` (a value that holds a bin's share of the rows, such as the zeros of a
        capital-gain column, is an edge of its own) or ``"tree"`` (a decision tree's splits on the first
        label: target-aware).
      list_pooling: how inferred list features pool (``"mean"``, ``"sum"``, ``"max"``; ``None`` keeps
        a sequence).
      list_length_quantile: a list feature's ``max_length`` is this quantile of the row lengths, rounded
        up, at least 1 ...
      max_list_length: ... and at most this.
    """

    embedding_dim: int = DEFAULT_EMBEDDING_DIM
    max_vocabulary: int = DEFAULT_MAX_VOCABULARY
    max_collision_share: float = DEFAULT_MAX_COLLISION_SHARE
    hash_buckets: int | None = None
    min_frequency: int = 1
    numeric_buckets: int = 0
    log_skew_threshold: float = 2.0
    numeric_encoding: str = DEFAULT_NUMERIC_ENCODING
    numeric_bins: int = DEFAULT_NUMERIC_BINS
    bins: str = "quantile"
    list_pooling: str | None = "mean"
    list_length_quantile: float = 0.95
    max_list_length: int = 50

    def __post_init__(self):
        for name in ("embedding_dim", "max_vocabulary", "min_frequency", "numeric_bins", "max_list_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SpecError(f"inference option {name} must be an integer >= 1, got {value!r}")
        if self.hash_buckets is not None and (isinstance(self.hash_buckets, bool) or self.hash_buckets < 1):
            raise SpecError(f"inference option hash_buckets must be None or >= 1, got {self.hash_buckets!r}")
        if self.numeric_buckets < 0:
            raise SpecError(f"inference option numeric_buckets must be >= 0, got {self.numeric_buckets}")
        _check_share(self.max_collision_share, "inference option max_collision_share")
        check_numeric_encoding(self.numeric_encoding, "inference option numeric_encoding")
        if self.bins not in ("quantile", "tree"):
            raise SpecError(f"inference option bins must be 'quantile' or 'tree', got {self.bins!r}")
        if self.list_pooling is not None and self.list_pooling not in POOLINGS:
            raise SpecError(f"inference option list_pooling must be one of {POOLINGS} or None, "
                            f"got {self.list_pooling!r}")
        if not 0 < self.list_length_quantile <= 1:
            raise SpecError(f"inference option list_length_quantile must be in (0, 1], "
                            f"got {self.list_length_quantile}")

    def replace(self, **changes: Any) -> InferenceOptions:
        """A copy with ``changes``; an unknown name is a :class:`SpecError` that lists the options."""
        known = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise SpecError(f"unknown inference option(s) {unknown}; the options are {known}")
        return dataclasses.replace(self, **changes)


class _TableSizing:
    """Chooses a vocabulary or a hash space for one feature and records the choice."""

    def __init__(self, options: InferenceOptions):
        self.options = options
        self.choices: list[TableChoice] = []

    def table(self, name: str, values: pd.Series, is_integer: bool) -> dict:
        """``vocabulary=`` or ``hash_buckets=`` for a feature whose (flattened, non-missing) values are ``values``."""
        counts = values.value_counts()
        distinct = len(counts)
        counts = counts[counts >= self.options.min_frequency]
        if len(counts) <= self.options.max_vocabulary:
            self.choices.append(TableChoice(name, distinct, len(counts), None, 0.0))
            # Sorted by frequency (ties by value) so ids are stable across runs.
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            return {"vocabulary": tuple(int(v) if is_integer else v for v, _ in ordered)}
        buckets = self.options.hash_buckets or hash_buckets_for(len(counts), self.options.max_collision_share)
        self.choices.append(TableChoice(name, distinct, None, buckets, expected_collision_share(len(counts), buckets)))
        return {"hash_buckets": buckets}


def _infer_categorical(name: str, column: pd.Series, table: _TableSizing,
                       extra_values: Sequence[pd.Series] = ()) -> CategoricalFeature:
    is_integer = pd.api.types.is_integer_dtype(column)
    values = column.dropna()
    if extra_values:  # the flattened values of the list columns that share this table
        values = pd.concat([values.astype(object), *extra_values], ignore_index=True)
        if is_integer:
            values = _integer_values(name, values)
    if not is_integer:
        values = values.astype(str)
    return CategoricalFeature(name, embedding_dim=table.options.embedding_dim, dtype=INT64 if is_integer else STRING,
                              **table.table(name, values, is_integer))


def _integer_values(name: str, values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() | (numbers != np.round(numbers))]
    if len(bad):
        raise SpecError(f"feature '{name}' holds int64 codes but has the value {bad.iloc[0]!r}")
    return numbers.astype(np.int64)


def _infer_list(name: str, column: pd.Series, table: _TableSizing, shares: str | None,
                owner_column: pd.Series | None) -> ListFeature:
    options = table.options
    flat = flatten_lists(column)
    lengths = np.bincount(flat.index.to_numpy(np.int64), minlength=len(column))
    max_length = int(min(max(math.ceil(np.quantile(lengths, options.list_length_quantile)), 1),
                         options.max_list_length))
    common = {"embedding_dim": options.embedding_dim, "pooling": options.list_pooling}
    if shares is not None:
        dtype = INT64 if pd.api.types.is_integer_dtype(owner_column) else STRING
        return ListFeature(name, max_length, dtype=dtype, shares=shares, **common)
    is_integer = len(flat) > 0 and pd.api.types.infer_dtype(flat, skipna=True) == "integer"
    dtype = INT64 if is_integer else STRING
    values = _integer_values(name, flat) if is_integer else flat.astype(str)
    values = values[values != PAD[dtype]]
    return ListFeature(name, max_length, dtype=dtype, **common, **table.table(name, values, is_integer))


def _label_values(label: Label, df: pd.DataFrame) -> pd.Series:
    column = df[label.column]
    if label.positive is not None:
        return column.isin(label.positive).astype(np.float64)
    return pd.to_numeric(column, errors="coerce").fillna(0).astype(np.float64)


def _ple_edges(transformed: pd.Series, num_bins: int, target: pd.Series | None) -> tuple | None:
    """Bin edges on the transformed scale: quantiles, or a tree's splits between min and max."""
    values = transformed.to_numpy(np.float64)
    low, high = float(values.min()), float(values.max())
    if target is None:
        inner = _quantile_edges(values, num_bins)
    else:
        from sklearn.tree import DecisionTreeClassifier

        tree = DecisionTreeClassifier(max_leaf_nodes=max(num_bins, 2), min_samples_leaf=max(len(values) // 200, 1),
                                      random_state=0)
        tree.fit(values.reshape(-1, 1), target.loc[transformed.index].to_numpy())  # rows with a value
        inner = tree.tree_.threshold[tree.tree_.feature >= 0]
    edges = sorted({low, high, *(float(e) for e in inner if low < e < high)})
    return tuple(edges) if len(edges) >= 2 else None


def _quantile_edges(values: np.ndarray, num_bins: int) -> np.ndarray:
    """Inner edges: quantiles, except that a value holding at least one bin's share of the rows is an edge of
    its own and the other bins split the remaining rows.

    Plain quantiles of a column that is 0 in 90 % of the rows put every inner edge at 0 and leave one bin for
    all the non-zero values, where the signal is (Adult's capital gain).
    """
    distinct, counts = np.unique(values, return_counts=True)
    heavy = distinct[counts >= len(values) / num_bins]
    rest = values[~np.isin(values, heavy)]
    share = num_bins - len(heavy)
    inner = np.quantile(rest, np.linspace(0, 1, share + 1)[1:-1]) if share > 1 and rest.size else np.array([])
    return np.concatenate([heavy, inner])


def _infer_numeric(name: str, column: pd.Series, options: InferenceOptions,
                   target: pd.Series | None) -> NumericFeature:
    encoding, numeric_buckets = options.numeric_encoding, options.numeric_buckets
    values = pd.to_numeric(column, errors="coerce").dropna().astype(np.float64)
    if values.empty:
        raise SpecError(f"feature '{name}': numeric column has no values")
    log = bool(values.min() >= 0 and values.skew() > options.log_skew_threshold)
    transformed = np.log1p(values) if log else values
    boundaries = None
    if numeric_buckets > 0:
        quantiles = np.quantile(values, np.linspace(0, 1, numeric_buckets + 1)[1:-1])
        unique = sorted(set(float(q) for q in quantiles))
        boundaries = tuple(unique) if unique else None
    edges = None
    if encoding == PLE:
        edges = _ple_edges(transformed, options.numeric_bins, target)
    if values.nunique() < 2:
        encoding, edges = SCALAR, None  # a constant column has nothing to encode
    # Population variance (ddof=0), as tft.scale_to_z_score and keras Normalization use.
    return NumericFeature(name, mean=float(np.mean(transformed)), variance=float(np.var(np.asarray(transformed))),
                          log=log, boundaries=boundaries, embedding_dim=options.embedding_dim, encoding=encoding,
                          edges=edges)


def infer_features(
    df: pd.DataFrame,
    labels: Sequence[Label | str] = (),
    *,
    categorical: Iterable[str] | None = None,
    numeric: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    weight_column: str | None = None,
    shared_embeddings: Mapping[str, str] | None = None,
    options: InferenceOptions | None = None,
) -> tuple[list[Feature], list[Label], InferenceReport]:
    """The features and labels :meth:`tfmtl.features.FeatureSpec.from_dataframe` builds its spec from,
    and the report of the id spaces it chose (the column roles are its arguments; see there)."""
    options = options or InferenceOptions()
    if not isinstance(options, InferenceOptions):
        raise SpecError(f"from_dataframe: options must be an InferenceOptions, got {type(options).__name__}")
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise SpecError("from_dataframe: the DataFrame is empty")
    labels = [label if isinstance(label, Label) else Label(label) for label in labels]
    categorical = set(categorical or ())
    numeric_names = set(numeric or ())
    skip = set(exclude) | {label.column for label in labels}
    if weight_column:
        skip.add(weight_column)
    for name in (categorical | numeric_names | {label.column for label in labels} | ({weight_column} - {None})):
        if name not in df.columns:
            raise SpecError(f"column '{name}' is not in the DataFrame (columns: {list(df.columns)[:20]}...)")
    target = None
    if options.numeric_encoding == PLE and options.bins == "tree":
        if not labels:
            raise SpecError("from_dataframe: bins='tree' needs a label to fit the tree to")
        target = _label_values(labels[0], df)

    shared = dict(shared_embeddings or {})
    list_columns = {name for name in df.columns if name not in skip and is_list_column(df[name])}
    for name, owner in shared.items():
        if name not in list_columns:
            raise SpecError(f"shared_embeddings: column '{name}' is not a list column of the DataFrame")
        if owner not in df.columns or owner in skip or owner in list_columns:
            raise SpecError(f"shared_embeddings: '{name}' shares '{owner}', which must be a categorical "
                            "feature column of the DataFrame")
    table = _TableSizing(options)
    features: list[Feature] = []
    for name in df.columns:
        if name in skip:
            continue
        column = df[name]
        if name in list_columns:
            owner = shared.get(name)
            features.append(_infer_list(name, column, table, owner, df[owner] if owner else None))
            continue
        sharers = [flatten_lists(df[list_name]) for list_name, owner in shared.items() if owner == name]
        is_numeric_dtype = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if sharers or name in categorical or (name not in numeric_names and not is_numeric_dtype):
            features.append(_infer_categorical(name, column, table, sharers))
        else:
            features.append(_infer_numeric(name, column, options, target))
    return features, labels, InferenceReport(tuple(table.choices))
