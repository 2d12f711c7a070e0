"""HyperparameterSearch: the space's checks, how values reach the run, and a KerasTuner search on census rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tfmtl.training import TrainingRun
from tfmtl.training.tuning import HyperparameterSearch, SearchSpaceError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPACE = {"num_experts": {"values": [2, 4]}, "expert_units": {"values": [[8], [16, 8]]},
         "learning_rate": {"min": 1e-3, "max": 3e-2, "sampling": "log"}, "patience": {"min": 1, "max": 3}}


def test_values_replace_run_fields_and_merge_into_model_kwargs():
    run = TrainingRun("mmoe", model_kwargs={"tower_units": [4], "num_experts": 8})
    tuned = HyperparameterSearch(SPACE).apply(run, {"num_experts": 2, "expert_units": [8], "learning_rate": 0.01,
                                                    "patience": 2})
    assert tuned.learning_rate == 0.01 and tuned.patience == 2
    assert tuned.model_kwargs == {"tower_units": [4], "num_experts": 2, "expert_units": [8]}
    assert run.model_kwargs["num_experts"] == 8  # the run itself is unchanged


def test_decode_drops_the_tuners_own_entries_and_reads_list_choices_back():
    search = HyperparameterSearch(SPACE)
    values = {"num_experts": 4, "expert_units": "[16, 8]", "learning_rate": 0.002, "patience": 1,
              "tuner/trial_id": "0003"}
    assert search.decode(values) == {"num_experts": 4, "expert_units": [16, 8], "learning_rate": 0.002,
                                     "patience": 1}
    with pytest.raises(SearchSpaceError, match=r"lack \['patience'\]"):
        search.decode({"num_experts": 4, "expert_units": "[8]", "learning_rate": 0.002})


def test_config_round_trips_through_json():
    search = HyperparameterSearch(SPACE, max_trials=3, algorithm="bayesian", seed=7)
    again = HyperparameterSearch.from_config(json.loads(json.dumps(search.get_config())))
    assert again == search and again.space["patience"]["sampling"] == "linear"


@pytest.mark.parametrize("space, message", [
    ({}, "non-empty mapping"),
    ({"seed": {"values": [0, 1]}}, "entry 'seed': 'seed' is fixed"),
    ({"model_kwargs": {"values": [{}]}}, "'model_kwargs' is fixed"),
    ({"lr": 0.01}, "entry 'lr' must be an object"),
    ({"units": {"values": []}}, "entry 'units': 'values' must be a non-empty list"),
    ({"units": {"values": [[8], [8]]}}, "entry 'units': 'values' repeat a value"),
    ({"units": {"values": [1], "min": 0}}, "a choice takes only 'values'"),
    ({"rate": {"min": 0.1}}, "entry 'rate' needs 'values', or 'min' and 'max'"),
    ({"rate": {"min": 0.1, "max": 0.1}}, "'min' must be below 'max'"),
    ({"rate": {"min": "a", "max": 1}}, "must be finite numbers"),
    ({"rate": {"min": 0.0, "max": 1.0, "sampling": "log"}}, "log sampling needs 'min' > 0"),
    ({"rate": {"min": 0.1, "max": 1.0, "sampling": "exp"}}, "'sampling' must be one of"),
    ({"rate": {"min": 0.1, "max": 1.0, "step": -1}}, "'step' must be > 0"),
])
def test_bad_space_is_refused_naming_the_entry(space, message):
    with pytest.raises(SearchSpaceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        HyperparameterSearch(space)


def test_bad_budget_and_algorithm_are_refused():
    with pytest.raises(SearchSpaceError, match="max_trials must be an integer >= 1, got 0"):
        HyperparameterSearch(SPACE, max_trials=0)
    with pytest.raises(SearchSpaceError, match="algorithm must be one of"):
        HyperparameterSearch(SPACE, algorithm="grid")
    with pytest.raises(SearchSpaceError, match=r"values \['dropout'\] are not in the search space"):
        HyperparameterSearch(SPACE).apply(TrainingRun(), {"dropout": 0.1})


SEARCH = textwrap.dedent("""
    import json, sys
    import keras_tuner  # imported first on Keras 3, as TFX's Tuner executor does
    from tfmtl.datasets.census import load_census
    from tfmtl.training import TrainingRun
    from tfmtl.training.tuning import HyperparameterSearch

    splits = load_census(nrows=1500)
    run = TrainingRun("mmoe", model_kwargs={"tower_units": [4]}, epochs=3, patience=1, lr_patience=0,
                      batch_size=256)
    search = HyperparameterSearch({"num_experts": {"values": [2, 3]}, "expert_units": {"values": [[8], [16, 8]]},
                                   "learning_rate": {"min": 1e-3, "max": 3e-2, "sampling": "log"}}, max_trials=2)
    tuner = search.tuner(run, splits.spec, sys.argv[1], replace_keras_3=True)
    tuner.search(splits.train, validation_data=splits.validation, verbose=0)
    trials = tuner.oracle.get_best_trials(5)
    best = search.decode(tuner.get_best_hyperparameters()[0].values)
    print(json.dumps({"scores": [t.score for t in trials], "best": best,
                      "values": [search.decode(t.hyperparameters.values) for t in trials],
                      "model": type(tuner.get_best_models(1)[0]).__name__,
                      "backend": sys.modules["keras_tuner.src.backend.keras"].__name__}))
""")


def test_search_over_census_rows_after_keras_tuner_was_imported_on_keras_3(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SEARCH, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # KerasTuner's Keras module is now tf_keras (the earlier Keras 3 import was dropped), and it took an MMoE.
    assert result["model"] == "MMoE" and result["backend"] == "tf_keras"
    assert len(result["scores"]) == 2 and all(0.5 < score <= 1.0 for score in result["scores"])
    assert result["scores"] == sorted(result["scores"], reverse=True)  # val_auc: higher is better
    assert result["best"] == result["values"][0]
    assert all(value["expert_units"] in ([8], [16, 8]) for value in result["values"])
    assert all(1e-3 <= value["learning_rate"] <= 3e-2 for value in result["values"])
