import numpy as np
import pandas as pd
import pytest

from tfmtl.features import FeatureSpec, Label, SpecError, batch_arrays, dataframe_to_dataset


def test_batches_cover_every_row_once_per_epoch():
    df = pd.DataFrame({"x": np.arange(10.0), "c": list("ababababab"), "y": [0, 1] * 5, "w": np.arange(10.0)})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("y")], weight_column="w")
    ds = dataframe_to_dataset(spec, df, {"out": "y"}, batch_size=4, shuffle=True, seed=1)
    batches = list(ds)
    assert [b[0]["x"].shape[0] for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[0]["x"].numpy() for b in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    for features, labels, weights in batches:  # rows stay aligned under the shuffle
        np.testing.assert_array_equal(labels["out"].numpy().ravel(), features["x"].numpy() % 2)
        np.testing.assert_array_equal(weights.numpy(), features["x"].numpy())


def test_features_only_for_predict_and_bad_batch_size():
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    spec = FeatureSpec.from_dataframe(df, labels=["y"])
    element = next(iter(dataframe_to_dataset(spec, df.drop(columns="y"), None, batch_size=8)))
    assert set(element) == {"x"}
    with pytest.raises(ValueError, match="batch_size"):
        dataframe_to_dataset(spec, df, None, batch_size=0)
    with pytest.raises(SpecError, match="label 'y'"):
        dataframe_to_dataset(spec, df.drop(columns="y"), {"y": "y"})


def test_ordered_batches_keep_row_order_and_alignment():
    df = pd.DataFrame({"x": np.arange(10.0), "c": list("abcdefghij"), "y": [0, 1] * 5})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("y")])
    ds = dataframe_to_dataset(spec, df, {"out": "y"}, batch_size=4)
    assert ds.element_spec[0]["x"].shape.as_list() == [None]  # full batches and the remainder share one spec
    batches = list(ds)
    assert [b[0]["x"].shape[0] for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0]["x"].numpy() for b in batches]), np.arange(10.0))
    assert b"".join(np.concatenate([b[0]["c"].numpy() for b in batches])) == b"abcdefghij"
    np.testing.assert_array_equal(np.concatenate([b[1]["out"].numpy() for b in batches]), df[["y"]].to_numpy())
    dropped = dataframe_to_dataset(spec, df, {"out": "y"}, batch_size=4, drop_remainder=True)
    assert [b[0]["x"].shape[0] for b in dropped] == [4, 4]


def test_batch_arrays_fewer_rows_than_a_batch_matrices_and_exact_multiples():
    (only,) = list(batch_arrays({"m": np.ones((3, 2), np.float32)}, batch_size=8))
    assert only["m"].shape == (3, 2)
    assert list(batch_arrays({"m": np.ones((3, 2))}, batch_size=8, drop_remainder=True)) == []
    exact = [b["i"].numpy().tolist() for b in batch_arrays({"i": np.arange(6)}, batch_size=3)]
    assert exact == [[0, 1, 2], [3, 4, 5]]
    matrices = list(batch_arrays({"m": np.arange(10.0).reshape(5, 2)}, batch_size=2))
    np.testing.assert_array_equal(matrices[1]["m"].numpy(), [[4.0, 5.0], [6.0, 7.0]])


def test_batch_arrays_rejects_misaligned_arrays():
    with pytest.raises(ValueError, match=r"same number of rows, got \[3, 2\]"):
        batch_arrays({"a": np.zeros(3), "b": np.zeros(2)}, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        batch_arrays({"a": np.zeros(3)}, batch_size=0)
