"""bench/paired_auc.py: the report of DeLong's paired test (the test itself: test_stats.py)."""

from bench import paired_auc


def test_the_paired_report_places_the_census_bars_in_standard_errors():
    row = {"dataset": "census", "task": "income_50k", "test_rows": 1000, "positives": 60, "tfmtl_seed": 0,
           "lightgbm_seed": 1, "auc_a": 0.955, "se_a": 0.002, "auc_b": 0.957, "se_b": 0.002,
           "difference": -0.002, "ci_low": -0.004, "ci_high": 0.0, "p": 0.05}
    text = paired_auc.markdown({"meta": {"command": "python -m bench.paired_auc", "started": "2026-12-06 12:00",
                                         "cpu_count": 2, "load_start": 0.5}, "rows": [row]})
    assert "| census | income_50k | 1,000 (60) | 0.9550 ± 0.0020 (0) | 0.9570 ± 0.0020 (1) | -0.0020 |" in text
    # (0.957 - 0.955) / 0.002 = +1.00 standard errors; never married has no row, so no line.
    assert "- income_50k: bar 0.957, tfmtl 0.9550 ± 0.0020: the bar is +1.00 standard errors away" in text
    assert "never_married: bar" not in text


def test_a_standard_error_under_a_thousandth_is_shown_with_five_decimals():
    row = {"dataset": "census", "task": "never_married", "test_rows": 10, "positives": 4, "tfmtl_seed": 0,
           "lightgbm_seed": 0, "auc_a": 0.99472, "se_a": 0.00018, "auc_b": 0.99469, "se_b": 0.00018,
           "difference": 0.00003, "ci_low": -0.00005, "ci_high": 0.00011, "p": 0.47}
    text = paired_auc.markdown({"meta": {"command": "c", "started": "s", "cpu_count": 2, "load_start": 0.5},
                                "rows": [row]})
    assert "| 0.99472 ± 0.00018 (0) | 0.99469 ± 0.00018 (0) | +0.00003 | [-0.00005, +0.00011] | 0.47 |" in text
    assert "bar 0.9948, tfmtl 0.99472 ± 0.00018: the bar is +0.44 standard errors away" in text
