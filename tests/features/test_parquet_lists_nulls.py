"""Parquet list features, nulls and model.fit: round trips against the DataFrame path."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tests.features.test_parquet import _assert_same_batches
from tfmtl.features import FeatureSpec, Label, SpecError, dataframe_to_dataset
from tfmtl.features.parquet import parquet_to_dataset


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "tags": [["a", "b"], None, [], ["c", None, "a", "b", "d"], ["b"], ["a", "c"]],
        "codes": [[3, 1], [2], None, [1, 2, 3, 4], [], [5]],
        "city": ["x", None, "y", "x", "z", None],
        "code": [1.0, 2.0, np.nan, 4.0, 1.0, 2.0],
        "age": [20.0, np.nan, 35.0, 41.0, np.nan, 60.0],
        "clicked": [0, 1, 1, 0, 1, 0],
        "liked": ["yes", None, "no", "yes", "yes", None],
    })


def _spec(df: pd.DataFrame) -> FeatureSpec:
    return FeatureSpec.from_dataframe(
        df, labels=["clicked", Label("like", column="liked", positive=("yes",))], categorical=["code"],
        list_length_quantile=1.0, max_list_length=3)


def test_lists_and_nulls_equal_the_dataframe_path_across_row_groups_and_files(tmp_path):
    df = _frame()
    spec = _spec(df)
    assert sorted(f.name for f in spec.lists) == ["codes", "tags"]
    # Two files, row groups of 2 rows: batches of 4 straddle row groups and the file boundary.
    pq.write_table(pa.Table.from_pandas(df.iloc[:3], preserve_index=False), tmp_path / "a.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pandas(df.iloc[3:], preserve_index=False), tmp_path / "b.parquet", row_group_size=2)
    targets = {"clicked": "clicked", "like": "like"}
    expected = dataframe_to_dataset(spec, df, targets, batch_size=4)
    assert _assert_same_batches(expected, parquet_to_dataset(spec, tmp_path, targets, batch_size=4)) == 2
    x, y = next(iter(parquet_to_dataset(spec, tmp_path, targets, batch_size=6)))
    # Hand-checked: padded with "" / -1 to 3, the last 3 values kept, null cells and elements dropped.
    assert x["tags"].numpy().tolist()[:4] == [[b"a", b"b", b""], [b"", b"", b""], [b"", b"", b""],
                                              [b"a", b"b", b"d"]]
    assert x["codes"].numpy().tolist()[:4] == [[3, 1, -1], [2, -1, -1], [-1, -1, -1], [2, 3, 4]]
    assert x["city"].numpy().tolist()[1] == b"" and x["code"].numpy().tolist()[2] == b""
    assert np.isnan(x["age"].numpy()[[1, 4]]).all()  # a null numeric is NaN, as pd.read_parquet gives
    assert y["like"].numpy().ravel().tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]  # a null is not a positive


def test_drop_remainder_and_shuffle_keep_every_row_once(tmp_path):
    df = _frame()
    spec = _spec(df)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "a.parquet", row_group_size=4)
    dropped = list(parquet_to_dataset(spec, tmp_path, batch_size=4, drop_remainder=True))
    assert [len(b["age"]) for b in dropped] == [4]
    shuffled = list(parquet_to_dataset(spec, tmp_path, batch_size=4, shuffle=True, seed=3))
    tags = sorted(tuple(row) for b in shuffled for row in b["tags"].numpy().tolist())
    expected = sorted(tuple(v.encode() for v in row) for row in spec.feature_arrays(df)["tags"].tolist())
    assert tags == expected


@pytest.mark.parametrize("column, values, problem", [
    ("clicked", [0, 1, None, 0, 1, 0], "'clicked' has 1 null"),  # a 0/1 label: from the footer
])
def test_null_labels_are_refused_naming_file_row_group_and_column(tmp_path, column, values, problem):
    df = _frame()
    spec = _spec(df)
    pq.write_table(pa.Table.from_pandas(df.assign(**{column: values}), preserve_index=False),
                   tmp_path / "bad.parquet", row_group_size=2)
    # The DataFrame path refuses the same frame.
    with pytest.raises(SpecError, match="must hold 0/1 values"):
        dataframe_to_dataset(spec, df.assign(**{column: values}), {"clicked": "clicked"})
    with pytest.raises(SpecError, match=rf"bad.parquet, row group 1: column {problem}"):
        parquet_to_dataset(spec, tmp_path, {"clicked": "clicked"})
    parquet_to_dataset(spec, tmp_path)  # features only: the label is not read


def test_null_weights_and_bad_label_values_are_refused(tmp_path):
    df = _frame().assign(w=[1.0, 2.0, 1.0, np.nan, 1.0, 1.0])
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"], exclude=["liked"], weight_column="w")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "w.parquet", row_group_size=2)
    with pytest.raises(SpecError, match=r"w.parquet, row group 1: column 'w' has 1 null"):
        parquet_to_dataset(spec, tmp_path, {"clicked": "clicked"})
    # A label that is not 0/1 shows only in the values: refused when its row group is read.
    df = _frame().assign(clicked=[0, 1, 1, 0, 2, 0])
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "w.parquet", row_group_size=2)
    spec = _spec(_frame())
    with pytest.raises(Exception, match=r"w.parquet, row group 2: label 'clicked'.*must hold 0/1 values"):
        list(parquet_to_dataset(spec, tmp_path, {"clicked": "clicked"}))


def test_list_feature_needs_a_list_column(tmp_path):
    df = _frame()
    spec = _spec(df)
    df.assign(tags="a").to_parquet(tmp_path / "flat.parquet")
    # pandas 3 writes its strings as Arrow large_string, pandas 2 as string.
    with pytest.raises(SpecError, match="list feature 'tags' needs a list column, the Parquet column is "
                                        "(large_)?string"):
        parquet_to_dataset(spec, tmp_path / "flat.parquet")


def test_model_fit_takes_the_streamed_dataset(tmp_path):
    from tfmtl.models import DeepFM

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"item": rng.integers(0, 20, 256).astype(str), "age": rng.normal(size=256),
                       "tags": [list(rng.choice(list("abcd"), rng.integers(0, 4))) for _ in range(256)],
                       "clicked": rng.integers(0, 2, 256)})
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"])
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "a.parquet", row_group_size=100)
    model = DeepFM(spec, dnn_units=(8,))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    tf.keras.utils.set_random_seed(0)
    history = model.fit(parquet_to_dataset(spec, tmp_path, {"clicked": "clicked"}, batch_size=64), epochs=2,
                        verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
