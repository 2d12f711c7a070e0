import json

import numpy as np
import pandas as pd
import pytest

from tfmtl.features import CategoricalFeature, FeatureSpec, Label, NumericFeature, SpecError


def frame():
    return pd.DataFrame({
        "city": ["a", "b", "a", None],
        "code": [3, 5, 3, 3],
        "age": [20.0, 30.0, np.nan, 50.0],
        "spend": [0.0, 1.0, 2.0, 1000.0],
        "outcome": ["yes", "no", "yes", "no"],
        "clicked": [0, 1, 1, 0],
    })


def test_infers_kinds_vocabularies_and_statistics():
    spec = FeatureSpec.from_dataframe(frame(), labels=[Label("clicked"), Label("won", "outcome", ("yes",))],
                                      categorical=["code"], log_skew_threshold=1.0)
    assert spec.feature_names == ["city", "code", "age", "spend"]  # label columns are not features
    city, code = spec.feature("city"), spec.feature("code")
    assert city.vocabulary == ("a", "b") and city.num_ids == 3  # by frequency, + OOV
    assert code.dtype == "int64" and code.vocabulary == (3, 5)
    age = spec.feature("age")
    assert age.mean == pytest.approx(100 / 3) and age.variance == pytest.approx(np.var([20, 30, 50]))
    assert not age.log
    assert spec.feature("spend").log  # non-negative and heavily skewed
    assert spec.field_sizes == [3, 3]


def test_json_round_trip_and_atomic_save(tmp_path):
    spec = FeatureSpec.from_dataframe(frame(), labels=["clicked"], exclude=["outcome"], numeric_buckets=2)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    path = tmp_path / "nested" / "spec.json"
    spec.save(path)
    assert FeatureSpec.load(path) == spec
    assert [p.name for p in path.parent.iterdir()] == ["spec.json"]  # no temp file left
    assert json.loads(path.read_text())["labels"][0]["name"] == "clicked"


@pytest.mark.parametrize("make, message", [
    (lambda: FeatureSpec(()), "at least one feature"),
    (lambda: FeatureSpec((NumericFeature("a"), NumericFeature("a"))), "duplicate feature names"),
    (lambda: FeatureSpec((NumericFeature("y"),), (Label("y"),)), "target leak"),
    (lambda: CategoricalFeature("c"), "exactly one of vocabulary or hash_buckets"),
    (lambda: CategoricalFeature("c", vocabulary=("a",), dtype="float"), "dtype must be"),
    (lambda: NumericFeature("n", boundaries=(2.0, 1.0)), "strictly increasing"),
    (lambda: NumericFeature("n", variance=-1.0), "variance"),
])
def test_bad_specs_name_the_field(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_bad_dataframes_name_the_column():
    spec = FeatureSpec.from_dataframe(frame(), labels=["clicked"], exclude=["outcome"], categorical=["code"])
    with pytest.raises(SpecError, match="empty"):
        spec.check_dataframe(frame().iloc[:0])
    with pytest.raises(SpecError, match=r"\['age'\] are missing"):
        spec.check_dataframe(frame().drop(columns="age"))
    with pytest.raises(SpecError, match="feature 'age' must be numeric"):
        spec.check_dataframe(frame().assign(age=["x", "1", "2", "3"]))
    with pytest.raises(SpecError, match="label 'clicked': column 'clicked' is missing"):
        spec.check_dataframe(frame().drop(columns="clicked"), require_labels=["clicked"])
    with pytest.raises(SpecError, match="must hold 0/1"):
        spec.check_dataframe(frame().assign(clicked=[0, 2, 1, 0]), require_labels=["clicked"])
    with pytest.raises(SpecError, match="label 'nope' is not in the spec"):
        spec.label("nope")
    with pytest.raises(SpecError, match="needs a pandas DataFrame"):
        FeatureSpec.from_dataframe({"a": [1]})
    with pytest.raises(SpecError, match="column 'missing' is not in the DataFrame"):
        FeatureSpec.from_dataframe(frame(), categorical=["missing"])


def test_high_cardinality_column_is_hashed():
    df = pd.DataFrame({"user": [f"u{i}" for i in range(50)], "y": [0, 1] * 25})
    spec = FeatureSpec.from_dataframe(df, labels=["y"], max_vocabulary=10, hash_buckets=32)
    assert spec.feature("user").hash_buckets == 32 and spec.field_sizes == [32]


def test_label_arrays_from_positive_values():
    spec = FeatureSpec.from_dataframe(frame(), labels=[Label("won", "outcome", ("yes",))], exclude=["clicked"])
    np.testing.assert_array_equal(spec.label_array(frame(), "won").ravel(), [1, 0, 1, 0])


def test_feature_arrays_turn_any_categorical_column_into_strings():
    train = pd.DataFrame({"c": ["a", "b", "a", "b"], "y": [0, 1, 0, 1]})
    spec = FeatureSpec.from_dataframe(train, labels=["y"], categorical=["c"])
    columns = {
        "all str": pd.Series(["a", "b", "zz"], dtype=object),
        "missing": pd.Series(["a", None, np.nan], dtype=object),
        "mixed types": pd.Series(["a", 7, 1.5], dtype=object),
        "pandas string": pd.Series(["a", pd.NA, "b"], dtype="string"),
    }
    expected = {"all str": ["a", "b", "zz"], "missing": ["a", "", ""], "mixed types": ["a", "7", "1.5"],
                "pandas string": ["a", "", "b"]}
    for case, column in columns.items():
        values = spec.feature_arrays(pd.DataFrame({"c": column}))["c"]
        assert values.dtype == object and values.tolist() == expected[case], case
