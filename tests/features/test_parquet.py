import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfmtl.features import FeatureSpec, Label, SpecError, dataframe_to_dataset
from tfmtl.features.parquet import parquet_to_dataset


def _assert_same_batches(a: tf.data.Dataset, b: tf.data.Dataset) -> int:
    batches = 0
    for left, right in zip(a, b, strict=True):
        tf.nest.assert_same_structure(left, right)
        for x, y in zip(tf.nest.flatten(left), tf.nest.flatten(right)):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x.numpy(), y.numpy())
        batches += 1
    return batches


def test_census_parquet_batches_equal_dataframe_batches(census_slice, tmp_path):
    spec = census_slice.spec
    df = census_slice.train.iloc[:1000]  # its NaN cells become Parquet nulls: both paths read them as ""
    path = tmp_path / "part.parquet"
    df.to_parquet(path, index=False)
    targets = {label: label for label in spec.label_names}
    from_frame = dataframe_to_dataset(spec, pd.read_parquet(path), targets, batch_size=300)
    from_parquet = parquet_to_dataset(spec, path, targets, batch_size=300)
    assert _assert_same_batches(from_frame, from_parquet) == 4  # 3 full batches and a remainder


def test_several_files_and_weights_and_features_only(tmp_path):
    df = pd.DataFrame({"city": ["a", "b", "a", "c", "b"], "code": np.array([3, 1, 3, 2, 1], np.int32),
                       "age": [20, 31, 45, 52, 60], "flag": [True, False, True, True, False],
                       "clicked": ["yes", "no", "yes", "no", "no"], "w": [1.0, 2.0, 0.5, 1.0, 3.0]})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("click", column="clicked", positive=("yes",))],
                                      categorical=["code"], weight_column="w")
    df.iloc[:3].to_parquet(tmp_path / "a.parquet", index=False)
    df.iloc[3:].to_parquet(tmp_path / "b.parquet", index=False)
    targets = {"out": "click"}
    expected = dataframe_to_dataset(spec, df, targets, batch_size=2)
    assert _assert_same_batches(expected, parquet_to_dataset(spec, tmp_path, targets, batch_size=2)) == 3
    features_only = next(iter(parquet_to_dataset(spec, str(tmp_path / "*.parquet"), batch_size=5)))
    assert sorted(features_only) == sorted(spec.feature_names)
    assert features_only["flag"].numpy().tolist() == [b"True", b"False", b"True", b"True", b"False"]


def test_wrong_types_and_missing_files_are_refused(tmp_path):
    df = pd.DataFrame({"city": ["a", "b"], "age": [20.0, 30.0], "clicked": [0, 1]})
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"])
    df.assign(age=["20", "x"]).to_parquet(tmp_path / "strings.parquet")
    with pytest.raises(SpecError, match="'age' must be numeric"):
        parquet_to_dataset(spec, tmp_path / "strings.parquet")
    df.drop(columns="city").to_parquet(tmp_path / "missing.parquet")
    with pytest.raises(SpecError, match=r"\['city'\] are missing"):
        parquet_to_dataset(spec, tmp_path / "missing.parquet")
    with pytest.raises(SpecError, match="no Parquet files"):
        parquet_to_dataset(spec, tmp_path / "empty_dir_*.parquet")
