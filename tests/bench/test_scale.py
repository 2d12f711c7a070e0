"""bench/scale.py: data generation, the child measurement and the report at a tiny size."""

import json

import pandas as pd

from bench import scale


def test_impressions_are_deterministic_with_a_quarter_distinct_users():
    a = scale.impressions(4000, 0, 4000, seed=0)
    pd.testing.assert_frame_equal(a, scale.impressions(4000, 0, 4000, seed=0))
    assert a["user_id"].astype(int).max() < 1000  # users = rows / 4
    assert a["item_id"].value_counts().index[0] == "0"  # Zipf: rank 0 is the most popular
    assert set(a["click"]) == {0, 1}


def test_children_measure_both_paths_and_the_report_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "FILE_ROWS", 1500)
    monkeypatch.setattr(scale, "ROW_GROUP_ROWS", 500)
    files = scale.write_data(3000, str(tmp_path / "data"))
    assert len(files) == 2
    assert len(scale.write_tfrecords(files)) == 2
    spec_path = str(tmp_path / "spec.json")
    scale.infer_spec(files, spec_path)
    rows = [scale.child(kind, str(tmp_path / "data"), spec_path, max_steps=2) for kind in scale.PATHS]
    assert [(r["path"], r["rows"], r["steps"], r["timed_rows"]) for r in rows] == [
        ("dataframe", 3000, 2, 2048), ("parquet", 3000, 2, 2048), ("tfrecord", 3000, 2, 2048)]
    assert all(r["extrapolated"] and r["examples_per_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    results = {"config": {"rows": [3000], "paths": list(scale.PATHS), "batch_size": scale.BATCH_SIZE,
                          "units": list(scale.UNITS), "max_steps": 2, "load": 1.0}, "rows": rows}
    out = str(tmp_path / "scale")
    scale._report.save_report(out, results, scale.markdown(results, out + ".png"),
                              lambda png: scale.plot(results, png))
    assert json.load(open(out + ".json"))["rows"][1]["path"] == "parquet"
    report = open(out + ".md").read()
    assert "| 3,000 | parquet |" in report and "| 3,000 | tfrecord |" in report
    assert "Streamed examples/s against the DataFrame path's" in report and "tfrecord " in report


def test_repeats_are_summarised_by_medians_and_ratios_paired_within_a_repeat():
    def row(path, repeat, speed, rss):
        return {"rows": 1000, "path": path, "repeat": repeat, "examples_per_s": speed, "epoch_seconds": 1000 / speed,
                "extrapolated": False, "peak_rss_mib": rss, "full_stream_seconds": None if path == "dataframe" else 1.0}
    results = {"config": {"rows": [1000], "paths": ["dataframe", "parquet"], "repeats": 3, "batch_size": 1024,
                          "units": [64, 32], "max_steps": 2, "load": 0.0},
               "rows": [row("dataframe", 0, 100.0, 10), row("parquet", 0, 90.0, 8),
                        row("parquet", 1, 130.0, 9), row("dataframe", 1, 100.0, 11),
                        row("dataframe", 2, 50.0, 12), row("parquet", 2, 60.0, 7)]}
    summary = {r["path"]: r for r in scale.medians(results)}
    assert summary["dataframe"]["examples_per_s"] == 100.0 and summary["dataframe"]["runs"] == 3
    assert summary["parquet"]["examples_per_s"] == 90.0 and summary["parquet"]["examples_per_s_range"] == (60.0, 130.0)
    assert summary["parquet"]["peak_rss_mib"] == 8.0
    # paired per repeat: 0.9, 1.3, 1.2 -> median 1.2, whereas the ratio of the medians would be 0.9
    assert scale.paired_ratios(results) == {(1000, "parquet"): [0.9, 1.3, 1.2]}
    report = scale.markdown(results, "x.png")
    assert "parquet 1.20x at 1,000 rows (range 0.90-1.30, 3 pairs)" in report
    assert "| 1,000 | parquet | 90 | 60-130 |" in report
