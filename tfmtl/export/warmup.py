"""TF Serving's warmup file: rows from a DataFrame or made up from the spec, one PredictRequest each."""

from __future__ import annotations

import numbers
import os
from typing import Union

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl.export.signatures import SERVING_DEFAULT, Extras
from tfmtl.features import CategoricalFeature, FeatureSpec, ListFeature

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_WARMUP_RECORDS = 10
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many

Warmup = Union[pd.DataFrame, None, bool]


def warmup_rows(spec: FeatureSpec, warmup: Warmup, count: int, model: tf.Module | None = None,
                 extras: Extras | None = None) -> dict[str, np.ndarray] | None:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or not 1 <= count <= MAX_WARMUP_RECORDS:
        raise ValueError(f"warmup_records must be an integer in [1, {MAX_WARMUP_RECORDS}], got {count!r}")
    extras = extras or {}
    if warmup is False:
        return None
    if warmup is None:
        return {**_made_up_rows(spec, count), **_made_up_extras(extras, count)}
    if isinstance(warmup, pd.DataFrame):
        rows = warmup.head(count)
        return {**spec.feature_arrays(rows), **(_extra_rows(model, rows, extras) if extras else {})}
    raise TypeError(f"warmup must be a DataFrame, None (made-up rows) or False (none), got {type(warmup).__name__}")


def _made_up_extras(extras: Extras, count: int) -> dict[str, np.ndarray]:
    """Zeros for numeric extra inputs, ``""`` for string ones."""
    rows = {}
    for name, ts in extras.items():
        shape = [count, *ts.shape[1:].as_list()]
        rows[name] = np.full(shape, "", object) if ts.dtype == tf.string else np.zeros(shape, ts.dtype.as_numpy_dtype)
    return rows


def _extra_rows(model: tf.Module, df: pd.DataFrame, extras: Extras) -> dict[str, np.ndarray]:
    """The extra inputs of warmup rows: from ``model.make_dataset(df)``, else from a column of that name."""
    batch = {}
    make_dataset = getattr(model, "make_dataset", None)
    if callable(make_dataset) and len(df):
        batch = next(iter(make_dataset(df, with_labels=False, batch_size=len(df))))
    rows = {}
    for name, ts in extras.items():
        if name in batch:
            values = batch[name].numpy()
        elif name in df.columns:
            values = np.stack([np.asarray(v) for v in df[name]]) if len(df) else np.zeros([0], np.float32)
        else:
            raise ValueError(f"the warmup DataFrame has no values for the model's extra input '{name}' "
                             "(model.make_dataset does not give it and there is no such column); pass warmup=None "
                             "for made-up rows")
        values = values.astype(object) if ts.dtype == tf.string else values.astype(ts.dtype.as_numpy_dtype)
        if not ts.shape[1:].is_compatible_with(values.shape[1:]):
            raise ValueError(f"warmup values of extra input '{name}' have shape {list(values.shape)}; "
                             f"the model takes {ts.shape}")
        rows[name] = values
    return rows


def _made_up_rows(spec: FeatureSpec, count: int) -> dict[str, np.ndarray]:
    """Rows that cycle through each vocabulary and hold numerics at their mean."""
    rows = {}
    for feature in spec.features:
        if isinstance(feature, ListFeature):
            rows[feature.name] = _made_up_lists(spec, feature, count)
        elif isinstance(feature, CategoricalFeature):
            cycle = feature.vocabulary or tuple(range(count))  # hashed: any values do
            column = [cycle[i % len(cycle)] for i in range(count)]
            strings = spec.raw_dtype(feature) == "string"
            rows[feature.name] = np.array([str(v) for v in column], object) if strings else np.array(column, np.int64)
        else:
            mean = np.expm1(feature.mean) if feature.log else feature.mean  # the mean is of log1p(x)
            rows[feature.name] = np.full(count, mean, np.float32)
    return rows


def _made_up_lists(spec: FeatureSpec, feature: ListFeature, count: int) -> np.ndarray:
    """Row ``i`` holds ``i % (max_length + 1)`` values from the vocabulary (an empty list first), then padding."""
    owner = spec.table_owner(feature)
    cycle = owner.vocabulary or tuple(range(feature.max_length))  # hashed: any values do
    cycle = cycle or (feature.pad,)  # an empty vocabulary: padding only
    strings = feature.dtype == "string"
    rows = np.full((count, feature.max_length), feature.pad, object if strings else np.int64)
    for i in range(count):  # at most MAX_WARMUP_RECORDS rows
        for j in range(i % (feature.max_length + 1)):
            rows[i, j] = str(cycle[(i + j) % len(cycle)]) if strings else int(cycle[(i + j) % len(cycle)])
    return rows


def write_warmup(path: str, rows: dict[str, np.ndarray], model_name: str) -> None:
    """One ``serving_default`` PredictRequest per example, as TF Serving's warmup file."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    os.makedirs(os.path.join(path, os.path.dirname(WARMUP_FILE)), exist_ok=True)
    count = len(next(iter(rows.values())))
    with tf.io.TFRecordWriter(os.path.join(path, WARMUP_FILE)) as writer:
        for i in range(count):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_DEFAULT))
            for name, values in rows.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values[i : i + 1]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


__all__ = ["DEFAULT_WARMUP_RECORDS", "MAX_WARMUP_RECORDS", "WARMUP_FILE", "Warmup", "warmup_rows", "write_warmup"]
