"""TFX's Tuner before the Trainer: wiring, the Trainer applying the best trial, and one whole run (slow)."""

import glob
import json
import os

import pytest

from pipeline import trainer
from pipeline.cli import main
from pipeline.config import TrainingConfig, read_search, trainer_config
from pipeline.pipeline import create_pipeline
from tests.pipeline.conftest import SHORT_RUN_FLAGS, SMALL_MMOE
from tfmtl.training.tuning import HyperparameterSearch, SearchSpaceError

SPACE = {"num_experts": {"values": [2, 3]}, "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"}}


def test_the_tuner_feeds_the_trainers_hyperparameters(census_slice, tmp_path):
    search = HyperparameterSearch(SPACE, max_trials=2)
    pipeline = create_pipeline("tfmtl-mmoe", str(tmp_path / "root"), str(tmp_path / "data"), census_slice.spec,
                               str(tmp_path / "serving"), search=search)
    components = {c.id: c for c in pipeline.components}
    assert list(components).index("Tuner") == list(components).index("Transform") + 1
    assert components["Trainer"].inputs["hyperparameters"].producer_component_id == "Tuner"
    assert read_search(json.loads(components["Tuner"].exec_properties["custom_config"])) == search
    plain = create_pipeline("tfmtl-mmoe", str(tmp_path / "root"), str(tmp_path / "data"), census_slice.spec,
                            str(tmp_path / "serving"))
    assert "Tuner" not in {c.id for c in plain.components}


def test_the_trainer_applies_the_best_values_of_its_own_space(census_slice):
    search = HyperparameterSearch({**SPACE, "expert_units": {"values": [[8], [16, 8]]}})
    config = trainer_config(census_slice.spec, TrainingConfig(model_kwargs={"tower_units": [4]}), search=search)
    best = {"space": [], "values": {"num_experts": 3, "learning_rate": 0.004, "expert_units": "[16, 8]"}}
    values = trainer.tuned_values(read_search(config), best)
    assert values == {"num_experts": 3, "learning_rate": 0.004, "expert_units": [16, 8]}
    tuned = read_search(config).apply(TrainingConfig(model_kwargs={"tower_units": [4]}), values)
    assert tuned.learning_rate == 0.004 and tuned.model_kwargs == {"tower_units": [4], "num_experts": 3,
                                                                   "expert_units": [16, 8]}
    assert trainer.tuned_values(None, None) == {}
    with pytest.raises(ValueError, match="the Trainer got hyperparameters but its custom_config has no search space"):
        trainer.tuned_values(None, best)
    with pytest.raises(SearchSpaceError, match=r"lack \['expert_units'\]"):
        trainer.tuned_values(search, {"values": {"num_experts": 2, "learning_rate": 0.002}})


def test_a_bad_search_space_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    code = main(["run", "--rows", "50", "--run-dir", str(tmp_path / "run"), "--search", '{"seed": {"values": [1]}}'])
    assert code == 2
    assert "search space entry 'seed': 'seed' is fixed" in capsys.readouterr().err


def test_max_trials_without_a_search_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--rows", "50", "--run-dir", str(tmp_path / "run"), "--max-trials", "3"])
    assert exit_.value.code == 2
    assert "--max-trials is the number of Tuner trials: give --search too" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_with_the_tuner_trains_with_the_best_trial(tmp_path):
    run_dir = str(tmp_path / "run")
    summary_path = os.path.join(run_dir, "summary.json")
    code = main(["run", "--rows", "300", "--run-dir", run_dir, "--serving-dir", os.path.join(run_dir, "serving"),
                 "--model-kwargs", json.dumps({**SMALL_MMOE, "cross": None}), "--batch-size", "64",
                 "--beam-mode", "in_memory", "--json", summary_path, *SHORT_RUN_FLAGS,
                 "--search", json.dumps(SPACE), "--max-trials", "2"])
    with open(summary_path) as f:
        summary = json.load(f)
    states = {c["component"]: c["state"] for c in summary["components"]}
    assert code == 0 and states["Tuner"] == "done" and states["Trainer"] == "done", states
    [best_file] = glob.glob(os.path.join(run_dir, "**", "best_hyperparameters.txt"), recursive=True)
    with open(best_file) as f:
        best = json.load(f)["values"]
    [results_file] = glob.glob(os.path.join(run_dir, "**", "tuner_results.json"), recursive=True)
    with open(results_file) as f:
        assert len(json.load(f)) == 2  # both trials completed and scored
    [report_file] = glob.glob(os.path.join(run_dir, "**", trainer.REPORT_FILE), recursive=True)
    with open(report_file) as f:
        report = json.load(f)
    assert report["hyperparameters"] == best and best["num_experts"] in (2, 3)
    assert 1e-3 <= best["learning_rate"] <= 1e-2
