"""List-valued (multi-hot / sequence) categorical features: the spec and the DataFrame arrays."""

import numpy as np
import pandas as pd
import pytest

from tfmtl.features import CategoricalFeature, FeatureSpec, Label, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import list_array


def frame():
    return pd.DataFrame({
        "item": ["a", "b", "c", "a", "b"],
        "history": [["a", "b"], [], None, np.array(["z", "a", "b", "c", "d"]), ["c", None]],
        "genres": [[1, 2], [3], [np.nan, 2], [], (2,)],
        "clicked": [0, 1, 0, 1, 1],
    })


def test_infers_list_columns_vocabulary_and_length():
    spec = FeatureSpec.from_dataframe(frame(), [Label("clicked")], list_length_quantile=0.8, max_list_length=50)
    history, genres = spec.feature("history"), spec.feature("genres")
    assert isinstance(history, ListFeature) and isinstance(genres, ListFeature)
    # Lengths after dropping missing cells/elements: history [2, 0, 0, 5, 1] -> q0.8 = 2.6 -> 3.
    assert history.max_length == 3 and history.pooling == "mean" and history.dtype == "string"
    assert history.vocabulary == ("a", "b", "c", "d", "z")  # by frequency, ties by value
    # genres [2, 1, 1, 0, 1] -> q0.8 = 1.2 -> 2; int codes, 2 is the most frequent.
    assert genres.max_length == 2 and genres.dtype == "int64" and genres.vocabulary == (2, 1, 3)
    assert spec.lists == [history, genres] and spec.categorical == [spec.feature("item")]
    assert spec.list_tables == [history, genres] and spec.fields == [spec.feature("item")]


def test_max_length_is_capped():
    spec = FeatureSpec.from_dataframe(frame(), ["clicked"], list_length_quantile=1.0, max_list_length=4)
    assert spec.feature("history").max_length == 4  # the longest list has 5


def test_shared_embeddings_fit_the_owner_vocabulary_on_both_columns():
    spec = FeatureSpec.from_dataframe(frame(), ["clicked"], shared_embeddings={"history": "item"},
                                      list_pooling=None)
    history, item = spec.feature("history"), spec.feature("item")
    assert history.shares == "item" and history.vocabulary is None and history.pooling is None
    assert item.vocabulary == ("a", "b", "c", "d", "z")  # a: 2 + 2, b: 2 + 2, c: 1 + 2, d: 1, z: 1
    assert spec.table_owner(history) is item and spec.list_tables == [spec.feature("genres")]


def test_json_round_trip_keeps_list_features():
    spec = FeatureSpec.from_dataframe(frame(), ["clicked"], shared_embeddings={"history": "item"})
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert FeatureSpec.from_config(spec.get_config()).feature("genres") == spec.feature("genres")


def test_arrays_pad_truncate_and_drop_missing():
    spec = FeatureSpec.from_dataframe(frame(), ["clicked"], list_length_quantile=0.8)
    arrays = spec.feature_arrays(frame())
    # Longer lists keep their LAST max_length values; missing cells, empty lists and None elements are padding.
    assert arrays["history"].tolist() == [["a", "b", ""], ["", "", ""], ["", "", ""], ["b", "c", "d"],
                                          ["c", "", ""]]
    assert arrays["genres"].dtype == np.int64
    assert arrays["genres"].tolist() == [[1, 2], [3, -1], [2, -1], [-1, -1], [2, -1]]
    assert arrays["item"].tolist() == ["a", "b", "c", "a", "b"]


def test_list_array_of_an_empty_or_all_missing_column():
    assert list_array(pd.Series([None, [], np.nan], dtype=object), 2).tolist() == [["", ""]] * 3
    assert list_array(pd.Series([[5, 6, 7]]), 2, "int64").tolist() == [[6, 7]]


@pytest.mark.parametrize("make, message", [
    (lambda: ListFeature("h", 0, vocabulary=("a",)), "max_length must be an integer >= 1"),
    (lambda: ListFeature("h", 3), "exactly one of vocabulary, hash_buckets or shares"),
    (lambda: ListFeature("h", 3, vocabulary=("a",), pooling="median"), "pooling must be one of"),
    (lambda: ListFeature("h", 3, vocabulary=("a", "")), "pad token"),
    (lambda: ListFeature("h", 3, vocabulary=("a",), shares="item"), "set neither vocabulary nor hash_buckets"),
    (lambda: FeatureSpec((ListFeature("h", 3, shares="item"),)), "must name a categorical or list feature"),
    (lambda: FeatureSpec((NumericFeature("item"), ListFeature("h", 3, shares="item"))),
     "must name a categorical or list feature"),
    (lambda: FeatureSpec((CategoricalFeature("item", vocabulary=(1,), dtype="int64"),
                          ListFeature("h", 3, shares="item"))), "dtype and embedding_dim must be 'int64' and 4"),
])
def test_bad_list_specs_name_the_field(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_bad_list_columns_name_the_column():
    spec = FeatureSpec((ListFeature("genres", 2, vocabulary=(1, 2), dtype="int64"),
                        ListFeature("tags", 2, vocabulary=("x",))))
    good = pd.DataFrame({"genres": [[1], [2]], "tags": [["x"], []]})
    with pytest.raises(SpecError, match=r"feature 'tags' is a list feature but the column holds string scalars"):
        spec.feature_arrays(good.assign(tags=["x", "y"]))
    with pytest.raises(SpecError, match=r"feature 'genres' holds int64 codes but row 1 has 'drama'"):
        spec.feature_arrays(good.assign(genres=[[1], ["drama"]]))
    with pytest.raises(SpecError, match="shared_embeddings: column 'item' is not a list column"):
        FeatureSpec.from_dataframe(frame(), ["clicked"], shared_embeddings={"item": "history"})
    with pytest.raises(SpecError, match="'history' shares 'nope', which must be a categorical"):
        FeatureSpec.from_dataframe(frame(), ["clicked"], shared_embeddings={"history": "nope"})


# ------------------------------------------------------------ tensors and preprocessing
def test_fit_list_pads_truncates_and_drops_pad_tokens_in_every_form():
    import tensorflow as tf

    from tfmtl.features import fit_list

    feature = ListFeature("h", 3, vocabulary=("a",))
    wide = tf.constant([["a", "", "b", "c", "d", ""], ["", "", "", "", "", ""], ["e", "", "", "", "", ""]])
    expected = [[b"b", b"c", b"d"], [b"", b"", b""], [b"e", b"", b""]]
    assert fit_list(wide, feature).numpy().tolist() == expected
    ragged = tf.ragged.constant([["a", "b", "c", "d"], [], ["e"]])
    assert fit_list(ragged, feature).numpy().tolist() == expected
    assert fit_list(ragged.to_sparse(), feature).numpy().tolist() == expected
    narrow = tf.constant([[7], [-1]], tf.int64)
    assert fit_list(narrow, ListFeature("g", 2, vocabulary=(7,), dtype="int64")).numpy().tolist() == [[7, -1],
                                                                                                       [-1, -1]]


def test_preprocessing_gives_list_ids_with_padding_minus_one():
    from tfmtl.features import FeaturePreprocessing

    spec = FeatureSpec((CategoricalFeature("item", vocabulary=("a", "b")),
                        ListFeature("history", 3, shares="item"),
                        ListFeature("genres", 2, vocabulary=(5, 6), dtype="int64", pooling="max")))
    out = FeaturePreprocessing(spec)({"item": np.array(["b", "q"]),
                                      "history": np.array([["a", "zz", "b", "b"], ["", "", "", ""]]),
                                      "genres": np.array([[6, 9], [-1, -1]])})
    assert out["ids"].numpy().tolist() == [[2], [0]]
    assert out["lists"]["history"].numpy().tolist() == [[0, 2, 2], [-1, -1, -1]]  # item's ids; zz is OOV
    assert out["lists"]["genres"].numpy().tolist() == [[2, 0], [-1, -1]]
    encoded = FeaturePreprocessing(spec, encoded=True)({"item": np.array([2]), "history": np.array([[1, -1, -1]]),
                                                        "genres": np.array([[1, 2]])})
    assert encoded["lists"]["history"].numpy().tolist() == [[1, -1, -1]]


def test_dataset_batches_list_columns_in_order_and_shuffled():
    from tfmtl.features import dataframe_to_dataset

    df = frame()
    spec = FeatureSpec.from_dataframe(df, ["clicked"], list_length_quantile=0.8)
    batches = list(dataframe_to_dataset(spec, df, {"clicked": "clicked"}, batch_size=2))
    assert [b[0]["history"].shape.as_list() for b in batches] == [[2, 3], [2, 3], [1, 3]]
    assert batches[1][0]["history"].numpy().tolist() == [[b""] * 3, [b"b", b"c", b"d"]]
    shuffled = list(dataframe_to_dataset(spec, df, {"clicked": "clicked"}, batch_size=5, shuffle=True, seed=1))
    rows = sorted(map(tuple, shuffled[0][0]["genres"].numpy().tolist()))
    assert rows == sorted(map(tuple, spec.feature_arrays(df)["genres"].tolist()))


def test_hashed_lists_lists_sharing_a_list_and_an_empty_vocabulary():
    from tfmtl.features import FeaturePreprocessing

    spec = FeatureSpec((ListFeature("tags", 3, hash_buckets=7),
                        ListFeature("more_tags", 2, shares="tags"),
                        ListFeature("empty", 2, vocabulary=())))
    assert [f.name for f in spec.list_tables] == ["tags", "empty"] and spec.feature("empty").num_ids == 1
    out = FeaturePreprocessing(spec)({"tags": np.array([["x", "y", ""]]), "more_tags": np.array([["y", "x"]]),
                                      "empty": np.array([["q", ""]])})["lists"]
    tags, more = out["tags"].numpy()[0].tolist(), out["more_tags"].numpy()[0].tolist()
    assert tags[2] == -1 and 0 <= min(tags[:2]) and max(tags) < 7
    assert more == tags[:2][::-1]  # the same hashing: y, x
    assert out["empty"].numpy().tolist() == [[0, -1]]  # everything OOV, padding still -1
