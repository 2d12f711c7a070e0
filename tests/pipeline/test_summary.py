"""pipeline.summary: a run's summary prints and serialises whatever TFMA reported, NaN included."""

import json

from pipeline.summary import ComponentRun, RunSummary


def _summary(bce: float) -> RunSummary:
    return RunSummary(pipeline_name="p", run_id="r", components=[ComponentRun("Trainer", "done", 12.5, {})],
                      metrics={"never_married": {"auc": 0.9945, "binary_crossentropy": bce, "calibration": 0.9942}},
                      blessed=True, pushed_to="/serving/1")


def test_a_nan_metric_is_printed_and_written_as_null():
    # TFMA's BinaryCrossEntropy is NaN once a prediction is exactly 1.0 (0 * log 0); the full census
    # demo hit it and the summary crashed formatting the string "NaN" TFMA returned.
    summary = _summary(float("nan"))
    text = summary.format()
    assert "eval never_married: auc 0.9945, binary_crossentropy nan, calibration 0.9942" in text
    data = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert data["metrics"]["never_married"] == {"auc": 0.9945, "binary_crossentropy": None, "calibration": 0.9942}


def test_finite_metrics_pass_through():
    data = _summary(0.0906).to_dict()
    assert data["metrics"]["never_married"]["binary_crossentropy"] == 0.0906
    assert data["components"][0] == {"component": "Trainer", "state": "done", "seconds": 12.5, "outputs": {}}
