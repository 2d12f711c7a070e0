"""bench/official/m3oe_export.py feeds the official M3oE code exactly bench/multidomain.py's split."""

import pandas as pd
import pytest

from bench.official import m3oe_export, m3oe_run
from tfmtl.datasets import movielens

needs_movielens = pytest.mark.skipif(not movielens.is_available(), reason="MovieLens-100k not fetched")


@pytest.fixture(scope="module")
def exported():
    df, _ = movielens.multidomain(seed=0)
    parts = movielens.split_frame(df, (0.8, 0.1, 0.1), seed=0)  # what bench/multidomain.py runs on
    return m3oe_export.export_frame(), parts


@needs_movielens
def test_export_holds_our_split_row_for_row(exported):
    frame, parts = exported
    assert [int((frame["split"] == name).sum()) for name in m3oe_export.SPLITS] == [80000, 10000, 10000]
    originals = pd.concat(parts, ignore_index=True)
    for column in ("user_id", "movie_id"):
        # a label encoding: one code per id and one id per code, over all 100k rows in split order
        pairs = pd.DataFrame({"code": frame[column], "id": originals[column]}).drop_duplicates()
        assert len(pairs) == pairs["code"].nunique() == pairs["id"].nunique() == originals[column].nunique()
    for name, part in zip(m3oe_export.SPLITS, parts):
        rows = frame[frame["split"] == name].reset_index(drop=True)
        pd.testing.assert_series_equal(rows["age"], (part["age"] - 7) / (73 - 7), check_names=False,
                                       check_dtype=False)  # ML-100k ages run 7..73
        pd.testing.assert_series_equal(rows["domain_indicator"], part["domain"].astype("int64"), check_names=False)
        # the official names: click = rating > 3 (our like), like = rating > 4 (our love)
        pd.testing.assert_series_equal(rows["click"], part["like"].astype("int64"), check_names=False)
        pd.testing.assert_series_equal(rows["like"], part["love"].astype("int64"), check_names=False)


@needs_movielens
def test_export_layout_is_the_official_one(exported):
    frame, _ = exported
    # ctr_trainer.py reads the domain from the last feature column (x_dict[-1, :])
    assert m3oe_export.FEATURE_COLUMNS[-1] == "domain_indicator"
    assert list(frame.columns) == list(m3oe_export.FEATURE_COLUMNS) + ["click", "like", "split"]
    assert list(m3oe_run.FEATURES) == list(m3oe_export.FEATURE_COLUMNS)
    assert frame["age"].min() == 0.0 and frame["age"].max() == 1.0
    assert sorted(frame["domain_indicator"].unique()) == [0, 1, 2]
    assert frame["gender"].nunique() == 2 and frame["gender"].min() == 0


def test_runner_names_a_missing_official_checkout(tmp_path, capsys):
    with pytest.raises(SystemExit):
        m3oe_run.main(["--official", str(tmp_path), "--data", "x.csv", "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert "--official" in err and "has no MDMTRec/ folder" in err
