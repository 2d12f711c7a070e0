"""bench/multidomain.py: the history columns of the multi-domain frame are each rating's strict past."""

import pytest

from bench import multidomain
from tfmtl.datasets import movielens


@pytest.mark.skipif(not movielens.is_available(), reason="MovieLens-100k not fetched")
def test_history_of_a_rating_is_what_its_user_rated_strictly_before_it():
    df, _ = movielens.multidomain(seed=0)
    df = multidomain.with_history(df[df["user_id"].isin(["1", "2", "3"])].reset_index(drop=True), max_history=5)
    ratings = movielens.load_ratings()
    rated_at = {(str(u), str(m)): t for u, m, t in zip(ratings["user_id"], ratings["movie_id"], ratings["timestamp"])}
    assert df["timestamp"].notna().all()
    assert df["timestamp"].tolist() == [rated_at[(u, m)] for u, m in zip(df["user_id"], df["movie_id"])]
    lengths = df["history"].map(len)
    assert lengths.max() == 5 and (lengths == 0).any()
    for row in df.itertuples():
        assert all(rated_at[(row.user_id, m)] < row.timestamp for m in row.history)
        assert isinstance(row.genres, list) and all(isinstance(g, str) for g in row.genres)


def test_run_labels_name_the_feature_set():
    assert multidomain.label("mmoe") == "MMoE + domain feature"
    assert multidomain.label("star+din") == "STAR-style, din"
