"""List features in the Transform graph: CSV-encoded and var-len lists give the Keras path's ids."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline import signatures, transform
from pipeline.config import transform_config
from tfmtl.features import CategoricalFeature, FeaturePreprocessing, FeatureSpec, Label, ListFeature, SpecError

SPEC = FeatureSpec(
    (CategoricalFeature("item", vocabulary=("a", "b", "c")),
     ListFeature("history", 3, shares="item", pooling=None),
     ListFeature("genres", 2, vocabulary=(7, 9), dtype="int64"),
     ListFeature("tags", 4, hash_buckets=16)),
    (Label("clicked"),))

# Row 1: empty lists; row 2: missing cells and an "NA" element; row 3: over-long lists and unseen values.
LISTS = {
    "history": [["a", "b"], [], None, ["c", "zz", "a", "b", "b"]],
    "genres": [[7], [], [9, None], [1, 7, 9]],
    "tags": [["x", "y"], [], None, ["u", "v", "w", "x", "y"]],
}


def _keras_lists(frame: pd.DataFrame) -> dict:
    arrays = SPEC.feature_arrays(frame)
    out = FeaturePreprocessing(SPEC)({k: tf.constant(v) for k, v in arrays.items()})
    return {name: value.numpy() for name, value in out["lists"].items()}


def _apply(inputs):
    config = transform_config(SPEC, na_values=transform.PANDAS_NA_VALUES)
    return tf.function(lambda x: transform.preprocessing_fn(x, config))(inputs)


def _scalar(values, dtype):
    return tf.SparseTensor([[i, 0] for i in range(len(values))], tf.constant(values, dtype), [len(values), 1])


def _var_len(rows, dtype):
    """A var-len tf.Example column as the Transform receives it: SparseTensor [batch, longest]."""
    indices = [[i, j] for i, row in enumerate(rows) for j in range(len(row))]
    values = [v for row in rows for v in row]
    return tf.SparseTensor(tf.constant(indices, tf.int64, shape=[len(indices), 2]), tf.constant(values, dtype),
                           [len(rows), max(len(r) for r in rows)])


def _frame():
    return pd.DataFrame({"item": ["a", "b", "c", "q"], **LISTS, "clicked": [1, 0, 1, 0]})


def test_csv_encoded_lists_match_keras():
    # CSV cells: values joined with "|", leading spaces after the separator, "NA" and "" missing.
    csv = {"history": [" a|b", "", "NA", "c| zz|a|b|b"], "genres": ["7", "", "9|NA", "1|7|9"],
           "tags": ["x|y", "", "", "u|v|w|x|y"]}
    inputs = {name: _scalar(values, tf.string) for name, values in csv.items()}
    inputs.update(item=_scalar(["a", "b", "c", "q"], tf.string), clicked=_scalar([1, 0, 1, 0], tf.int64))
    out = _apply(inputs)
    expected = _keras_lists(_frame())
    assert expected["history"].tolist() == [[1, 2, -1], [-1, -1, -1], [-1, -1, -1], [1, 2, 2]]
    assert expected["genres"].tolist() == [[1, -1], [-1, -1], [2, -1], [1, 2]]
    for name in LISTS:
        np.testing.assert_array_equal(out[name].numpy(), expected[name], err_msg=name)


def test_var_len_lists_match_keras():
    rows = {name: [[v for v in (row or []) if v is not None] for row in values] for name, values in LISTS.items()}
    inputs = {"history": _var_len(rows["history"], tf.string), "genres": _var_len(rows["genres"], tf.int64),
              "tags": _var_len(rows["tags"], tf.string), "item": _scalar(["a", "b", "c", "q"], tf.string),
              "clicked": _scalar([1, 0, 1, 0], tf.int64)}
    out = _apply(inputs)
    expected = _keras_lists(_frame())
    for name in LISTS:
        np.testing.assert_array_equal(out[name].numpy(), expected[name], err_msg=name)
    assert out["history"].shape.as_list() == [4, 3]


def test_serving_glue_turns_padded_lists_into_var_len_inputs():
    raw_schema = {"history": tf.io.VarLenFeature(tf.string), "genres": tf.io.VarLenFeature(tf.string)}
    inputs = signatures.to_transform_inputs(
        {"history": tf.constant([["a", "", "b"], ["", "", ""]]), "genres": tf.constant([[7, -1, 9], [-1, -1, -1]],
                                                                                       tf.int64)}, raw_schema)
    assert tf.sparse.to_dense(inputs["history"]).numpy().tolist() == [[b"a", b"b"], [b"", b""]]
    assert inputs["genres"].values.numpy().tolist() == [b"7", b"9"]  # a CSV string column takes "7", "9"
    with pytest.raises(TypeError, match="raw feature 'history' is a list"):
        signatures.to_transform_inputs({"history": tf.constant([["a"]])},
                                       {"history": tf.io.FixedLenFeature([], tf.string)})


def test_list_features_need_spec_statistics():
    config = transform_config(SPEC, statistics=transform.ANALYZER_STATISTICS)
    with pytest.raises(SpecError, match=r"list features \['history', 'genres', 'tags'\] need statistics='spec'"):
        transform.preprocessing_fn({}, config)
