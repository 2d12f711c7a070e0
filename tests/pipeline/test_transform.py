"""The Transform graph and the Keras path see the same features."""

import dataclasses
import io
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline import transform
from pipeline.config import transform_config
from tests.pipeline.conftest import EVAL_ROWS, raw_frame
from tfmtl.datasets import census
from tfmtl.features import (
    BUCKET_SUFFIX,
    CategoricalFeature,
    FeaturePreprocessing,
    FeatureSpec,
    Label,
    NumericFeature,
    encoded_names,
)


def _keras_features(spec, clean: pd.DataFrame):
    encoded = FeaturePreprocessing(spec)({k: tf.constant(v) for k, v in spec.feature_arrays(clean).items()})
    return encoded["ids"].numpy(), encoded["dense"].numpy()


def _pipeline_features(spec, outputs):
    fields = [f.name + (BUCKET_SUFFIX if isinstance(f, NumericFeature) else "") for f in spec.fields]
    ids = np.stack([outputs[name].numpy() for name in fields], axis=1)
    dense = np.stack([outputs[f.name].numpy() for f in spec.numeric], axis=1)
    return ids, dense


def _apply(inputs, config):
    # In a tf.function: tft.apply_buckets annotates its graph, and eagerly that is a global graph.
    return tf.function(lambda x: transform.preprocessing_fn(x, config))(inputs)


def _as_sparse(frame: pd.DataFrame) -> dict:
    """Raw columns as the Transform receives VarLen features: [batch, 1] SparseTensors."""
    inputs = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        values = values.astype(str).astype(object) if values.dtype == object else values
        indices = np.stack([np.arange(len(values)), np.zeros(len(values), np.int64)], axis=1)
        inputs[name] = tf.SparseTensor(indices, values, [len(values), 1])
    return inputs


def test_preprocessing_fn_matches_keras_preprocessing_on_census(census_raw):
    """Raw CSV rows (leading spaces, "NA", integer-typed numerics) give the ids and values of the Keras path."""
    _, _, spec = census_raw
    raw = raw_frame("test.csv.gz", 3000)  # held-out rows: unseen values and "NA" included
    clean = census.read_census_csv(os.path.join(census.DATA_DIR, "test.csv.gz"), nrows=3000)
    assert (raw["hispanic_origin"] == " NA").any() and spec.fields[0].num_ids > 1
    outputs = _apply(_as_sparse(raw), transform_config(spec, na_values=transform.PANDAS_NA_VALUES))
    ids, dense = _pipeline_features(spec, outputs)
    keras_ids, keras_dense = _keras_features(spec, clean)
    np.testing.assert_array_equal(ids, keras_ids)
    np.testing.assert_allclose(dense, keras_dense, rtol=0, atol=1e-6)
    for label in spec.labels:
        np.testing.assert_array_equal(outputs[label.name].numpy(), spec.label_array(clean, label.name)[:, 0])
    assert set(outputs) == set(encoded_names(spec)) | set(spec.label_names)


def test_missing_values_types_and_spaces():
    spec = FeatureSpec(
        (CategoricalFeature("city", vocabulary=("a", "b ")),
         CategoricalFeature("code", vocabulary=(7, 9), dtype="int64"),
         CategoricalFeature("user", hash_buckets=16), CategoricalFeature("tag", hash_buckets=8, dtype="int64"),
         NumericFeature("spend", mean=1.0, variance=4.0, log=True),
         NumericFeature("age", mean=30.0, variance=100.0, boundaries=(18.0, 65.0))),
        (Label("clicked", column="click", positive=("yes",)), Label("bought")))
    # Row 3 misses every value (an absent VarLen value); strings carry CSV's leading space;
    # "code" and "age" arrive as strings, as a Parquet or CSV column of mixed values might.
    sparse = lambda values, dtype: tf.SparseTensor([[i, 0] for i in range(3)], tf.constant(values, dtype),  # noqa: E731
                                                   [4, 1])
    inputs = {"city": sparse([" b ", " zz", " NA"], tf.string), "code": sparse([" 9", "1", "7"], tf.string),
              "user": sparse([" u1", "u2", "u1"], tf.string), "tag": sparse([3, 4, 3], tf.int64),
              "spend": sparse([np.e - 1, 0.0, 1.0], tf.float32), "age": sparse([" 10", "40", "70.5"], tf.string),
              "click": sparse([" yes", "no", "yes"], tf.string), "bought": sparse([1, 0, 1], tf.int64)}
    out = _apply(inputs, transform_config(spec, na_values=transform.PANDAS_NA_VALUES))
    keras = FeaturePreprocessing(spec)({
        "city": tf.constant(["b ", "zz", "", ""]), "code": tf.constant([9, 1, 7, -1], tf.int64),
        "user": tf.constant(["u1", "u2", "u1", ""]), "tag": tf.constant([3, 4, 3, -1], tf.int64),
        "spend": tf.constant([np.e - 1, 0.0, 1.0, np.nan]), "age": tf.constant([10.0, 40.0, 70.5, np.nan])})
    ids, dense = _pipeline_features(spec, out)
    np.testing.assert_array_equal(ids, keras["ids"].numpy())
    np.testing.assert_allclose(dense, keras["dense"].numpy(), atol=1e-6)
    assert out["city"].numpy().tolist() == [2, 0, 0, 0]  # trailing space kept, "NA" missing
    assert out["clicked"].numpy().tolist() == [1, 0, 1, 0] and out["bought"].numpy().tolist() == [1, 0, 1, 0]


def test_na_values_are_what_pandas_reads_as_missing():
    text = pd.Series(list(transform.PANDAS_NA_VALUES) + ["x"], dtype=object).to_csv(index=False)
    read = pd.read_csv(io.StringIO(text)).iloc[:, 0]
    assert read.isna().sum() == len(transform.PANDAS_NA_VALUES) and "NA" in transform.PANDAS_NA_VALUES


def test_analyzer_statistics_agree_with_the_spec(census_raw, tmp_path):
    """On the rows the spec was fitted on, TFT analyzers find the same vocabularies and moments."""
    import tensorflow_transform as tft

    from tests.pipeline.conftest import build_transform_output

    train, _, full = census_raw
    # A few columns of each kind: every analyzer is a Beam stage, and the mechanism is the same.
    keep = ("education", "sex", "hispanic_origin", "detailed_industry_recode", "year", "age", "capital_gains",
            "weeks_worked_in_year")
    spec = dataclasses.replace(full, features=tuple(f for f in full.features if f.name in keep))
    assert any(f.log for f in spec.numeric) and any(f.boundaries for f in spec.numeric)
    evaluation = raw_frame("test.csv.gz", EVAL_ROWS)
    output = build_transform_output(str(tmp_path), spec, train, evaluation, statistics="analyzers")
    tft_output = tft.TFTransformOutput(output.transform_graph)
    fitted = transform.fitted_spec(spec, tft_output, "analyzers")
    for before, after in zip(spec.categorical, fitted.categorical):
        assert set(after.vocabulary) == set(before.vocabulary), before.name
        assert after.num_ids == before.num_ids
    # The analyzer graph on the clean eval rows == Keras preprocessing with the fitted spec.
    clean = census.read_census_csv(os.path.join(census.DATA_DIR, "test.csv.gz"), nrows=EVAL_ROWS)
    raw = output.eval
    outputs = tft_output.transform_features_layer()(_as_sparse(raw))
    ids, dense = _pipeline_features(fitted, outputs)
    keras_ids, keras_dense = _keras_features(fitted, clean)
    np.testing.assert_array_equal(ids, keras_ids)
    np.testing.assert_allclose(dense, keras_dense, atol=1e-4)


@pytest.mark.parametrize("bad", ["median", "mean"])
def test_transform_config_checks_statistics(census_raw, bad):
    with pytest.raises(ValueError, match="statistics must be"):
        transform_config(census_raw[2], bad)
