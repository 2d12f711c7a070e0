"""bench/sequence_features.py: the history is strictly in the past and unrated exposures take a user's rating time."""

import numpy as np
import pandas as pd
import pytest

from bench import sequence_features as sf
from tfmtl.datasets import movielens
from tfmtl.features import ListFeature


def _ratings():
    # user 1 rates movies 5, 6, 7, 8 at times 10, 20, 20, 30 (6 and 7 in the same second); user 2 rates 5 at 15.
    return pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "movie_id": [7, 5, 8, 6, 5], "rating": [4, 3, 5, 1, 2],
                         "timestamp": [20, 10, 30, 20, 15]})


def test_history_is_the_strict_past_last_first_and_capped():
    histories = sf.history_before(_ratings(), np.array([1, 1, 1, 1, 2, 2]), np.array([10, 20, 30, 31, 15, 16]),
                                  max_length=2)
    # time 10: nothing before; 20: only 5 (6 and 7 are the same second); 30: 5, 6, 7 -> last two;
    # 31: 6, 7, 8 -> 7, 8; user 2 at its own rating time: empty, one second later: its rating.
    assert histories == [[], ["5"], ["6", "7"], ["7", "8"], [], ["5"]]


def test_history_rejects_a_non_positive_length():
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        sf.history_before(_ratings(), np.array([1]), np.array([10]), max_length=0)


def test_unrated_exposures_take_a_rating_time_of_their_user():
    ratings = _ratings()
    pairs = sf.exposures_with_time(ratings, np.arange(1, 20), 1.0, np.random.default_rng(0))
    assert len(pairs) == 10 and (pairs["rating"] == 0).sum() == 5
    times = ratings.groupby("user_id")["timestamp"].apply(set)
    rated = set(zip(ratings["user_id"], ratings["movie_id"]))
    for row in pairs[pairs["rating"] == 0].itertuples():
        assert row.timestamp in times[row.user_id]
        assert (row.user_id, row.movie_id) not in rated


@pytest.mark.skipif(not movielens.is_available(), reason="MovieLens-100k not fetched")
def test_on_a_slice_of_movielens_every_history_item_was_rated_before_the_exposure():
    ratings = movielens.load_ratings()
    ratings = ratings[ratings["user_id"] <= 15]
    items = movielens.load_items()["movie_id"].to_numpy()
    pairs = sf.exposures_with_time(ratings, items, 1.0, np.random.default_rng(0))
    pairs["history"] = sf.history_before(ratings, pairs["user_id"].to_numpy(), pairs["timestamp"].to_numpy(), 20)
    rated_at = {(u, str(m)): t for u, m, t in zip(ratings["user_id"], ratings["movie_id"], ratings["timestamp"])}
    lengths = pairs["history"].map(len)
    assert lengths.max() == 20 and (lengths == 0).any()  # both the cap and the empty history occur
    for row in pairs.sample(60, random_state=0).itertuples():
        times = [rated_at[(row.user_id, m)] for m in row.history]
        assert all(t < row.timestamp for t in times)
        assert times == sorted(times)  # oldest first, so truncation keeps the most recent
        earlier = sum(t < row.timestamp for (u, _), t in rated_at.items() if u == row.user_id)
        assert len(row.history) == min(20, earlier)  # nothing of the strict past is missing
        assert str(row.movie_id) not in row.history  # the candidate itself is never in its own history


def test_feature_sets_share_the_item_table_and_din_keeps_the_sequence():
    df = pd.DataFrame({"user_id": ["1", "2", "1", "3"] * 5, "movie_id": ["5", "6", "7", "5"] * 5,
                       "gender": ["M", "F", "M", "F"] * 5, "occupation": ["a", "b", "a", "c"] * 5,
                       "zip_prefix": ["1", "2", "1", "3"] * 5, "age": [20.0, 30.0, 20.0, 40.0] * 5,
                       "release_year": [1990.0, 1995.0, 1980.0, 1990.0] * 5,
                       "genres": [["Drama"], ["Action", "Comedy", "Crime", "Drama", "War", "Western"], [],
                                  ["Drama"]] * 5,
                       "history": [["6"], [], ["5", "6"], ["8"]] * 5,
                       "click": [1, 0, 1, 0] * 5, "conversion": [1, 0, 0, 0] * 5,
                       **{c: [0, 1, 0, 1] * 5 for c in movielens.GENRE_COLUMNS}})
    base = sf.feature_spec(df, "base")
    assert not any(isinstance(f, ListFeature) for f in base.features)
    assert set(movielens.GENRE_COLUMNS) <= {f.name for f in base.features}
    for name, pooling in (("pooled", "mean"), ("din", None)):
        features = {f.name: f for f in sf.feature_spec(df, name).features}
        assert features["history"].shares == "movie_id" and features["history"].pooling == pooling
        assert features["genres"].max_length == 6 and features["genres"].pooling == "mean"
        assert not set(movielens.GENRE_COLUMNS) & set(features)
        assert "8" in features["movie_id"].vocabulary  # the shared table is fitted on the history too
    lists = {f.name: f for f in sf.feature_spec(df, "lists").features}
    assert "history" not in lists and lists["genres"].pooling == "mean"  # the genre encoding alone
    assert not set(movielens.GENRE_COLUMNS) & set(lists)
    renamed = df.rename(columns={"click": "like", "conversion": "love"})
    assert [label.column for label in sf.feature_spec(renamed, "pooled", labels=("like", "love")).labels] == [
        "like", "love"]
    with pytest.raises(ValueError, match="feature_set must be one of"):
        sf.feature_spec(df, "bst")
