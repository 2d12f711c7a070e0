"""bench/spans.py: the three strategies' code path on a small synthetic rating log."""

import numpy as np
import pandas as pd
import pytest

from bench import spans


def _ratings(n=900, seed=0):
    rng = np.random.default_rng(seed)
    # Users and movies arrive over time, as in the real log: later spans bring new ids.
    order = np.arange(n)
    users = (order // 30 + rng.integers(0, 3, n)).astype(str)
    movies = (order // 45 + rng.integers(0, 5, n)).astype(str)
    return pd.DataFrame({"user_id": users, "movie_id": movies, "rating": rng.integers(1, 6, n),
                         "timestamp": order, "age": rng.integers(18, 60, n).astype(float),
                         "gender": rng.choice(["F", "M"], n), "occupation": rng.choice(["a", "b", "c"], n),
                         "release_year": rng.integers(1960, 1998, n).astype(float)}).assign(
        like=lambda df: (df["rating"] >= 4).astype(np.int64))


def test_cut_spans_is_time_ordered_and_complete():
    df = _ratings(10)
    parts = spans.cut_spans(df, 3)
    assert [len(p) for p in parts] == [3, 4, 3]
    assert pd.concat(parts)["timestamp"].tolist() == list(range(10))
    with pytest.raises(ValueError, match="spans must be in"):
        spans.cut_spans(df, 1)


def test_run_reports_every_strategy_per_span(monkeypatch, tmp_path):
    monkeypatch.setattr(spans, "rating_frame", lambda rows=None: _ratings())
    results = spans.run(spans.Setting(spans=3, epochs=1, seeds=(0,)))
    rows = results["rows"]
    assert [(r["trained_through_span"], r["strategy"]) for r in rows] == [
        (r, s) for r in (0, 1) for s in spans.STRATEGIES]
    first = rows[:3]  # round 0: one shared model, so one score
    assert len({(r["auc"], r["gauc"]) for r in first}) == 1
    by = {(r["trained_through_span"], r["strategy"]): r for r in rows}
    # carry and scratch know the users of spans 0..1, fixed only span 0's.
    assert by[1, "carry"]["vocabulary"]["user_id"] > by[1, "fixed"]["vocabulary"]["user_id"]
    assert by[1, "carry"]["unknown_users"] < by[1, "fixed"]["unknown_users"]
    assert all(0 <= r["gauc"] <= 1 and 0 <= r["auc"] <= 1 and r["train_seconds"] > 0 for r in rows)
    text = spans.markdown(results, "python -m bench.spans --spans 3")
    assert "| strategy | AUC | GAUC | seconds per span |" in text and "| carry |" in text
    assert set(results["summary"]) == set(spans.STRATEGIES)
    assert results["summary"]["carry"]["gauc"][0] == pytest.approx(by[1, "carry"]["gauc"])  # one later round
    spans.plot(results, str(tmp_path / "spans.png"))
    assert (tmp_path / "spans.png").stat().st_size > 0
