"""bench/official/mamex_export.py feeds the official MAMEX code exactly bench/coldstart.py's split."""

import os
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.official import mamex_export, mamex_run
from tfmtl.datasets import movielens

OFFICIAL = os.environ.get("TFMTL_MAMEX_OFFICIAL", "/work/official/MAMEX")
# the tests of the export need the data and the official copy; the sampler test below needs neither (runs in CI)
needs_official = pytest.mark.skipif(not movielens.is_available() or not os.path.isdir(OFFICIAL),
                                    reason=f"MovieLens-100k not fetched or no official MAMEX copy at {OFFICIAL}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mamex"))
    data = mamex_export.load_split()
    return data, out, mamex_export.write(out, data)


def read_lines(path):
    """``uid item item ...`` lines parsed as loader.py Loader4MM reads them."""
    pairs = []
    with open(path) as f:
        for line in f:
            tokens = line.strip("\n").split(" ")
            pairs += [(int(tokens[0]), int(item)) for item in tokens[1:]]
    return pairs


def rated_pairs(frame):
    rated = frame[frame["click"] == 1]
    return sorted(zip(rated["user_id"].astype(int) - 1, rated["movie_id"].astype(int) - 1))


@needs_official
def test_interaction_files_hold_our_split(exported):
    data, out, meta = exported
    assert meta["rows"] == {"train": 144616, "validation": 16069, "cold": 39315}
    for name, frame in (("train", data.train), ("validation", data.validation), ("cold", data.cold)):
        pairs = read_lines(os.path.join(out, mamex_export.POSITIVE_FILES[name]))
        assert sorted(pairs) == rated_pairs(frame)
        assert len(pairs) == meta["positives"][name] == int(frame["click"].sum())
    cold = np.load(os.path.join(out, "cold_item_index.npy"))
    assert len(cold) == 336
    assert sorted(cold + 1) == sorted(data.items.loc[data.items["cold"], "movie_id"].astype(int))
    train_items = {item for _, item in read_lines(os.path.join(out, "train.txt"))}
    assert not train_items & set(cold.tolist())  # no interaction of a cold item reaches training
    test_items = {item for _, item in read_lines(os.path.join(out, "test.txt"))}
    assert test_items <= set(cold.tolist())
    # Loader4MM sizes the item range by the largest id it reads (+1): it must cover every feature row
    every = [i for f in mamex_export.POSITIVE_FILES.values() for _, i in read_lines(os.path.join(out, f))]
    assert max(every) + 1 == len(np.load(os.path.join(out, "image_feat.npy"))) == 1682


@needs_official
def test_item_features_line_up_with_item_ids(exported):
    data, out, _ = exported
    items = data.items.sort_values("movie_id").reset_index(drop=True)
    cold = items["cold"].to_numpy()
    cf = np.load(os.path.join(out, "cf_feat.npy"))
    assert cf.shape == (1682, 16)
    assert np.isnan(cf[cold]).all()  # cold items have no CF vector
    # warm items too where they have no rated training pair (collaborative_factors' NaN rows): as coldstart_split
    np.testing.assert_array_equal(np.isnan(cf), items[list(data.modalities["cf"])].isna().to_numpy())
    assert np.isfinite(cf[~cold]).all(axis=1).mean() > 0.9
    image = np.load(os.path.join(out, "image_feat.npy"))
    np.testing.assert_array_equal(image[:, :19], items[list(movielens.GENRE_COLUMNS)].to_numpy(np.float32))
    np.testing.assert_allclose(image[:, 19], items["year_z"].fillna(0.0), rtol=1e-6)
    text = np.load(os.path.join(out, "text_feat.npy"))
    assert text.shape == (1682, mamex_export.TITLE_DIM) and np.isfinite(text).all()
    # two titles made of the same tokens get the same vector; a different title another one
    repeated = items["title"].duplicated(keep=False)
    same = items.index[repeated & (items["title"] == items.loc[repeated, "title"].iloc[0])][:2]
    np.testing.assert_allclose(text[same[0]], text[same[1]], atol=1e-6)
    assert not np.allclose(text[0], text[1])


@needs_official
def test_exposures_and_rank_users_are_bench_coldstarts(exported):
    data, out, meta = exported
    validation = pd.read_csv(os.path.join(out, "validation_exposures.csv"))
    assert list(validation.columns) == list(mamex_export.EXPOSURE_COLUMNS) and len(validation) == 16069
    np.testing.assert_array_equal(validation["conversion"], data.validation["conversion"])
    cold = pd.read_csv(os.path.join(out, "cold_exposures.csv"))
    np.testing.assert_array_equal(cold["item"] + 1, data.cold["movie_id"].astype(int))
    users = np.loadtxt(os.path.join(out, "rank_users.txt"), dtype=int)
    assert len(users) == meta["rank_users"] == len(set(users)) == 300
    # bench/coldstart.py sorts the sampled ids as strings; the order drives its per-user tie-break draws
    assert [str(u + 1) for u in users] == sorted(str(u + 1) for u in users) == mamex_export.rank_users(data)


@needs_official
def test_runner_ranking_is_bench_coldstarts(exported):
    """mamex_run.rank_metrics gives bench/coldstart.py's ranking numbers on the same scores, ties included."""
    from bench.coldstart import ranking

    data, out, _ = exported
    rng = np.random.default_rng(1)
    table = np.round(rng.random((943, 1682)), 1)  # coarse scores: many ties, so the tie-break is compared too

    class TableModel:
        def predict(self, frame, **_):
            return {"click": table[frame["user_id"].astype(int) - 1, frame["movie_id"].astype(int) - 1][:, None]}

    users = mamex_export.rank_users(data)
    expected = ranking(TableModel(), data, users, list(mamex_run.KS))
    cold_items = np.sort(np.load(os.path.join(out, "cold_item_index.npy")))
    test = {}
    for uid, item in read_lines(os.path.join(out, "test.txt")):
        test.setdefault(uid, set()).add(item)
    uids = [int(u) - 1 for u in users if int(u) - 1 in test]
    got = mamex_run.rank_metrics(table[np.ix_(uids, cold_items)], cold_items, [test[u] for u in uids])
    assert got == pytest.approx(expected)


@needs_official
def test_runner_names_a_missing_official_checkout(tmp_path, capsys):
    with pytest.raises(SystemExit):
        mamex_run.main(["--official", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert "--official" in err and "has no model.py / session.py" in err


def test_warm_sampler_draws_negatives_from_training_items_only():
    """--negatives warm: no negative is an item absent from the training data or a positive of its user.

    A dataset shaped like loader.py's Loader4MM (train_data, allPos, trainItem, n_user, m_item): 12 items, of
    which 0-4 are in the training data and 5-11 are cold (never a positive); user 0 rated 0, 1 and 2, so its
    only admissible negatives are 3 and 4. The official PairSample (any of the 12 items) fails this test.
    """
    train = defaultdict(list, {0: [0, 1, 2], 1: [3], 2: [4, 0], 3: []})
    dataset = SimpleNamespace(train_data=train, allPos=train, trainItem={i for items in train.values() for i in items},
                              n_user=5, m_item=12)
    assert dataset.trainItem == set(range(5))
    np.random.seed(0)
    drawn = defaultdict(set)
    for _ in range(300):
        rows = mamex_run.warm_pair_sample(dataset)
        # the official sampler's rows: one per training pair, in the loader's order; user 3 has none
        assert rows.shape == (6, 5)
        assert [tuple(r) for r in rows[:, :2]] == [(0, 0), (0, 1), (0, 2), (1, 3), (2, 4), (2, 0)]
        assert (rows[:, 3] < dataset.n_user).all() and (rows[:, 4] < dataset.m_item).all()
        for user, _, negative in rows[:, :3]:
            assert negative in dataset.trainItem, f"negative {negative} is not in the training data"
            assert negative not in train[user], f"negative {negative} is a positive of user {user}"
            drawn[int(user)].add(int(negative))
    # every admissible warm item is drawn (a uniform draw over the warm items, not a fixed one)
    assert drawn == {0: {3, 4}, 1: {0, 1, 2, 4}, 2: {1, 2, 3}}
