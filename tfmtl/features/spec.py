"""The feature spec: one declarative description of columns, preprocessing and labels.

Keras inputs, the Keras preprocessing layer, the TFX ``preprocessing_fn`` and the
serving signatures are all derived from a :class:`FeatureSpec`, so training and
serving cannot disagree about a vocabulary, a normalisation constant or a label.

Example:

>>> import pandas as pd
>>> df = pd.DataFrame({"city": ["a", "b", "a"], "age": [20.0, 30.0, 40.0],
...                    "clicked": [0, 1, 1]})
>>> spec = FeatureSpec.from_dataframe(df, labels=[Label("clicked")])
>>> [f.name for f in spec.features], spec.label_names
(['city', 'age'], ['clicked'])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import pandas as pd

STRING = "string"
INT64 = "int64"
_CATEGORICAL_DTYPES = (STRING, INT64)

# A vocabulary covers recommender-sized id spaces: 1M ids at width 16 is a 64 MB float32 table, so
# inference hashes only above that, never silently (see expected_collision_share and InferenceReport).
DEFAULT_MAX_VOCABULARY = 1_000_000
# Above the cap the hash space is sized so that fewer than this share of the distinct ids share a bucket.
DEFAULT_MAX_COLLISION_SHARE = 0.05


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
    if not 0 < max_collision_share < 1:
        raise ValueError(f"max_collision_share must be in (0, 1), got {max_collision_share}")
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


class SpecError(ValueError):
    """Bad input for a feature spec: the message names the field and the problem."""


def _checked_table(feature) -> tuple | None:
    """The checks a categorical and a list feature share: bucket count, width, and the
    vocabulary cast to the feature's dtype (``None`` without one)."""
    if feature.hash_buckets is not None and feature.hash_buckets < 1:
        raise SpecError(f"feature '{feature.name}': hash_buckets must be >= 1, got {feature.hash_buckets}")
    if feature.embedding_dim < 1:
        raise SpecError(f"feature '{feature.name}': embedding_dim must be >= 1, got {feature.embedding_dim}")
    if feature.vocabulary is None:
        return None
    cast = str if feature.dtype == STRING else int
    return tuple(cast(v) for v in feature.vocabulary)


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
    """A categorical column, embedded as one field.

    Exactly one of ``vocabulary`` (known values; anything else, missing values
    included, maps to the out-of-vocabulary id 0) or ``hash_buckets`` is set.
    ``dtype`` is the raw column type: ``"string"`` or ``"int64"`` (integer codes).
    """

    name: str
    vocabulary: tuple | None = None
    hash_buckets: int | None = None
    embedding_dim: int = 4
    dtype: str = STRING

    def __post_init__(self):
        if self.dtype not in _CATEGORICAL_DTYPES:
            raise SpecError(f"feature '{self.name}': dtype must be one of {_CATEGORICAL_DTYPES}, got {self.dtype!r}")
        if (self.vocabulary is None) == (self.hash_buckets is None):
            raise SpecError(f"feature '{self.name}': set exactly one of vocabulary or hash_buckets")
        vocabulary = _checked_table(self)
        if vocabulary is not None:
            object.__setattr__(self, "vocabulary", vocabulary)

    @property
    def num_ids(self) -> int:
        """Size of the id space: the vocabulary plus one OOV id, or the hash buckets."""
        return len(self.vocabulary) + 1 if self.vocabulary is not None else self.hash_buckets


POOLINGS = ("mean", "sum", "max")
PAD = {STRING: "", INT64: -1}  # the raw pad token of a list feature; the same value marks a missing scalar


@dataclasses.dataclass(frozen=True)
class ListFeature:
    """A list-valued categorical column (tags, genres, a behaviour history): up to ``max_length`` ids.

    Each cell holds a list (or tuple / numpy array) of values; ``None``/NaN cells and
    empty lists are empty, and ``None``/NaN elements are dropped. Raw values are padded
    with the pad token (``""`` for strings, ``-1`` for int64 codes) to ``max_length``;
    a longer list keeps its LAST ``max_length`` values (the most recent ones of a
    history in time order, as Keras' ``pad_sequences`` truncates). Values outside the
    vocabulary map to the OOV id 0 and stay real positions; only padding is masked.

    The ids come from ``vocabulary`` or ``hash_buckets`` (exactly one), or, with
    ``shares``, from the lookup and embedding table of the named categorical feature
    (history items share ``item_id``'s table); a shared list sets neither, and its
    ``dtype`` and ``embedding_dim`` must match that feature's.

    ``pooling`` (``"mean"``, ``"sum"`` or ``"max"`` over the real positions) makes the
    list one embedded field like a categorical; ``None`` keeps it as a masked
    sequence ``[batch, max_length, d]`` that a model consumes with
    ``history_attention={list: candidate}`` (DIN target attention).
    """

    name: str
    max_length: int
    vocabulary: tuple | None = None
    hash_buckets: int | None = None
    embedding_dim: int = 4
    dtype: str = STRING
    pooling: str | None = "mean"
    shares: str | None = None

    def __post_init__(self):
        if self.dtype not in _CATEGORICAL_DTYPES:
            raise SpecError(f"feature '{self.name}': dtype must be one of {_CATEGORICAL_DTYPES}, got {self.dtype!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, (int, np.integer)) \
                or self.max_length < 1:
            raise SpecError(f"feature '{self.name}': max_length must be an integer >= 1, got {self.max_length!r}")
        object.__setattr__(self, "max_length", int(self.max_length))
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise SpecError(f"feature '{self.name}': pooling must be one of {POOLINGS} or None (a sequence), "
                            f"got {self.pooling!r}")
        if self.shares is not None:
            if self.vocabulary is not None or self.hash_buckets is not None:
                raise SpecError(f"feature '{self.name}': shares='{self.shares}' uses that feature's ids; "
                                "set neither vocabulary nor hash_buckets")
        elif (self.vocabulary is None) == (self.hash_buckets is None):
            raise SpecError(f"feature '{self.name}': set exactly one of vocabulary, hash_buckets or shares")
        vocabulary = _checked_table(self)
        if vocabulary is not None:
            if PAD[self.dtype] in vocabulary:
                raise SpecError(f"feature '{self.name}': the vocabulary holds the pad token {PAD[self.dtype]!r}")
            object.__setattr__(self, "vocabulary", vocabulary)

    @property
    def pad(self) -> str | int:
        """The raw pad token: ``""`` (string) or ``-1`` (int64)."""
        return PAD[self.dtype]

    @property
    def num_ids(self) -> int:
        """Size of the id space of its own table (0 when it shares another feature's)."""
        if self.shares is not None:
            return 0
        return len(self.vocabulary) + 1 if self.vocabulary is not None else self.hash_buckets


SCALAR, PLE, PERIODIC = "scalar", "ple", "periodic"
NUMERIC_ENCODINGS = (SCALAR, PLE, PERIODIC)
# What FeatureSpec.from_dataframe infers unless told (bench/results/tabular.md). Wider fields and finer bins
# than the hand-written features' 4: with 4 and 16 the numeric fields were the bottleneck on every data set;
# 64 bins against 32 lifted california by 0.0013 and changed no other data set by more than 0.0005.
DEFAULT_NUMERIC_ENCODING = PLE
DEFAULT_EMBEDDING_DIM = 16
DEFAULT_NUMERIC_BINS = 64


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    """A numeric column: one standardised dense value, optionally also embedded as a field.

    The value is ``(log1p(x) if log else x)`` standardised with ``mean`` and
    ``variance`` (statistics of the transformed value); missing values become the
    mean. With ``boundaries`` the value is also bucketised into an embedded field.

    ``encoding`` says how the model embeds the standardised value as a field of
    width ``embedding_dim`` (Gorishniy et al., NeurIPS 2022):

    * ``"scalar"``: not embedded; the model sees the standardised value only.
    * ``"ple"``: piecewise-linear encoding over the bins ``edges`` (strictly
      increasing, on the ``log1p``-transformed scale where ``log``), then a
      per-feature linear map and ReLU. The edges are facts of the spec, fitted
      once, so every path applies the same ones.
    * ``"periodic"``: ``frequencies`` trainable frequencies (initialised from
      ``N(0, sigma)``), ``[cos, sin]`` of ``2 pi c z``, then linear and ReLU.
    """

    name: str
    mean: float = 0.0
    variance: float = 1.0
    log: bool = False
    boundaries: tuple | None = None
    embedding_dim: int = 4
    encoding: str = SCALAR
    edges: tuple | None = None
    frequencies: int = 16
    sigma: float = 1.0

    def __post_init__(self):
        if not (self.variance >= 0 and math.isfinite(self.variance)):
            raise SpecError(f"feature '{self.name}': variance must be finite and >= 0, got {self.variance}")
        if self.boundaries is not None:
            bounds = tuple(float(b) for b in self.boundaries)
            if list(bounds) != sorted(set(bounds)):
                raise SpecError(f"feature '{self.name}': boundaries must be strictly increasing")
            object.__setattr__(self, "boundaries", bounds)
        if self.encoding not in NUMERIC_ENCODINGS:
            raise SpecError(f"feature '{self.name}': encoding must be one of {NUMERIC_ENCODINGS}, "
                            f"got {self.encoding!r}")
        if self.edges is not None:
            edges = tuple(float(e) for e in self.edges)
            if len(edges) < 2 or list(edges) != sorted(set(edges)) or not all(map(math.isfinite, edges)):
                raise SpecError(f"feature '{self.name}': edges must be >= 2 finite, strictly increasing values, "
                                f"got {list(edges)[:5]}")
            object.__setattr__(self, "edges", edges)
        if self.encoding == PLE and self.edges is None:
            raise SpecError(f"feature '{self.name}': encoding 'ple' needs bin edges")
        if self.encoding == PERIODIC and (self.frequencies < 1 or not self.sigma > 0):
            raise SpecError(f"feature '{self.name}': periodic encoding needs frequencies >= 1 and sigma > 0, "
                            f"got {self.frequencies} and {self.sigma}")
        if self.embedding_dim < 1:
            raise SpecError(f"feature '{self.name}': embedding_dim must be >= 1, got {self.embedding_dim}")

    @property
    def num_ids(self) -> int:
        """Number of buckets when bucketised (len(boundaries) + 1), else 0."""
        return len(self.boundaries) + 1 if self.boundaries else 0

    @property
    def std(self) -> float:
        """The standard deviation used to standardise (1 for a constant column)."""
        return max(self.variance, 0.0) ** 0.5 or 1.0

    def standardised_edges(self) -> list[float]:
        """The PLE edges on the standardised scale the model sees (float64 maths)."""
        return [(e - self.mean) / self.std for e in self.edges]


@dataclasses.dataclass(frozen=True)
class Label:
    """A binary task label.

    ``column`` is the raw column (default: ``name``). With ``positive`` the label
    is 1 where the raw value is one of those values; without it the column must
    already hold 0/1 numbers.
    """

    name: str
    column: str | None = None
    positive: tuple | None = None

    def __post_init__(self):
        if self.column is None:
            object.__setattr__(self, "column", self.name)
        if self.positive is not None:
            object.__setattr__(self, "positive", tuple(self.positive))


Feature = Union[CategoricalFeature, NumericFeature, ListFeature]
_KINDS = {"categorical": CategoricalFeature, "numeric": NumericFeature, "list": ListFeature}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Features, labels and an optional sample-weight column of one data set."""

    features: tuple
    labels: tuple = ()
    weight_column: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "labels", tuple(self.labels))
        names = [f.name for f in self.features]
        if not names:
            raise SpecError("feature spec: at least one feature is required")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"feature spec: duplicate feature names {duplicates}")
        label_names = [label.name for label in self.labels]
        if len(set(label_names)) != len(label_names):
            raise SpecError(f"feature spec: duplicate label names {label_names}")
        leaked = sorted(set(names) & {label.column for label in self.labels})
        if leaked:
            raise SpecError(f"feature spec: label columns {leaked} are also features (target leak)")
        by_name = {f.name: f for f in self.features}
        for feature in self.lists:
            if feature.shares is None:
                continue
            owner = by_name.get(feature.shares)
            if not isinstance(owner, (CategoricalFeature, ListFeature)) or getattr(owner, "shares", None):
                raise SpecError(f"feature '{feature.name}': shares='{feature.shares}' must name a categorical or "
                                "list feature of the spec that owns its table")
            if (owner.dtype, owner.embedding_dim) != (feature.dtype, feature.embedding_dim):
                raise SpecError(f"feature '{feature.name}': shares '{owner.name}''s table, so its dtype and "
                                f"embedding_dim must be {owner.dtype!r} and {owner.embedding_dim}, got "
                                f"{feature.dtype!r} and {feature.embedding_dim}")

    # ----------------------------------------------------------------- views
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def categorical(self) -> list[CategoricalFeature]:
        return [f for f in self.features if isinstance(f, CategoricalFeature)]

    @property
    def numeric(self) -> list[NumericFeature]:
        return [f for f in self.features if isinstance(f, NumericFeature)]

    @property
    def lists(self) -> list[ListFeature]:
        """List-valued features, in spec order."""
        return [f for f in self.features if isinstance(f, ListFeature)]

    @property
    def list_tables(self) -> list[ListFeature]:
        """List features with an embedding table of their own (not ``shares``), in spec order."""
        return [f for f in self.lists if f.shares is None]

    def table_owner(self, feature: ListFeature) -> CategoricalFeature | ListFeature:
        """The feature whose lookup and embedding table ``feature`` uses (itself unless it shares one)."""
        return feature if feature.shares is None else self.feature(feature.shares)

    @property
    def fields(self) -> list[Feature]:
        """Embedded fields in model order: categoricals, then bucketised numerics."""
        return self.categorical + [f for f in self.numeric if f.boundaries]

    @property
    def field_sizes(self) -> list[int]:
        return [f.num_ids for f in self.fields]

    @property
    def embedded_numeric(self) -> list[NumericFeature]:
        """Numeric features embedded as fields of their own (PLE or periodic), after the id fields."""
        return [f for f in self.numeric if f.encoding != SCALAR]

    @property
    def embedding_dim(self) -> int:
        """The common embedding width of all fields (FM needs one width)."""
        dims = {f.embedding_dim for f in self.fields + self.embedded_numeric + self.lists}
        if len(dims) > 1:
            raise SpecError(f"feature spec: fields have different embedding_dim {sorted(dims)}; FM needs one")
        return dims.pop() if dims else 0

    def label(self, name: str) -> Label:
        for label in self.labels:
            if label.name == name:
                return label
        raise SpecError(f"label '{name}' is not in the spec; known labels: {self.label_names}")

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise SpecError(f"feature '{name}' is not in the spec")

    def raw_dtype(self, feature: Feature) -> str:
        """The raw input dtype of a feature: 'string', 'int64' or 'float32'."""
        return "float32" if isinstance(feature, NumericFeature) else feature.dtype

    def with_embedding_dim(self, dim: int) -> FeatureSpec:
        """A copy whose embedded fields all use ``dim``."""
        features = tuple(dataclasses.replace(f, embedding_dim=dim) for f in self.features)  # lists too
        return dataclasses.replace(self, features=features)

    # ------------------------------------------------------------ inference
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        labels: Sequence[Label | str] = (),
        *,
        categorical: Iterable[str] | None = None,
        numeric: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        weight_column: str | None = None,
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        max_vocabulary: int = DEFAULT_MAX_VOCABULARY,
        max_collision_share: float = DEFAULT_MAX_COLLISION_SHARE,
        hash_buckets: int | None = None,
        min_frequency: int = 1,
        numeric_buckets: int = 0,
        log_skew_threshold: float = 2.0,
        numeric_encoding: str = DEFAULT_NUMERIC_ENCODING,
        numeric_bins: int = DEFAULT_NUMERIC_BINS,
        bins: str = "quantile",
        list_pooling: str | None = "mean",
        list_length_quantile: float = 0.95,
        max_list_length: int = 50,
        shared_embeddings: Mapping[str, str] | None = None,
    ) -> FeatureSpec:
        """Infers a spec from a DataFrame (fit on the training split only).

        Object, string, category and bool columns (and those named in
        ``categorical``) become categorical; the other numeric columns numeric.
        A categorical with more than ``max_vocabulary`` values is hashed into
        ``hash_buckets`` buckets, by default the fewest that keep the expected share of its
        distinct values that share a bucket below ``max_collision_share`` (see
        :func:`hash_buckets_for`). ``spec.inference_report`` says what each categorical and
        list feature got (vocabulary or hashing, with the expected collision share). Non-negative numerics
        with skewness above ``log_skew_threshold`` are log1p-transformed.
        ``numeric_buckets > 0`` adds quantile buckets as an embedded field.

        ``numeric_encoding`` (``"scalar"``, ``"ple"`` or ``"periodic"``) is how every
        numeric column is embedded (see :class:`NumericFeature`). The default, PLE, wins the
        tabular benchmark where numerics carry the signal and is level elsewhere
        (``bench/results/tabular_v1.md``); ``"scalar"`` is the plain standardised input. PLE edges are
        ``numeric_bins`` bins: quantiles of the column (``bins="quantile"``; a value that holds at least
        one bin's share of the rows, such as the zeros of a capital-gain column, is an edge of its own) or the
        split points of a decision tree fitted to the first label (``bins="tree"``,
        target-aware). A column with fewer than two distinct values stays scalar.

        An object column whose cells are Python lists, tuples or numpy arrays becomes a
        :class:`ListFeature` pooled with ``list_pooling`` (``None``: kept as a sequence).
        Its vocabulary (or hashing, as above) comes from the flattened values; its
        ``max_length`` is the ``list_length_quantile`` quantile of the row lengths, rounded
        up, at least 1 and capped at ``max_list_length`` (longer lists keep their last
        values). ``shared_embeddings={list column: categorical column}`` makes the list use
        the categorical's ids and table (history items and the candidate ``item_id``); that
        categorical's vocabulary is then fitted on both columns' values.
        """
        if numeric_encoding not in NUMERIC_ENCODINGS:
            raise SpecError(f"from_dataframe: numeric_encoding must be one of {NUMERIC_ENCODINGS}, "
                            f"got {numeric_encoding!r}")
        if max_vocabulary < 1:
            raise SpecError(f"from_dataframe: max_vocabulary must be >= 1, got {max_vocabulary}")
        if not 0 < max_collision_share < 1:
            raise SpecError(f"from_dataframe: max_collision_share must be in (0, 1), got {max_collision_share}")
        if hash_buckets is not None and hash_buckets < 1:
            raise SpecError(f"from_dataframe: hash_buckets must be >= 1, got {hash_buckets}")
        table = _TableSizing(max_vocabulary, hash_buckets, max_collision_share)
        if bins not in ("quantile", "tree"):
            raise SpecError(f"from_dataframe: bins must be 'quantile' or 'tree', got {bins!r}")
        if numeric_bins < 1:
            raise SpecError(f"from_dataframe: numeric_bins must be >= 1, got {numeric_bins}")
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

        if not 0 < list_length_quantile <= 1 or max_list_length < 1:
            raise SpecError(f"from_dataframe: list_length_quantile must be in (0, 1] and max_list_length >= 1, "
                            f"got {list_length_quantile} and {max_list_length}")
        shared = dict(shared_embeddings or {})
        list_columns = {name for name in df.columns if name not in skip and _is_list_column(df[name])}
        for name, owner in shared.items():
            if name not in list_columns:
                raise SpecError(f"shared_embeddings: column '{name}' is not a list column of the DataFrame")
            if owner not in df.columns or owner in skip or owner in list_columns:
                raise SpecError(f"shared_embeddings: '{name}' shares '{owner}', which must be a categorical "
                                "feature column of the DataFrame")
        features: list[Feature] = []
        for name in df.columns:
            if name in skip:
                continue
            column = df[name]
            if name in list_columns:
                features.append(_infer_list(name, column, embedding_dim, table, min_frequency,
                                            list_pooling, list_length_quantile, max_list_length, shared.get(name),
                                            df[shared[name]] if name in shared else None))
                continue
            sharers = [_flatten_lists(df[list_name]) for list_name, owner in shared.items() if owner == name]
            if sharers:
                categorical = categorical | {name}
            is_numeric_dtype = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            if name in categorical or (name not in numeric_names and not is_numeric_dtype):
                features.append(_infer_categorical(name, column, embedding_dim, table,
                                                   min_frequency, sharers))
            else:
                target = None
                if numeric_encoding == PLE and bins == "tree":
                    if not labels:
                        raise SpecError("from_dataframe: bins='tree' needs a label to fit the tree to")
                    target = _label_values(labels[0], df)
                features.append(_infer_numeric(name, column, embedding_dim, numeric_buckets, log_skew_threshold,
                                               numeric_encoding, numeric_bins, target))
        spec = cls(tuple(features), tuple(labels), weight_column)
        object.__setattr__(spec, "_inference_report", InferenceReport(tuple(table.choices)))
        return spec

    @property
    def inference_report(self) -> InferenceReport | None:
        """What :meth:`from_dataframe` chose per categorical/list feature; ``None`` for a spec built otherwise."""
        return getattr(self, "_inference_report", None)

    # ---------------------------------------------------------- validation
    def check_dataframe(self, df: Any, *, require_labels: Sequence[str] = ()) -> None:
        """Raises :class:`SpecError` naming the first bad column of ``df``."""
        if not isinstance(df, pd.DataFrame):
            raise SpecError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.empty:
            raise SpecError("the DataFrame is empty: no rows to train or predict on")
        missing = [name for name in self.feature_names if name not in df.columns]
        if missing:
            raise SpecError(f"feature column(s) {missing} are missing from the DataFrame")
        for feature in self.features:
            column = df[feature.name]
            if isinstance(feature, ListFeature):
                _check_list_column(feature.name, column)
            elif isinstance(feature, NumericFeature) or feature.dtype == INT64:
                if not (pd.api.types.is_numeric_dtype(column) or column.isna().all()):
                    bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()].iloc[:3].tolist()
                    raise SpecError(
                        f"feature '{feature.name}' must be numeric ({self.raw_dtype(feature)}), "
                        f"got dtype {column.dtype} with values like {bad}")
        for name in require_labels:
            label = self.label(name)
            if label.column not in df.columns:
                raise SpecError(f"label '{name}': column '{label.column}' is missing from the DataFrame")
            if label.positive is None:
                values = pd.to_numeric(df[label.column], errors="coerce")
                if values.isna().any() or not values.isin([0, 1]).all():
                    raise SpecError(
                        f"label '{name}': column '{label.column}' must hold 0/1 values (or name its positive values: "
                        "Label(..., positive=...), --label NAME=COLUMN:VALUE,... on the command line)")
        if self.weight_column and require_labels:
            if self.weight_column not in df.columns:
                raise SpecError(f"weight column '{self.weight_column}' is missing from the DataFrame")
            weights = pd.to_numeric(df[self.weight_column], errors="coerce")
            if weights.isna().any() or (weights < 0).any():
                raise SpecError(f"weight column '{self.weight_column}' must hold non-negative numbers")

    # ----------------------------------------------------- DataFrame -> arrays
    def feature_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Raw feature columns as typed numpy arrays (missing values made explicit).

        Scalar features give ``[N]`` arrays; list features ``[N, max_length]`` arrays padded
        with the pad token (see :class:`ListFeature` and :func:`list_array`).
        """
        self.check_dataframe(df)
        arrays = {}
        for feature in self.features:
            column = df[feature.name]
            if isinstance(feature, ListFeature):
                arrays[feature.name] = list_array(column, feature.max_length, feature.dtype, feature.name)
            elif isinstance(feature, NumericFeature):
                arrays[feature.name] = pd.to_numeric(column, errors="coerce").to_numpy(np.float32)
            elif feature.dtype == INT64:
                # -1 is never a code in the vocabulary, so missing maps to OOV.
                arrays[feature.name] = pd.to_numeric(column, errors="coerce").fillna(-1).to_numpy(np.int64)
            elif column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string":
                arrays[feature.name] = column.to_numpy(object)  # already all str: skip the copies below
            else:
                arrays[feature.name] = column.fillna("").astype(str).to_numpy(object)
        return arrays

    def label_array(self, df: pd.DataFrame, name: str) -> np.ndarray:
        """Label ``name`` as a float32 0/1 array of shape [N, 1]."""
        self.check_dataframe(df.iloc[:1] if len(df) else df, require_labels=[name])
        label = self.label(name)
        column = df[label.column]
        if label.positive is not None:
            values = column.isin(label.positive)
        else:
            values = pd.to_numeric(column, errors="coerce")
        return values.to_numpy(np.float32).reshape(-1, 1)

    def weight_array(self, df: pd.DataFrame) -> np.ndarray | None:
        if not self.weight_column:
            return None
        return pd.to_numeric(df[self.weight_column], errors="coerce").to_numpy(np.float32)

    # ----------------------------------------------------------- serialisation
    def get_config(self) -> dict:
        return {
            "features": [{"kind": _kind(f), **dataclasses.asdict(f)} for f in self.features],
            "labels": [dataclasses.asdict(label) for label in self.labels],
            "weight_column": self.weight_column,
        }

    @classmethod
    def from_config(cls, config: Mapping) -> FeatureSpec:
        features = []
        for item in config["features"]:
            item = dict(item)
            kind = item.pop("kind")
            if kind not in _KINDS:
                raise SpecError(f"feature '{item.get('name')}': unknown kind {kind!r}")
            for key in ("vocabulary", "boundaries", "edges"):
                if item.get(key) is not None:
                    item[key] = tuple(item[key])
            features.append(_KINDS[kind](**item))
        labels = [Label(**label) for label in config.get("labels", ())]
        return cls(tuple(features), tuple(labels), config.get("weight_column"))

    @classmethod
    def coerce(cls, spec: FeatureSpec | Mapping) -> FeatureSpec:
        return spec if isinstance(spec, FeatureSpec) else cls.from_config(spec)

    def to_json(self) -> str:
        return json.dumps(self.get_config(), indent=1, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_config(json.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the spec as JSON atomically (temp file, then rename)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSpec:
        with open(path) as f:
            return cls.from_json(f.read())


def _kind(feature: Feature) -> str:
    return next(kind for kind, cls in _KINDS.items() if isinstance(feature, cls))


def _flatten_lists(column: pd.Series) -> pd.Series:
    """The elements of a list column, indexed by row position ``0..N-1``; missing cells and elements dropped."""
    exploded = pd.Series(column.to_numpy(object), index=np.arange(len(column)), dtype=object).explode()
    return exploded[exploded.notna()]


def _check_list_column(name: str, column: pd.Series) -> None:
    """A list column holds list-likes (or missing cells); a column of scalars is a mistake to name."""
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind != "empty" and kind != "mixed" and len(column.dropna()):
        raise SpecError(f"feature '{name}' is a list feature but the column holds {kind} scalars (dtype "
                        f"{column.dtype}), e.g. {column.dropna().iloc[:3].tolist()}; give each row a list")


def list_array(column: pd.Series, max_length: int, dtype: str = STRING, name: str = "") -> np.ndarray:
    """A list column as a ``[N, max_length]`` array padded with the pad token, without a loop per row.

    Missing cells and empty lists give all-padding rows; missing elements (and pad tokens)
    are dropped; a longer list keeps its last ``max_length`` values.

    >>> list_array(pd.Series([["a", "b", "c"], [], None]), 2).tolist()
    [['b', 'c'], ['', ''], ['', '']]
    """
    _check_list_column(name, column)
    rows = len(column)
    flat = _flatten_lists(column)
    pad = PAD[dtype]
    if dtype == INT64:
        numbers = pd.to_numeric(flat, errors="coerce")
        bad = flat[numbers.isna() | (numbers != np.round(numbers))]
        if len(bad):
            raise SpecError(f"feature '{name}' holds int64 codes but row {int(bad.index[0])} has {bad.iloc[0]!r}")
        values = numbers.to_numpy(np.int64)
        out = np.full((rows, max_length), pad, np.int64)
    else:
        values = flat.astype(str).to_numpy(object)
        out = np.full((rows, max_length), pad, object)
    keep = values != pad
    values, row = values[keep], flat.index.to_numpy(np.int64)[keep]
    lengths = np.bincount(row, minlength=rows)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(row)) - starts[row]  # 0-based position within its row
    # Keep the last max_length values: shift each row left by how much it is too long.
    position = position - np.maximum(lengths[row] - max_length, 0)
    kept = position >= 0
    out[row[kept], position[kept]] = values[kept]
    return out


def _is_list_column(column: pd.Series) -> bool:
    """Whether the first non-missing cells of an object column are lists, tuples or numpy arrays."""
    if column.dtype != object:
        return False
    sample = column.iloc[:1000]
    sample = sample[sample.map(lambda v: isinstance(v, (list, tuple, np.ndarray)) or not pd.isna(v))]
    return bool(len(sample)) and all(isinstance(v, (list, tuple, np.ndarray)) for v in sample.iloc[:100])


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class _TableSizing:
    """Chooses a vocabulary or a hash space for one feature and records the choice."""

    def __init__(self, max_vocabulary: int, hash_buckets: int | None, max_collision_share: float):
        self.max_vocabulary = max_vocabulary
        self.hash_buckets = hash_buckets
        self.max_collision_share = max_collision_share
        self.choices: list[TableChoice] = []

    def buckets(self, name: str, distinct: int, vocabulary_size: int) -> int | None:
        """Hash buckets for a feature with ``distinct`` values (``None``: use the vocabulary)."""
        if vocabulary_size <= self.max_vocabulary:
            self.choices.append(TableChoice(name, distinct, vocabulary_size, None, 0.0))
            return None
        buckets = self.hash_buckets or hash_buckets_for(vocabulary_size, self.max_collision_share)
        self.choices.append(TableChoice(name, distinct, None, buckets,
                                        expected_collision_share(vocabulary_size, buckets)))
        return buckets


def _infer_categorical(name, column, embedding_dim, table: _TableSizing, min_frequency,
                       extra_values: Sequence[pd.Series] = ()) -> CategoricalFeature:
    is_integer = pd.api.types.is_integer_dtype(column)
    dtype = INT64 if is_integer else STRING
    values = column.dropna()
    if extra_values:  # the flattened values of the list columns that share this table
        values = pd.concat([values.astype(object), *extra_values], ignore_index=True)
        if is_integer:
            values = _integer_values(name, values)
    if not is_integer:
        values = values.astype(str)
    counts = values.value_counts()
    distinct = len(counts)
    counts = counts[counts >= min_frequency]
    buckets = table.buckets(name, distinct, len(counts))
    if buckets is not None:
        return CategoricalFeature(name, hash_buckets=buckets, embedding_dim=embedding_dim, dtype=dtype)
    # Sorted by frequency (ties by value) so ids are stable across runs.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    vocabulary = tuple(int(v) if is_integer else v for v, _ in ordered)
    return CategoricalFeature(name, vocabulary=vocabulary, embedding_dim=embedding_dim, dtype=dtype)


def _integer_values(name: str, values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() | (numbers != np.round(numbers))]
    if len(bad):
        raise SpecError(f"feature '{name}' holds int64 codes but has the value {bad.iloc[0]!r}")
    return numbers.astype(np.int64)


def _infer_list(name, column, embedding_dim, table: _TableSizing, min_frequency, pooling, quantile,
                cap, shares, owner_column) -> ListFeature:
    flat = _flatten_lists(column)
    lengths = np.bincount(flat.index.to_numpy(np.int64), minlength=len(column))
    max_length = int(min(max(math.ceil(np.quantile(lengths, quantile)), 1), cap))
    if shares is not None:
        dtype = INT64 if pd.api.types.is_integer_dtype(owner_column) else STRING
        return ListFeature(name, max_length, embedding_dim=embedding_dim, dtype=dtype, pooling=pooling, shares=shares)
    is_integer = len(flat) > 0 and pd.api.types.infer_dtype(flat, skipna=True) == "integer"
    values = _integer_values(name, flat) if is_integer else flat.astype(str)
    values = values[values != PAD[INT64 if is_integer else STRING]]
    counts = values.value_counts()
    distinct = len(counts)
    counts = counts[counts >= min_frequency]
    dtype = INT64 if is_integer else STRING
    buckets = table.buckets(name, distinct, len(counts))
    if buckets is not None:
        return ListFeature(name, max_length, hash_buckets=buckets, embedding_dim=embedding_dim, dtype=dtype,
                           pooling=pooling)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    vocabulary = tuple(int(v) if is_integer else v for v, _ in ordered)
    return ListFeature(name, max_length, vocabulary=vocabulary, embedding_dim=embedding_dim, dtype=dtype,
                       pooling=pooling)


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


def _infer_numeric(name, column, embedding_dim, numeric_buckets, log_skew_threshold, encoding=SCALAR,
                   num_bins=DEFAULT_NUMERIC_BINS, target=None) -> NumericFeature:
    values = pd.to_numeric(column, errors="coerce").dropna().astype(np.float64)
    if values.empty:
        raise SpecError(f"feature '{name}': numeric column has no values")
    log = bool(values.min() >= 0 and values.skew() > log_skew_threshold)
    transformed = np.log1p(values) if log else values
    boundaries = None
    if numeric_buckets > 0:
        quantiles = np.quantile(values, np.linspace(0, 1, numeric_buckets + 1)[1:-1])
        unique = sorted(set(float(q) for q in quantiles))
        boundaries = tuple(unique) if unique else None
    edges = None
    if encoding == PLE:
        edges = _ple_edges(transformed, num_bins, target)
    if values.nunique() < 2:
        encoding, edges = SCALAR, None  # a constant column has nothing to encode
    # Population variance (ddof=0), as tft.scale_to_z_score and keras Normalization use.
    return NumericFeature(name, mean=float(np.mean(transformed)), variance=float(np.var(np.asarray(transformed))),
                          log=log, boundaries=boundaries, embedding_dim=embedding_dim, encoding=encoding,
                          edges=edges)
