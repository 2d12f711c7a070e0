"""TrainingRun: one set of defaults, the build (weighting, compile, warm start), the fit and its report."""

import dataclasses
import json

import numpy as np
import pytest

from tfmtl._keras import keras
from tfmtl.datasets import synthetic
from tfmtl.models.base import DEFAULT_BATCH_SIZE
from tfmtl.training import (
    MultiObjectiveModel,
    TrainingReport,
    TrainingRun,
    WeightAveraging,
    convergence_callbacks,
    grown_spec,
)
from tfmtl.training.averaging import DEFAULT_DECAY
from tfmtl.training.convergence import DEFAULT_LR_PATIENCE, DEFAULT_MONITOR, DEFAULT_PATIENCE

SHORT = {"epochs": 3, "patience": 1, "lr_patience": 0}
SMALL = {"num_experts": 2, "expert_units": [8], "tower_units": [4]}


@pytest.fixture(scope="module")
def frames():
    df, spec = synthetic.multitask_frame(600, seed=3)
    return df.iloc[:400], df.iloc[400:500], df.iloc[500:], spec


def test_the_defaults_are_the_convergence_callbacks_and_the_model_fit_defaults():
    run = TrainingRun()
    assert (run.patience, run.lr_patience, run.weight_averaging, run.monitor) == (
        DEFAULT_PATIENCE, DEFAULT_LR_PATIENCE, DEFAULT_DECAY, DEFAULT_MONITOR)
    assert run.batch_size == DEFAULT_BATCH_SIZE and run.epochs == 30 and run.learning_rate == 1e-3
    assert [type(c) for c in run.callbacks()] == [type(c) for c in convergence_callbacks()]
    # Plain data: a run goes through JSON (the TFX Trainer's custom_config) and comes back equal.
    assert TrainingRun(**json.loads(json.dumps(dataclasses.asdict(run)))) == run


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "nope"}, "nope"),
    ({"epochs": 0}, "epochs and batch_size must be >= 1, got 0, 128"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"patience": -1}, "patience must be >= 0, got -1"),
    ({"monitor": "auc"}, r"monitor must be one of \('val_auc', 'val_loss'\), got 'auc'"),
    ({"patience": 0}, "lr_patience acts with early stopping: with patience 0 it must be 0, got 1"),
    ({"patience": 2, "lr_patience": 2}, r"lr_patience must be 0 \(fixed rate\) or between 1 and patience - 1 \(1\)"),
    ({"weighting": "bogus"}, "weighting must be one of"),
    ({"weight_averaging": 1.5}, r"averaging must be 0 or None \(off\) or a decay in \(0, 1\), got 1.5"),
])
def test_a_bad_run_is_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingRun(**kwargs)


def test_patience_zero_runs_every_epoch_and_keeps_the_last(frames):
    train, validation, _, spec = frames
    run = TrainingRun("shared_bottom", epochs=2, patience=0, lr_patience=0, weight_averaging=0)
    assert run.callbacks() == []
    report = run.fit(run.build(spec), train, validation, verbose=0)
    assert report.epochs_run == report.best_epoch == 2


def test_fit_stops_on_the_monitor_and_reports_the_kept_epoch_evaluated(frames):
    train, validation, _, spec = frames
    run = TrainingRun("mmoe", SMALL, **SHORT, weight_averaging=0)
    model = run.build(spec)
    report = run.fit(model, train, validation, verbose=0)
    assert isinstance(report, TrainingReport)
    aucs = report.history["val_auc"]
    assert 1 <= report.epochs_run == len(aucs) <= 3
    assert report.best_epoch == int(np.argmax(aucs)) + 1
    # The kept weights are the best epoch's: evaluating them gives that epoch's validation numbers.
    assert report.validation["task_a_auc"] == pytest.approx(report.history["val_task_a_auc"][report.best_epoch - 1],
                                                          abs=2e-3)
    assert report.examples == len(train) * report.epochs_run and report.examples_per_second > 0
    assert report.warm_start is None
    assert json.loads(json.dumps(report.to_dict()))["best_epoch"] == report.best_epoch


def test_build_seeds_compiles_and_weights(frames):
    _, _, _, spec = frames
    run = TrainingRun("shared_bottom", seed=7, learning_rate=0.01, weighting="uncertainty")
    first, second = run.build(spec), run.build(spec)
    assert isinstance(first, MultiObjectiveModel) and float(first.optimizer.learning_rate) == pytest.approx(0.01)
    for a, b in zip(first.get_weights(), second.get_weights()):  # the same seed: the same initial weights
        np.testing.assert_array_equal(a, b)
    assert "uncertainty loss weighting" in run.describe(first)


def test_output_labels_are_known_before_the_model_is_built(frames):
    _, _, _, spec = frames
    assert TrainingRun("mmoe").output_labels(spec) == {"task_a": "task_a", "task_b": "task_b"}
    assert TrainingRun("esmm", tasks=["task_a", "task_b"]).output_labels(spec) == {"ctr": "task_a",
                                                                                  "ctcvr": "task_b"}
    with pytest.raises(ValueError, match="esmm: needs tasks=\\[click, conversion\\]"):
        TrainingRun("esmm", tasks=["task_a"]).output_labels(spec)


def test_warm_start_carries_the_trained_weights_and_reports_new_rows(frames, tmp_path):
    train, validation, test, spec = frames
    first = TrainingRun("shared_bottom", **SHORT)
    trained = first.build(spec)
    first.fit(trained, train, validation, verbose=0, evaluate=False)
    path = str(tmp_path / "first.keras")
    trained.save(path)
    # The next span: one new colour; the grown spec keeps the known colours' ids.
    nxt = test.copy()
    nxt.loc[nxt.index[:20], "color"] = "white"
    grown = grown_spec(spec, nxt)
    assert grown.feature("color").vocabulary[-1] == "white"
    warm = dataclasses.replace(first, warm_start=path)
    model = warm.build(grown)
    known = test[test["color"] != "white"].iloc[:50]
    np.testing.assert_allclose(model.predict(known, verbose=0)["task_a"], trained.predict(known, verbose=0)["task_a"],
                               atol=1e-6)
    report = warm.fit(model, nxt, validation, verbose=0, evaluate=False)
    assert report.warm_start.new["color"] == 1 and report.warm_start.carried["color"] == len(
        spec.feature("color").vocabulary) + 1  # the known values and the OOV row
    assert "warm-started from" in warm.describe(model)


def test_a_dataframe_is_batched_by_the_run_and_a_dataset_as_it_comes(frames):
    train, validation, _, spec = frames
    run = TrainingRun("shared_bottom", epochs=1, patience=0, lr_patience=0, batch_size=100)
    model = run.build(spec)
    steps = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
    run.fit(model, train, validation, callbacks=[counter], verbose=0, evaluate=False)
    assert len(steps) == 4  # 400 rows at 100
    assert isinstance(TrainingRun(weight_averaging=0.9, patience=0, lr_patience=0).callbacks()[0], WeightAveraging)
