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


def test_named_tfmtl_settings_and_official_variants_get_their_own_rows(tmp_path):
    side = lambda mean, std=0.001: {"mean": mean, "std": std, "metric": "Imp"}  # noqa: E731
    paper = {"paper": "morec", "official_repo": "o/r", "official_commit": "b" * 40, "seeds": [0, 1],
             "models": {"PID": {"official": side(0.57, 0.06), "morec_mf": side(0.23, 0.29),
                                "official_warm": side(0.30)}},
             "ordering": {"official": ["PID"], "by_metric": {"hit": ["PID"]}},
             "gaps": [{"model": "PID", "against": "morec_mf", "official_minus_tfmtl": 0.34,
                       "two_seed_spreads": 0.58, "exceeds": False, "explained_by": ""}]}
    (tmp_path / "official_morec.json").write_text(json.dumps(paper))
    report.main(["--results", str(tmp_path), "--out", str(tmp_path / "official")])
    text = (tmp_path / "official.md").read_text()
    assert "| PID (morec_mf) | 0.5700 +- 0.0600 | 0.2300 +- 0.2900 | +0.3400 | no |" in text
    # no gap in the file for the variant: two seed spreads computed here, 0.07 > 2 x 0.29 is false
    assert "| PID (official_warm, morec_mf) | 0.3000 +- 0.0010 | 0.2300 +- 0.2900 | +0.0700 | no |" in text
    assert "- Ordering, official: PID" in text and "by_metric" not in text  # per-metric orderings stay per paper
    assert [m[0] for m in report.paired_models(paper)] == ["PID (morec_mf)", "PID (official_warm, morec_mf)"]
