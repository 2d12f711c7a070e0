"""``--label`` values: the one parser of both CLIs, and the labels matched to the training rows' dtypes."""

import argparse

import pandas as pd
import pytest

from tfmtl.features import FeatureSpec, Label, SpecError, label_argument, parse_label, typed_labels


@pytest.mark.parametrize("text, expected", [
    ("clicked", Label("clicked")),
    ("click=clicked", Label("click", "clicked")),
    ("income_50k=income:>50K,>50K.", Label("income_50k", "income", (">50K", ">50K."))),
    ("good=stars:4,5", Label("good", "stars", ("4", "5"))),
    (r"x=c:a\,b,c", Label("x", "c", ("a,b", "c"))),          # '\,' is a comma inside a value
    ("x=c:a=b:c", Label("x", "c", ("a=b:c",))),              # the name ends at the first '=', the column at ':'
    (r"x=c:back\\slash", Label("x", "c", ("back\\slash",))),
])
def test_label_flags(text, expected):
    assert parse_label(text) == expected


@pytest.mark.parametrize("text, message", [
    ("=income", "the label name is empty"),
    ("x=", "the column after '=' is empty"),
    ("x=income:", "empty positive value"),
    ("x=income:a,,b", "empty positive value"),
    (" x=income", "has spaces around it"),
])
def test_malformed_label_flags_name_the_problem(text, message):
    with pytest.raises(SpecError, match=message):
        parse_label(text)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        label_argument(text)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"stars": [1, 4, 5, 2, 3, 5], "rating": [1.0, 4.0, 4.5, 2.0, 3.0, 5.0],
                         "income": ["<=50K", ">50K", "<=50K", ">50K.", "<=50K", "<=50K"],
                         "clicked": [0, 1, 0, 0, 1, 0], "flag": [True, False, True, True, False, False]})


def test_positive_values_take_the_columns_dtype():
    frame = _frame()
    stars, rating, income, flag = typed_labels(
        [parse_label("good=stars:4,5"), parse_label("high=rating:4.5,5"),
         parse_label("rich=income:>50K,>50K."), parse_label("f=flag:true")], frame)
    assert stars.positive == (4, 5) and all(type(v) is int for v in stars.positive)
    assert rating.positive == (4.5, 5.0)
    spec = FeatureSpec.from_dataframe(frame, labels=[stars, rating, income, flag])
    # isin is type-strict: the strings "4", "5" would match no row of an int column
    assert spec.label_array(frame, "good").ravel().tolist() == [0, 1, 1, 0, 0, 1]
    assert spec.label_array(frame, "high").ravel().tolist() == [0, 0, 1, 0, 0, 1]
    assert spec.label_array(frame, "rich").ravel().tolist() == [0, 1, 0, 1, 0, 0]
    assert spec.label_array(frame, "f").ravel().tolist() == [1, 0, 1, 1, 0, 0]
    assert FeatureSpec.from_json(spec.to_json()).label("good").positive == (4, 5)  # the saved spec keeps the types


@pytest.mark.parametrize("text, message", [
    ("x=nope:1", "label 'x': column 'nope' is not in the data"),
    ("x=income:>90K", r"label 'x': column 'income' has no positive values \('>90K'\); it holds '<=50K', '>50K'"),
    ("x=stars:1,2,3,4,5", "label 'x': every row of column 'stars' is positive"),
    ("x=stars:four", r"label 'x': column 'stars' is numeric \(int64\), got positive value 'four'"),
    ("income", "label 'income': column 'income' must hold 0/1 values.*--label income=income:VALUE"),
    ("x=flag:maybe", "column 'flag' is boolean"),
])
def test_bad_labels_name_the_label_and_the_column(text, message):
    with pytest.raises(SpecError, match=message):
        typed_labels([parse_label(text)], _frame())


def test_a_zero_one_column_needs_both_classes():
    with pytest.raises(SpecError, match="label 'clicked': column 'clicked' has no positive"):
        typed_labels(["clicked"], pd.DataFrame({"clicked": [0, 0]}))
    assert typed_labels(["clicked"], _frame()) == [Label("clicked")]
