"""The verdict lines of bench/official/{m3oe,morec}_report.py follow the numbers (issue 33)."""

from bench.official import m3oe_report, morec_report


def _m3oe(official_mean: float) -> dict:
    models = {"mmoe": {"tfmtl": {"mean": 0.798, "std": 0.001}},
              "m3oe_paper": {"tfmtl": {"mean": 0.793, "std": 0.001},
                             "official": {"mean": official_mean, "std": 0.0005}}}
    return {"models": models, "ordering": {"tfmtl": ["mmoe", "m3oe_paper"]}}


def test_m3oe_verdict_stands_when_the_official_code_is_below_the_best_baseline():
    text = m3oe_report.verdict(_m3oe(0.7818))
    assert "below 2 of tfmtl's 2 models" in text and "0.0162 below the best" in text
    assert "negative result stands" in text


def test_m3oe_verdict_flips_when_the_official_code_beats_every_tfmtl_model():
    text = m3oe_report.verdict(_m3oe(0.805))
    assert "below 0 of tfmtl's 2 models" in text and "does not stand" in text


def _morec(official_diffs: list[float], ours: list[float]) -> dict:
    def stats(values):
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        return {"per_seed": values, "mean": mean, "std": std}
    return {"official": {"summary": {"best_of_all": {"morec_minus_static_imp": stats(official_diffs)}}},
            "tfmtl": {"morec_mf": {"at_official_preference": None,
                                   "best_of_all": {"morec_minus_static_imp": stats(ours)}}}}


def test_morec_verdict_agrees_when_neither_pid_beats_static():
    text = morec_report.verdict(_morec([0.003, -0.078], [0.0, 0.001, -0.001]))
    assert text.startswith("Official PID - static -3.8 +- 5.7 points of Imp (2 seeds, paired)")
    assert "does not beat its static weights either" in text and "Provisional" in text


def test_morec_verdict_names_a_tfmtl_difference_when_the_official_pid_wins():
    text = morec_report.verdict(_morec([0.20, 0.21, 0.22], [0.0, 0.001, -0.001]))
    assert "beats its static weights where tfmtl's does not" in text and "Provisional" not in text


def test_seed_gap_is_twice_the_larger_spread_and_a_missing_spread_counts_as_zero():
    from bench.official import seed_gap
    gap = seed_gap({"mean": 0.78, "std": 0.001}, {"mean": 0.79, "std": 0.004})
    assert gap["two_seed_spreads"] == 0.008 and gap["exceeds"] and abs(gap["official_minus_tfmtl"] + 0.01) < 1e-12
    assert seed_gap({"mean": 0.5, "std": None}, {"mean": 0.49, "std": 0.006}) == {
        "official_minus_tfmtl": 0.5 - 0.49, "two_seed_spreads": 0.012, "exceeds": False}
