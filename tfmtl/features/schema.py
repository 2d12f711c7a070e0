"""The schema of a feature spec: the feature and label dataclasses and the rules each obeys.

Every rule of a single feature is checked when it is constructed (:class:`SpecError` names the
feature and the problem); the rules between features (unique names, shared tables, no label leak)
are :func:`check_schema`'s, which :class:`tfmtl.features.FeatureSpec` runs at construction.

>>> CategoricalFeature("city", vocabulary=("a", "b")).num_ids
3
>>> CategoricalFeature("city", vocabulary=("a",), hash_buckets=8)
Traceback (most recent call last):
...
tfmtl.features.schema.SpecError: feature 'city': set exactly one of vocabulary or hash_buckets
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Union

import numpy as np

STRING = "string"
INT64 = "int64"
_CATEGORICAL_DTYPES = (STRING, INT64)
# The width of a hand-written feature that names none. Inference has its own default, wider
# (tfmtl.features.inference.InferenceOptions.embedding_dim), measured on the tabular benchmark.
FEATURE_EMBEDDING_DIM = 4


class SpecError(ValueError):
    """Bad input for a feature spec: the message names the field and the problem."""


def _check_name(name: object, what: str = "feature") -> None:
    if not isinstance(name, str) or not name:
        raise SpecError(f"{what} name must be a non-empty string, got {name!r}")


def _checked_table(feature) -> tuple | None:
    """The checks a categorical and a list feature share: name, bucket count, width, and the
    vocabulary cast to the feature's dtype (``None`` without one)."""
    _check_name(feature.name)
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
    embedding_dim: int = FEATURE_EMBEDDING_DIM
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
    embedding_dim: int = FEATURE_EMBEDDING_DIM
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


def check_numeric_encoding(encoding: str, where: str) -> None:
    """The one check of a numeric encoding's name (a feature's, inference's, the command line's)."""
    if encoding not in NUMERIC_ENCODINGS:
        raise SpecError(f"{where} must be one of {', '.join(NUMERIC_ENCODINGS)}, got {encoding!r}")



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
    embedding_dim: int = FEATURE_EMBEDDING_DIM
    encoding: str = SCALAR
    edges: tuple | None = None
    frequencies: int = 16
    sigma: float = 1.0

    def __post_init__(self):
        _check_name(self.name)
        if not (self.variance >= 0 and math.isfinite(self.variance)):
            raise SpecError(f"feature '{self.name}': variance must be finite and >= 0, got {self.variance}")
        if self.boundaries is not None:
            bounds = tuple(float(b) for b in self.boundaries)
            if list(bounds) != sorted(set(bounds)):
                raise SpecError(f"feature '{self.name}': boundaries must be strictly increasing")
            object.__setattr__(self, "boundaries", bounds)
        check_numeric_encoding(self.encoding, f"feature '{self.name}': encoding")
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
        _check_name(self.name, "label")
        if self.column is None:
            object.__setattr__(self, "column", self.name)
        _check_name(self.column, f"label '{self.name}': column")
        if self.positive is not None:
            object.__setattr__(self, "positive", tuple(self.positive))


Feature = Union[CategoricalFeature, NumericFeature, ListFeature]
KINDS = {"categorical": CategoricalFeature, "numeric": NumericFeature, "list": ListFeature}


def feature_kind(feature: Feature) -> str:
    """The ``kind`` a feature is saved under: ``categorical``, ``numeric`` or ``list``."""
    return next(kind for kind, cls in KINDS.items() if isinstance(feature, cls))


def check_schema(features: Sequence[Feature], labels: Sequence[Label], weight_column: str | None) -> None:
    """The rules between the features, labels and weight column of one spec (each feature checked itself).

    Unique feature and label names; no label column (nor the weight column) is also a feature, which would
    leak the target; a list that ``shares`` a table names a categorical or list feature that owns one, with
    its dtype and width.
    """
    names = [f.name for f in features]
    if not names:
        raise SpecError("feature spec: at least one feature is required")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"feature spec: duplicate feature names {duplicates}")
    label_names = [label.name for label in labels]
    if len(set(label_names)) != len(label_names):
        raise SpecError(f"feature spec: duplicate label names {label_names}")
    leaked = sorted(set(names) & {label.column for label in labels})
    if leaked:
        raise SpecError(f"feature spec: label columns {leaked} are also features (target leak)")
    if weight_column is not None:
        _check_name(weight_column, "weight column")
        if weight_column in names or weight_column in {label.column for label in labels}:
            raise SpecError(f"feature spec: weight column '{weight_column}' is also a feature or a label column")
    by_name = {f.name: f for f in features}
    for feature in features:
        if not isinstance(feature, ListFeature) or feature.shares is None:
            continue
        owner = by_name.get(feature.shares)
        if not isinstance(owner, (CategoricalFeature, ListFeature)) or getattr(owner, "shares", None):
            raise SpecError(f"feature '{feature.name}': shares='{feature.shares}' must name a categorical or "
                            "list feature of the spec that owns its table")
        if (owner.dtype, owner.embedding_dim) != (feature.dtype, feature.embedding_dim):
            raise SpecError(f"feature '{feature.name}': shares '{owner.name}''s table, so its dtype and "
                            f"embedding_dim must be {owner.dtype!r} and {owner.embedding_dim}, got "
                            f"{feature.dtype!r} and {feature.embedding_dim}")
