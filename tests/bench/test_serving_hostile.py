"""bench/serving_hostile.py's code path, in a second: a real server, few connections, short scenarios."""

import json

from bench import serving_hostile


def test_short_run_writes_results_and_the_server_refuses_what_it_should(tmp_path):
    out = str(tmp_path / "hostile")
    assert serving_hostile.main(["--seconds", "0.5", "--silent", "10", "--slow", "2", "--header-timeout", "0.5",
                                 "--scenarios", "baseline", "silent", "huge_headers", "amplifying",
                                 "--out", out]) == 0
    report = json.loads((tmp_path / "hostile.json").read_text())
    by_name = {r["scenario"]: r for r in report["scenarios"]}
    assert list(by_name) == ["baseline", "silent", "huge_headers", "amplifying"]
    for r in report["scenarios"]:
        assert r["good"]["rest"]["errors"] == r["good"]["grpc"]["errors"] == 0
        assert r["good"]["rest"]["n"] > 0 and r["good"]["grpc"]["n"] > 0
    silent = by_name["silent"]["hostile"]["silent_rest"]
    assert silent["closed_by_server"] >= 10 and set(silent["answers"]) == {"408"}
    assert silent["lifetime_max_s"] < 0.5 + 1.0
    assert set(by_name["huge_headers"]["hostile"]["huge_headers"]["answers"]) == {"431"}
    assert set(by_name["amplifying"]["hostile"]["amplifying"]["answers"]) == {"INVALID_ARGUMENT"}
    assert report["summary"]["closed_within_timeout"]
    assert {s["scenario"] for s in report["samples"]} >= {"silent"} and report["samples"][0]["fds"] > 0
    assert "| silent |" in (tmp_path / "hostile.md").read_text()
    assert (tmp_path / "hostile.png").read_bytes()[:4] == b"\x89PNG"
