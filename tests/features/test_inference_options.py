"""The spec split by job: InferenceOptions owns every inference default; the schema checks its rules when built."""

import dataclasses
import doctest
import importlib
import inspect

import pandas as pd
import pytest

from tfmtl import arguments
from tfmtl.datasets import census
from tfmtl.features import (
    CategoricalFeature,
    FeatureSpec,
    InferenceOptions,
    Label,
    NumericFeature,
    SpecError,
    inference,
)


def _frame(rows: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"city": [f"c{i % 7}" for i in range(rows)],
                         "age": [float(20 + i % 30) for i in range(rows)],
                         "tags": [["a", "b"][: 1 + i % 2] for i in range(rows)],
                         "clicked": [i % 2 for i in range(rows)]})


def test_the_defaults_are_the_options_and_from_dataframe_repeats_none():
    options = InferenceOptions()
    assert (options.embedding_dim, options.max_vocabulary, options.max_collision_share, options.numeric_encoding,
            options.numeric_bins) == (inference.DEFAULT_EMBEDDING_DIM, inference.DEFAULT_MAX_VOCABULARY,
                                      inference.DEFAULT_MAX_COLLISION_SHARE, inference.DEFAULT_NUMERIC_ENCODING,
                                      inference.DEFAULT_NUMERIC_BINS)
    # No inference option has a second default in from_dataframe's signature (nor in fit_spec's, census'...).
    fields = {field.name for field in dataclasses.fields(InferenceOptions)}
    from pipeline import data

    for function in (FeatureSpec.from_dataframe, census.census_spec, census.load_census, data.fit_spec):
        assert not fields & set(inspect.signature(function).parameters), function.__qualname__


def test_options_and_keyword_changes_give_the_same_spec():
    df = _frame()
    options = InferenceOptions(embedding_dim=8, numeric_encoding="scalar", list_pooling="sum")
    by_object = FeatureSpec.from_dataframe(df, ["clicked"], options=options)
    by_keywords = FeatureSpec.from_dataframe(df, ["clicked"], embedding_dim=8, numeric_encoding="scalar",
                                             list_pooling="sum")
    assert by_object.get_config() == by_keywords.get_config()
    assert by_object.embedding_dim == 8 and by_object.feature("tags").pooling == "sum"
    assert by_object.feature("age").encoding == "scalar"
    # Keyword changes apply over the given options.
    wider = FeatureSpec.from_dataframe(df, ["clicked"], options=options, embedding_dim=12)
    assert wider.embedding_dim == 12 and wider.feature("tags").pooling == "sum"


def test_an_unknown_option_lists_the_known_ones():
    with pytest.raises(SpecError, match=r"unknown inference option\(s\) \['embeding_dim'\]; the options are "
                                        r"\['embedding_dim', 'max_vocabulary'"):
        FeatureSpec.from_dataframe(_frame(), ["clicked"], embeding_dim=8)
    with pytest.raises(SpecError, match="options must be an InferenceOptions, got dict"):
        FeatureSpec.from_dataframe(_frame(), ["clicked"], options={"embedding_dim": 8})


@pytest.mark.parametrize("changes, message", [
    ({"embedding_dim": 0}, "inference option embedding_dim must be an integer >= 1, got 0"),
    ({"numeric_bins": 2.5}, "inference option numeric_bins must be an integer >= 1, got 2.5"),
    ({"numeric_buckets": -1}, "inference option numeric_buckets must be >= 0, got -1"),
    ({"numeric_encoding": "spline"}, "inference option numeric_encoding must be one of scalar, ple, periodic, "
                                     "got 'spline'"),
    ({"bins": "forest"}, "inference option bins must be 'quantile' or 'tree', got 'forest'"),
    ({"list_pooling": "median"}, "inference option list_pooling must be one of"),
    ({"list_length_quantile": 0.0}, r"inference option list_length_quantile must be in \(0, 1\], got 0.0"),
    ({"max_collision_share": 1.0}, r"inference option max_collision_share must be in \(0, 1\), got 1.0"),
])
def test_bad_options_are_refused_when_built_naming_the_option(changes, message):
    with pytest.raises(SpecError, match=message):
        InferenceOptions(**changes)


def test_census_owns_its_width_and_bins_once():
    train = census.read_census_csv(f"{census.DATA_DIR}/train.csv.gz", nrows=300)
    assert (census.CENSUS_INFERENCE.embedding_dim, census.CENSUS_INFERENCE.numeric_bins) == (4, 32)
    spec = census.census_spec(train)
    assert spec.embedding_dim == 4
    assert max(len(f.edges) for f in spec.numeric if f.edges) <= 33  # 32 bins: at most 33 edges
    assert census.census_spec(train, embedding_dim=6).embedding_dim == 6
    assert census.census_spec(train, census.CENSUS_INFERENCE.replace(numeric_encoding="scalar")).embedding_dim == 4


def test_the_command_lines_flags_change_only_what_the_user_gave():
    class Args:
        embedding_dim, numeric_encoding = None, "scalar"  # no numeric_buckets flag at all (tfmtl train)

    assert arguments.inference_options(Args(), census.CENSUS_INFERENCE) == census.CENSUS_INFERENCE.replace(
        numeric_encoding="scalar")
    assert set(arguments.INFERENCE_FLAGS) <= {field.name for field in dataclasses.fields(InferenceOptions)}


@pytest.mark.parametrize("build, message", [
    (lambda: CategoricalFeature("", vocabulary=("a",)), "feature name must be a non-empty string, got ''"),
    (lambda: NumericFeature(None), "feature name must be a non-empty string, got None"),
    (lambda: Label(""), "label name must be a non-empty string"),
    (lambda: FeatureSpec((NumericFeature("w"), NumericFeature("x")), (Label("y"),), weight_column="w"),
     "weight column 'w' is also a feature or a label column"),
    (lambda: FeatureSpec((NumericFeature("x"),), (Label("y"),), weight_column="y"),
     "weight column 'y' is also a feature or a label column"),
])
def test_schema_rules_are_checked_at_construction(build, message):
    with pytest.raises(SpecError, match=message):
        build()


@pytest.mark.parametrize("module", ["tfmtl.features.schema", "tfmtl.features.inference", "tfmtl.features.frames",
                                    "tfmtl.features.spec", "tfmtl.features.tfrecord", "tfmtl.features.parquet"])
def test_the_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
