"""Numeric encodings in the feature spec: fitting, JSON, errors, and models that embed them as fields."""

import numpy as np
import pandas as pd
import pytest

from tfmtl._keras import keras
from tfmtl.features import FeatureSpec, Label, NumericFeature, SpecError
from tfmtl.features.spec import DEFAULT_EMBEDDING_DIM
from tfmtl.models import build_model


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.exponential(3.0, n)
    df = pd.DataFrame({"city": rng.choice(list("abc"), n), "spend": x, "age": rng.normal(40, 10, n),
                       "flag": np.zeros(n), "clicked": (x > 3).astype(int), "bought": rng.integers(0, 2, n)})
    df.loc[:4, "spend"] = np.nan
    return df


def test_quantile_edges_are_fitted_on_the_transformed_scale():
    df = _frame()
    spec = FeatureSpec.from_dataframe(df, labels=["clicked", "bought"], numeric_encoding="ple", numeric_bins=4)
    spend, age, flag = spec.numeric
    assert spend.log and spend.encoding == "ple" and len(spend.edges) == 5
    np.testing.assert_allclose(spend.edges, np.quantile(np.log1p(df["spend"].dropna()), [0, .25, .5, .75, 1]))
    np.testing.assert_allclose(age.edges, np.quantile(df["age"], [0, .25, .5, .75, 1]))
    assert flag.encoding == "scalar" and flag.edges is None  # a constant column has nothing to encode
    assert [f.name for f in spec.embedded_numeric] == ["spend", "age"]


def test_a_point_mass_gets_its_own_edge_and_the_other_bins_split_the_rest():
    # 0 in 70 of 100 rows (capital gain): plain quantiles would give edges [0, 0, 0, 0, 30] -> one bin.
    gain = np.concatenate([np.zeros(70), np.arange(1.0, 31.0)])
    df = pd.DataFrame({"gain": gain, "y": np.arange(100) % 2})
    edges = FeatureSpec.from_dataframe(df, labels=["y"], numeric_encoding="ple", numeric_bins=4,
                                       log_skew_threshold=99).feature("gain").edges
    # 0 holds >= 1/4 of the rows: an edge of its own; 3 bins split 1..30 at its tertiles.
    np.testing.assert_allclose(edges, [0.0, *np.quantile(np.arange(1.0, 31.0), [1 / 3, 2 / 3]), 30.0])


def test_tree_edges_follow_the_label():
    df = _frame()
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"], numeric_encoding="ple", numeric_bins=4, bins="tree")
    spend = spec.feature("spend")
    # clicked = spend > 3: the tree splits at log1p(3) (between the neighbouring observed values).
    assert any(abs(e - np.log1p(3.0)) < 0.05 for e in spend.edges[1:-1])
    assert len(spend.edges) <= 5


def test_encodings_survive_json_and_standardised_edges():
    spec = FeatureSpec.from_dataframe(_frame(), labels=["clicked"], numeric_encoding="ple")
    assert FeatureSpec.from_json(spec.to_json()) == spec
    f = NumericFeature("x", mean=2.0, variance=4.0, encoding="ple", edges=(0.0, 2.0, 6.0))
    assert f.standardised_edges() == [-1.0, 0.0, 2.0]
    periodic = FeatureSpec.from_dataframe(_frame(), labels=["clicked"], numeric_encoding="periodic")
    assert FeatureSpec.from_json(periodic.to_json()) == periodic
    assert {f.name: f.encoding for f in periodic.numeric}["flag"] == "scalar"  # constant
    assert periodic.feature("spend").encoding == "periodic"


@pytest.mark.parametrize("kwargs, message", [
    ({"encoding": "spline"}, "encoding must be one of"),
    ({"encoding": "ple"}, "needs bin edges"),
    ({"encoding": "ple", "edges": (1.0, 1.0)}, "strictly increasing"),
    ({"encoding": "periodic", "sigma": 0.0}, "sigma > 0"),
])
def test_bad_numeric_features_are_named(kwargs, message):
    with pytest.raises(SpecError, match=f"feature 'x'.*{message}"):
        NumericFeature("x", **kwargs)


def test_from_dataframe_checks_its_arguments():
    with pytest.raises(SpecError, match="numeric_encoding"):
        FeatureSpec.from_dataframe(_frame(), numeric_encoding="bins")
    with pytest.raises(SpecError, match="bins='tree' needs a label"):
        FeatureSpec.from_dataframe(_frame(), numeric_encoding="ple", bins="tree")


@pytest.mark.parametrize("encoding", ["ple", "periodic"])
@pytest.mark.parametrize("cross", [None, "stacked", "parallel"])
def test_models_see_numerics_as_fields_and_round_trip(encoding, cross, tmp_path):
    df = _frame(200)
    spec = FeatureSpec.from_dataframe(df, labels=[Label("clicked"), Label("bought")], numeric_encoding=encoding)
    model = build_model("mmoe", spec, num_experts=2, expert_units=[8], tower_units=[4], fm=True, cross=cross,
                        cross_layers=1, cross_projection_dim=2 if cross == "parallel" else None)
    # 1 categorical field + 2 embedded numerics (the constant column stays scalar), of the inferred width.
    assert model.get_layer("fields").output.shape[1:] == (3, DEFAULT_EMBEDDING_DIM)
    model.compile()
    model.fit(df, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(df, verbose=0)["clicked"], model.predict(df, verbose=0)["clicked"],
                               atol=1e-6)


def test_unknown_cross_mode_is_named():
    spec = FeatureSpec.from_dataframe(_frame(50), labels=["clicked"])
    with pytest.raises(ValueError, match="cross must be one of"):
        build_model("mmoe", spec, cross="diagonal")
