"""The feature spec: one declarative description of columns, preprocessing and labels.

Keras inputs, the Keras preprocessing layer, the TFX ``preprocessing_fn`` and the
serving signatures are all derived from a :class:`FeatureSpec`, so training and
serving cannot disagree about a vocabulary, a normalisation constant or a label.

The spec is split by job: :mod:`tfmtl.features.schema` (the feature and label dataclasses and
their rules, checked at construction), :mod:`tfmtl.features.inference` (a spec from a
DataFrame, with every default in :class:`~tfmtl.features.inference.InferenceOptions`) and
:mod:`tfmtl.features.frames` (a DataFrame checked against the spec and turned into arrays).
This module joins them in :class:`FeatureSpec` and saves it as JSON.

Example:

>>> import pandas as pd
>>> df = pd.DataFrame({"city": ["a", "b", "a"], "age": [20.0, 30.0, 40.0],
...                    "clicked": [0, 1, 1]})
>>> spec = FeatureSpec.from_dataframe(df, labels=[Label("clicked")])
>>> [f.name for f in spec.features], spec.label_names
(['city', 'age'], ['clicked'])
>>> FeatureSpec.from_dataframe(df, ["clicked"], options=InferenceOptions(embedding_dim=8)).embedding_dim
8
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfmtl.features import frames, inference
from tfmtl.features.frames import list_array
from tfmtl.features.inference import (
    DEFAULT_EMBEDDING_DIM,
    DEFAULT_MAX_COLLISION_SHARE,
    DEFAULT_MAX_VOCABULARY,
    DEFAULT_NUMERIC_BINS,
    DEFAULT_NUMERIC_ENCODING,
    InferenceOptions,
    InferenceReport,
    TableChoice,
    expected_collision_share,
    hash_buckets_for,
)
from tfmtl.features.schema import (
    INT64,
    KINDS,
    NUMERIC_ENCODINGS,
    PAD,
    PERIODIC,
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
    check_schema,
    feature_kind,
)

# The names that lived here before the split into schema, inference and frames stay importable from here.
__all__ = [
    "DEFAULT_EMBEDDING_DIM", "DEFAULT_MAX_COLLISION_SHARE", "DEFAULT_MAX_VOCABULARY", "DEFAULT_NUMERIC_BINS",
    "DEFAULT_NUMERIC_ENCODING", "INT64", "NUMERIC_ENCODINGS", "PAD", "PERIODIC", "PLE", "POOLINGS", "SCALAR",
    "STRING", "CategoricalFeature", "Feature", "FeatureSpec", "InferenceOptions", "InferenceReport", "Label",
    "ListFeature", "NumericFeature", "SpecError", "TableChoice", "expected_collision_share", "hash_buckets_for",
    "list_array",
]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Features, labels and an optional sample-weight column of one data set.

    Every rule is checked at construction: each feature's own (:mod:`tfmtl.features.schema`) and
    those between them (:func:`~tfmtl.features.schema.check_schema`).
    """

    features: tuple
    labels: tuple = ()
    weight_column: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "labels", tuple(self.labels))
        check_schema(self.features, self.labels, self.weight_column)

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
        shared_embeddings: Mapping[str, str] | None = None,
        options: InferenceOptions | None = None,
        **option_changes: Any,
    ) -> FeatureSpec:
        """Infers a spec from a DataFrame (fit on the training split only).

        The arguments say each column's role; ``options`` (an :class:`InferenceOptions`, default
        ``InferenceOptions()``) holds how features are inferred, and keyword ``option_changes``
        (``embedding_dim=8``, ``numeric_encoding="scalar"``...) are shorthand for
        ``options.replace(...)``.

        Object, string, category and bool columns (and those named in ``categorical``) become
        categorical; the other numeric columns numeric. A categorical with more than
        ``max_vocabulary`` kept values is hashed, by default into the fewest buckets that keep the
        expected share of its values that share a bucket below ``max_collision_share`` (see
        :func:`hash_buckets_for`); ``spec.inference_report`` says what each categorical and list
        feature got. Numeric columns are embedded with ``numeric_encoding`` (see
        :class:`NumericFeature`); a column with fewer than two distinct values stays scalar.

        An object column whose cells are Python lists, tuples or numpy arrays becomes a
        :class:`ListFeature` (vocabulary or hashing from the flattened values, ``max_length`` from
        the row lengths: see :class:`InferenceOptions`). ``shared_embeddings={list column:
        categorical column}`` makes the list use the categorical's ids and table (history items and
        the candidate ``item_id``); that categorical's vocabulary is then fitted on both columns.
        """
        options = (options or InferenceOptions()).replace(**option_changes) if option_changes else options
        features, labels, report = inference.infer_features(
            df, labels, categorical=categorical, numeric=numeric, exclude=exclude, weight_column=weight_column,
            shared_embeddings=shared_embeddings, options=options)
        spec = cls(tuple(features), tuple(labels), weight_column)
        object.__setattr__(spec, "_inference_report", report)
        return spec

    @property
    def inference_report(self) -> InferenceReport | None:
        """What :meth:`from_dataframe` chose per categorical/list feature; ``None`` for a spec built otherwise."""
        return getattr(self, "_inference_report", None)

    # ------------------------------------------------ DataFrames (tfmtl.features.frames)
    def check_dataframe(self, df: Any, *, require_labels: Sequence[str] = ()) -> None:
        """Raises :class:`SpecError` naming the first bad column of ``df``."""
        frames.check_dataframe(self, df, require_labels=require_labels)

    def feature_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Raw feature columns as typed numpy arrays: ``[N]``, or ``[N, max_length]`` for a list feature."""
        return frames.feature_arrays(self, df)

    def label_array(self, df: pd.DataFrame, name: str) -> np.ndarray:
        """Label ``name`` as a float32 0/1 array of shape [N, 1]."""
        return frames.label_array(self, df, name)

    def weight_array(self, df: pd.DataFrame) -> np.ndarray | None:
        """The sample weights as float32 ``[N]`` (``None`` without a weight column)."""
        return frames.weight_array(self, df)

    # ----------------------------------------------------------- serialisation
    def get_config(self) -> dict:
        return {
            "features": [{"kind": feature_kind(f), **dataclasses.asdict(f)} for f in self.features],
            "labels": [dataclasses.asdict(label) for label in self.labels],
            "weight_column": self.weight_column,
        }

    @classmethod
    def from_config(cls, config: Mapping) -> FeatureSpec:
        features = []
        for item in config["features"]:
            item = dict(item)
            kind = item.pop("kind")
            if kind not in KINDS:
                raise SpecError(f"feature '{item.get('name')}': unknown kind {kind!r}")
            for key in ("vocabulary", "boundaries", "edges"):
                if item.get(key) is not None:
                    item[key] = tuple(item[key])
            features.append(KINDS[kind](**item))
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


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
