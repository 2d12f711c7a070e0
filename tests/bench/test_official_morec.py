"""bench/official/morec_export.py feeds microsoft/UniRec's MoRec exactly bench.morec's split and attributes."""

import os

import numpy as np
import pandas as pd
import pytest

from bench.official import morec_export
from tfmtl.datasets import movielens

OFFICIAL = os.environ.get("MOREC_OFFICIAL", morec_export.DEFAULT_OFFICIAL)
needs_movielens = pytest.mark.skipif(not movielens.is_available(), reason="MovieLens-100k not fetched")
needs_official = pytest.mark.skipif(not os.path.isdir(os.path.join(OFFICIAL, "unirec")),
                                    reason=f"official UniRec checkout not at {OFFICIAL} (set MOREC_OFFICIAL)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from bench.pid_control import movielens_data

    data = movielens_data()  # what bench.morec runs on
    out = str(tmp_path_factory.mktemp("morec_ml100k"))
    summary = morec_export.export(out, OFFICIAL, data=data)
    return data, out, summary


@needs_movielens
@needs_official
def test_rows_and_ids_are_bench_morecs_plus_one(exported):
    data, out, summary = exported
    assert summary["rows"] == {"train": 95285, "valid": 1886, "test": 2829}
    for ours, name in morec_export.SPLIT_FILES.items():
        frame = pd.read_feather(os.path.join(out, name + ".ftr"))
        users, items = data["split"][ours]
        assert list(frame.columns) == ["user_id", "item_id"]
        np.testing.assert_array_equal(frame["user_id"].to_numpy(), users + 1)  # UniRec's id 0 is padding
        np.testing.assert_array_equal(frame["item_id"].to_numpy(), items + 1)
    history = pd.read_feather(os.path.join(out, "user_history.ftr"))
    np.testing.assert_array_equal(history["item_id"].to_numpy(), data["split"]["train"][1] + 1)


@needs_movielens
@needs_official
def test_item_meta_and_alignment_target_parse_and_match(exported):
    data, out, _ = exported
    meta = pd.read_csv(os.path.join(out, "item_meta_morec.csv"))
    assert list(meta.columns) == ["item_id", "weight", "fair_group", "align_group"]
    assert meta["item_id"].tolist() == list(range(data["num_items"] + 1))
    assert meta.iloc[0].tolist() == [0, 0.0, 0, 0]  # the padding row UniRec expects
    np.testing.assert_allclose(meta["weight"].to_numpy()[1:], data["price"])
    np.testing.assert_array_equal(meta["fair_group"].to_numpy()[1:], data["group"] + 1)
    np.testing.assert_array_equal(meta["align_group"].to_numpy()[1:], data["pop_bin"] + 1)
    target = pd.read_csv(os.path.join(out, "align_dist.csv"))
    assert target["group_id"].tolist() == list(range(len(data["pop_target"])))  # UniRec indexes it from 0
    np.testing.assert_allclose(target["proportion"].to_numpy(), data["pop_target"])
    with open(os.path.join(out, "config", "dataset", morec_export.DATASET + ".yaml")) as f:
        config = dict(line.split(": ", 1) for line in f.read().splitlines())
    assert (int(config["n_users"]), int(config["n_items"])) == (944, 1683)
    assert os.path.exists(os.path.join(out, "config", "base.yaml"))


def test_missing_official_checkout_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--official .*base.yaml is missing"):
        morec_export.export(str(tmp_path / "out"), str(tmp_path / "no_unirec"), data={})
