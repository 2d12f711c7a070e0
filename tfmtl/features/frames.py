"""A spec's DataFrame side: checking a frame against the spec and turning its columns into typed arrays.

:class:`tfmtl.features.FeatureSpec`'s ``check_dataframe``, ``feature_arrays``, ``label_array`` and
``weight_array`` are these functions; list columns become padded ``[N, max_length]`` arrays
(:func:`list_array`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tfmtl.features.schema import INT64, PAD, STRING, ListFeature, NumericFeature, SpecError

if TYPE_CHECKING:
    from tfmtl.features.spec import FeatureSpec


def check_dataframe(spec: FeatureSpec, df: Any, *, require_labels: Sequence[str] = ()) -> None:
    """Raises :class:`SpecError` naming the first bad column of ``df`` for ``spec``."""
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise SpecError("the DataFrame is empty: no rows to train or predict on")
    missing = [name for name in spec.feature_names if name not in df.columns]
    if missing:
        raise SpecError(f"feature column(s) {missing} are missing from the DataFrame")
    for feature in spec.features:
        column = df[feature.name]
        if isinstance(feature, ListFeature):
            check_list_column(feature.name, column)
        elif isinstance(feature, NumericFeature) or feature.dtype == INT64:
            if not (pd.api.types.is_numeric_dtype(column) or column.isna().all()):
                bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()].iloc[:3].tolist()
                raise SpecError(
                    f"feature '{feature.name}' must be numeric ({spec.raw_dtype(feature)}), "
                    f"got dtype {column.dtype} with values like {bad}")
    for name in require_labels:
        label = spec.label(name)
        if label.column not in df.columns:
            raise SpecError(f"label '{name}': column '{label.column}' is missing from the DataFrame")
        if label.positive is None:
            values = pd.to_numeric(df[label.column], errors="coerce")
            if values.isna().any() or not values.isin([0, 1]).all():
                raise SpecError(
                    f"label '{name}': column '{label.column}' must hold 0/1 values (or name its positive values: "
                    "Label(..., positive=...), --label NAME=COLUMN:VALUE,... on the command line)")
    if spec.weight_column and require_labels:
        if spec.weight_column not in df.columns:
            raise SpecError(f"weight column '{spec.weight_column}' is missing from the DataFrame")
        weights = pd.to_numeric(df[spec.weight_column], errors="coerce")
        if weights.isna().any() or (weights < 0).any():
            raise SpecError(f"weight column '{spec.weight_column}' must hold non-negative numbers")

def feature_arrays(spec: FeatureSpec, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw feature columns as typed numpy arrays (missing values made explicit).

    Scalar features give ``[N]`` arrays; list features ``[N, max_length]`` arrays padded
    with the pad token (see :class:`ListFeature` and :func:`list_array`).
    """
    check_dataframe(spec, df)
    arrays = {}
    for feature in spec.features:
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

def label_array(spec: FeatureSpec, df: pd.DataFrame, name: str) -> np.ndarray:
    """Label ``name`` as a float32 0/1 array of shape [N, 1]."""
    check_dataframe(spec, df.iloc[:1] if len(df) else df, require_labels=[name])
    label = spec.label(name)
    column = df[label.column]
    if label.positive is not None:
        values = column.isin(label.positive)
    else:
        values = pd.to_numeric(column, errors="coerce")
    return values.to_numpy(np.float32).reshape(-1, 1)


def weight_array(spec: FeatureSpec, df: pd.DataFrame) -> np.ndarray | None:
    """The sample weights as float32 ``[N]`` (``None`` when the spec has no weight column)."""
    if not spec.weight_column:
        return None
    return pd.to_numeric(df[spec.weight_column], errors="coerce").to_numpy(np.float32)


def flatten_lists(column: pd.Series) -> pd.Series:
    """The elements of a list column, indexed by row position ``0..N-1``; missing cells and elements dropped."""
    exploded = pd.Series(column.to_numpy(object), index=np.arange(len(column)), dtype=object).explode()
    return exploded[exploded.notna()]


def check_list_column(name: str, column: pd.Series) -> None:
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
    check_list_column(name, column)
    rows = len(column)
    flat = flatten_lists(column)
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


def is_list_column(column: pd.Series) -> bool:
    """Whether the first non-missing cells of an object column are lists, tuples or numpy arrays."""
    if column.dtype != object:
        return False
    sample = column.iloc[:1000]
    sample = sample[sample.map(lambda v: isinstance(v, (list, tuple, np.ndarray)) or not pd.isna(v))]
    return bool(len(sample)) and all(isinstance(v, (list, tuple, np.ndarray)) for v in sample.iloc[:100])

