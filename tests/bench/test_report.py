"""bench/_report.py: the one atomic-write helper of the benchmarks."""

import os

import pytest

from bench import _report


def test_write_json_and_text_leave_only_the_result(tmp_path):
    _report.write_json(str(tmp_path / "r.json"), {"auc": 0.5})
    _report.write_atomically(str(tmp_path / "sub" / "r.md"), "| a |\n")
    assert (tmp_path / "r.json").read_text() == '{\n "auc": 0.5\n}'
    assert (tmp_path / "sub" / "r.md").read_text() == "| a |\n"
    assert sorted(os.listdir(tmp_path)) == ["r.json", "sub"]
    assert oct((tmp_path / "r.json").stat().st_mode & 0o777) == "0o644"


def test_a_failed_write_keeps_the_old_result_and_no_temp_file(tmp_path):
    path = tmp_path / "r.png"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), _report.atomic_path(str(path)) as tmp:
        assert tmp.endswith(".tmp.png")  # the extension stays last: matplotlib picks the format from it
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["r.png"]


def test_appended_continues_a_run_with_the_same_settings_only(tmp_path):
    path = str(tmp_path / "r.json")
    _report.write_json(path, {"config": {"seeds": [0], "epochs": 30, "out": "a", "variants": ["x"]},
                              "runs": {"x": {"0": {"auc": 0.6}}}})
    fresh = {"config": {"seeds": [1, 2], "epochs": 30, "out": "b", "variants": ["x", "y"]}, "runs": {}}
    continued = _report.appended(path, fresh, [1, 2])
    assert continued["runs"] == {"x": {"0": {"auc": 0.6}}} and continued["config"]["seeds"] == [0, 1, 2]
    fresh["config"]["epochs"] = 3
    with pytest.raises(SystemExit, match="epochs 30 there, 3 now"):
        _report.appended(path, fresh, [1])
