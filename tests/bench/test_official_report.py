"""bench/official/report.py: the per-paper official results merged into one verdict table."""

import json

import pytest

from bench.official import report


def _paper(name: str, official: float, ours: float, **extra) -> dict:
    side = lambda mean: {"metric": "test AUC", "per_seed": [mean - 0.001, mean + 0.001], "mean": mean,  # noqa: E731
                         "std": 0.001}
    return {"paper": name, "official_repo": f"someone/{name}", "official_commit": "a" * 40, "seeds": [0, 1],
            "models": {"method": {"official": side(official), "tfmtl": side(ours)},
                       "baseline": {"official": None, "tfmtl": side(ours + 0.01)}},
            "ordering": {"tfmtl": ["baseline", "method"]},
            "gaps": [{"model": "method", "official_minus_tfmtl": official - ours, "two_seed_spreads": 0.002,
                      "exceeds": abs(official - ours) > 0.002, "explained_by": "the batch size"}], **extra}


def test_papers_are_merged_in_table_order_with_gaps_and_verdicts(tmp_path):
    (tmp_path / "official_morec.json").write_text(json.dumps(_paper("morec", 0.70, 0.70, verdict="agrees")))
    (tmp_path / "official_m3oe.json").write_text(json.dumps(_paper("m3oe", 0.78, 0.79)))
    report.main(["--results", str(tmp_path), "--out", str(tmp_path / "official")])
    text = (tmp_path / "official.md").read_text()
    assert text.index("## m3oe") < text.index("## morec")  # the papers' order, not the files'
    assert "| method | 0.7800 +- 0.0010 | 0.7900 +- 0.0010 | -0.0100 | yes |" in text
    assert "| baseline | - | 0.8000 +- 0.0010 |  |  |" in text
    assert "- Gap on method (-0.0100, two seed spreads 0.0020): the batch size" in text
    assert "**Verdict:** agrees" in text and "**Verdict:** not written yet." in text
    assert "| method | 0.7000 +- 0.0010 | 0.7000 +- 0.0010 | +0.0000 | no |" in text
    merged = json.loads((tmp_path / "official.json").read_text())
    assert list(merged["papers"]) == ["m3oe", "morec"]
    assert (tmp_path / "official.png").stat().st_size > 0


def test_a_file_that_is_not_a_paper_result_is_named(tmp_path):
    (tmp_path / "official_x.json").write_text("{}")
    with pytest.raises(ValueError, match="official_x.json: no 'models'"):
        report.load(str(tmp_path))
    with pytest.raises(SystemExit, match="no official_<paper>.json"):
        report.main(["--results", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
