"""TFRecord of tf.Example -> tf.data: the DataFrame path's batches for the same rows, lists and missing keys too."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.features.test_parquet import _assert_same_batches
from tfmtl.features import FeatureSpec, Label, SpecError, dataframe_to_dataset
from tfmtl.features.tfrecord import tfrecord_to_dataset


def _value(value) -> tf.train.Feature | None:
    """One cell as ExampleGen writes a CSV/Parquet cell: ints int64_list, floats float_list, text bytes_list;
    a missing cell (None, NaN) has no key."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = [v for v in value if v is not None and not (isinstance(v, float) and np.isnan(v))]
        if not values:
            return None  # an empty list: no key
        if all(isinstance(v, (int, np.integer)) for v in values):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in values]))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    if isinstance(value, (float, np.floating)):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))


def write_examples(df: pd.DataFrame, path, compression: str = "") -> None:
    options = tf.io.TFRecordOptions(compression_type=compression)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for row in df.to_dict("records"):
            features = {k: f for k, f in ((k, _value(v)) for k, v in row.items()) if f is not None}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "tags": [["a", "b"], None, [], ["c", None, "a", "b", "d"], ["b"], ["a", "c"]],
        "codes": [[3, 1], [2], None, [1, 2, 3, 4], [], [5]],
        "city": ["x", None, "y", "x", "z", None],
        "hour": [1, 2, 3, 4, 1, 2],
        "age": [20.0, np.nan, 35.0, 41.0, np.nan, 60.0],
        "clicked": [0, 1, 1, 0, 1, 0],
        "liked": ["yes", "no", "no", "yes", "yes", "no"],
    })


def _spec(df: pd.DataFrame) -> FeatureSpec:
    return FeatureSpec.from_dataframe(
        df, labels=["clicked", Label("like", column="liked", positive=("yes",))], categorical=["hour"],
        list_length_quantile=1.0, max_list_length=3)


def test_lists_and_missing_keys_equal_the_dataframe_path_across_files(tmp_path):
    df = _frame()
    spec = _spec(df)
    write_examples(df.iloc[:3], tmp_path / "a.tfrecord")
    write_examples(df.iloc[3:], tmp_path / "b.tfrecord")
    targets = {"clicked": "clicked", "like": "like"}
    expected = dataframe_to_dataset(spec, df, targets, batch_size=4)
    assert _assert_same_batches(expected, tfrecord_to_dataset(spec, tmp_path, targets, batch_size=4)) == 2
    x, y = next(iter(tfrecord_to_dataset(spec, tmp_path, targets, batch_size=6)))
    # Hand-checked: padded with "" / -1 to 3, the last 3 values kept, missing cells and elements dropped.
    assert x["tags"].numpy().tolist()[:4] == [[b"a", b"b", b""], [b"", b"", b""], [b"", b"", b""],
                                              [b"a", b"b", b"d"]]
    assert x["codes"].numpy().tolist()[:4] == [[3, 1, -1], [2, -1, -1], [-1, -1, -1], [2, 3, 4]]
    assert x["city"].numpy().tolist()[1] == b"" and np.isnan(x["age"].numpy()[[1, 4]]).all()
    assert y["like"].numpy().ravel().tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]


def test_census_rows_as_examplegen_writes_them_equal_the_dataframe_path(census_slice, tmp_path):
    spec = census_slice.spec
    df = census_slice.train.iloc[:700]  # whole-number numerics are int64_list, NaN cells have no key
    write_examples(df, tmp_path / "data_tfrecord-00000-of-00001.gz", compression="GZIP")
    targets = {label: label for label in spec.label_names}
    got = tfrecord_to_dataset(spec, tmp_path, targets, batch_size=256)  # GZIP found from the .gz name
    assert _assert_same_batches(dataframe_to_dataset(spec, df, targets, batch_size=256), got) == 3


def test_model_fit_and_evaluate_take_the_streamed_dataset(tmp_path):
    from tfmtl.models import DeepFM

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"item": rng.integers(0, 20, 256).astype(str), "age": rng.normal(size=256),
                       "tags": [list(rng.choice(list("abcd"), rng.integers(1, 4))) for _ in range(256)],
                       "clicked": rng.integers(0, 2, 256)})
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"])
    write_examples(df, tmp_path / "rows.tfrecord")
    tf.keras.utils.set_random_seed(0)
    model = DeepFM(spec, dnn_units=(8,))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    streamed = tfrecord_to_dataset(spec, tmp_path, {"clicked": "clicked"}, batch_size=64)
    history = model.fit(streamed, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    in_memory = dataframe_to_dataset(spec, df, {"clicked": "clicked"}, batch_size=64)
    np.testing.assert_allclose(model.evaluate(streamed, verbose=0), model.evaluate(in_memory, verbose=0), rtol=1e-6)


def test_shuffle_and_drop_remainder_keep_rows_once(tmp_path):
    df = _frame()
    spec = _spec(df)
    write_examples(df, tmp_path / "a.tfrecord")
    assert [len(b["age"]) for b in tfrecord_to_dataset(spec, tmp_path, batch_size=4, drop_remainder=True)] == [4]
    shuffled = list(tfrecord_to_dataset(spec, tmp_path, batch_size=4, shuffle=True, seed=3))
    assert sorted(v for b in shuffled for v in b["hour"].numpy().tolist()) == sorted(df["hour"].tolist())


def test_a_missing_or_bad_label_fails_naming_the_column(tmp_path):
    df = _frame()
    spec = _spec(df)
    write_examples(df.assign(clicked=[0, 1, None, 0, 1, 0]), tmp_path / "gap.tfrecord")
    with pytest.raises(tf.errors.InvalidArgumentError, match="clicked"):
        list(tfrecord_to_dataset(spec, tmp_path / "gap.tfrecord", {"clicked": "clicked"}))
    list(tfrecord_to_dataset(spec, tmp_path / "gap.tfrecord"))  # features only: the label is not read
    write_examples(df.assign(clicked=[0, 1, 2, 0, 1, 0]), tmp_path / "two.tfrecord")
    with pytest.raises(tf.errors.InvalidArgumentError, match="label clicked: column clicked must hold 0/1"):
        list(tfrecord_to_dataset(spec, tmp_path / "two.tfrecord", {"clicked": "clicked"}))


@pytest.mark.parametrize("change, message", [
    ({"city": [1, 2, 3, 4, 5, 6]}, "categorical feature 'city' must be bytes in the tf.Example records, "
                                   "the files hold int64_list"),
    ({"age": ["old"] * 6}, "numeric feature 'age' must be float or int64 in the tf.Example records, "
                           "the files hold bytes_list"),
])
def test_a_column_of_the_wrong_kind_is_named(tmp_path, change, message):
    spec = _spec(_frame())
    write_examples(_frame().assign(**change), tmp_path / "a.tfrecord")
    with pytest.raises(SpecError, match=message):
        tfrecord_to_dataset(spec, tmp_path)


def test_bad_arguments_are_named(tmp_path):
    spec = _spec(_frame())
    with pytest.raises(SpecError, match="no TFRecord files found"):
        tfrecord_to_dataset(spec, tmp_path)
    (tmp_path / "junk.tfrecord").write_bytes(b"not a record")
    with pytest.raises(SpecError, match="compression must be one of"):
        tfrecord_to_dataset(spec, tmp_path, compression="zip")


def test_weights_come_third_and_a_negative_weight_fails(tmp_path):
    df = _frame().assign(w=[1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"], exclude=["liked"], weight_column="w")
    write_examples(df, tmp_path / "w.tfrecord")
    expected = dataframe_to_dataset(spec, df, {"clicked": "clicked"}, batch_size=4)
    assert _assert_same_batches(expected, tfrecord_to_dataset(spec, tmp_path, {"clicked": "clicked"},
                                                              batch_size=4)) == 2
    write_examples(df.assign(w=[1.0, -2.0, 0.5, 1.0, 3.0, 1.0]), tmp_path / "w.tfrecord")
    with pytest.raises(tf.errors.InvalidArgumentError, match="weight column w must hold non-negative numbers"):
        list(tfrecord_to_dataset(spec, tmp_path, {"clicked": "clicked"}))
