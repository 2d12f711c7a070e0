"""choose_strategy("parameter_server"): which task builds the strategy and which serves, from TF_CONFIG.

The strategy itself is trained on a real local cluster in tests/training/test_sharded_tables.py
(slow); here the two entry points are replaced, so no server starts in the test process.
"""

import argparse
import json

import pytest
import tensorflow as tf

from pipeline import distribution
from pipeline.config import DISTRIBUTIONS, TrainingConfig

CLUSTER = {"chief": ["localhost:1"], "worker": ["localhost:2", "localhost:3"], "ps": ["localhost:4", "localhost:5"]}


def _tf_config(monkeypatch, task_type: str, index: int) -> None:
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": CLUSTER, "task": {"type": task_type, "index": index}}))


class _Calls(list):
    served: type  # the exception the replaced serve_task raises


@pytest.fixture
def calls(monkeypatch):
    """What choose_strategy handed to the sharding module: ``[(function name, resolver)]``."""
    made = _Calls()

    def build(resolver):
        made.append(("parameter_server_strategy", resolver))
        return "the strategy"

    class Served(Exception):
        pass

    def serve(resolver):
        made.append(("serve_task", resolver))
        raise Served  # the real one never returns

    monkeypatch.setattr(distribution, "parameter_server_strategy", build)
    monkeypatch.setattr(distribution, "serve_task", serve)
    made.served = Served
    return made


@pytest.mark.parametrize("kind", ["auto", "parameter_server"])
def test_the_chief_builds_the_strategy_from_tf_config(monkeypatch, calls, kind):
    _tf_config(monkeypatch, "chief", 0)
    assert distribution.cluster_tasks("ps") == 2 and distribution.cluster_workers() == 3
    assert distribution.choose_strategy(kind) == "the strategy"  # auto: ps tasks named, not MultiWorkerMirrored
    [(name, resolver)] = calls
    assert name == "parameter_server_strategy"
    assert resolver.cluster_spec().as_dict() == CLUSTER
    assert (resolver.task_type, resolver.task_id) == ("chief", 0)


@pytest.mark.parametrize("task_type, index", [("worker", 1), ("ps", 0)])
def test_worker_and_ps_tasks_serve(monkeypatch, calls, task_type, index):
    _tf_config(monkeypatch, task_type, index)
    with pytest.raises(calls.served):
        distribution.choose_strategy("parameter_server")
    [(name, resolver)] = calls
    assert name == "serve_task" and (resolver.task_type, resolver.task_id) == (task_type, index)


def test_the_trainer_and_the_cli_name_it():
    from pipeline import cli

    assert "parameter_server" in DISTRIBUTIONS
    assert TrainingConfig(distribution="parameter_server").distribution == "parameter_server"
    with pytest.raises(ValueError, match="distribution must be one of .*'parameter_server'"):
        TrainingConfig(distribution="ps")
    # Written out in the CLI, which must not import pipeline.config (TFX) to parse its flags.
    [commands] = [action for action in cli._parser()._actions if isinstance(action, argparse._SubParsersAction)]
    flags = [action for command in commands.choices.values() for action in command._actions
             if "--distribution" in action.option_strings]
    assert flags and all(tuple(flag.choices) == DISTRIBUTIONS for flag in flags)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_trainer_trains_and_exports_under_parameter_server_strategy(tmp_path):
    """run_fn as the Trainer executor calls it, as the chief of a local cluster (tests/pipeline/sharded_trainer.py):
    it trains with its tables sharded, and its serving export and .keras copy, loaded on one machine, agree."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    proc = subprocess.run([sys.executable, os.path.join(root, "tests", "pipeline", "sharded_trainer.py"),
                           str(tmp_path)], capture_output=True, text=True, env=env, cwd=root, timeout=560)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["report"] == {"strategy": "ParameterServerStrategy", "replicas": 1, "global_batch_size": 32}
    assert result["tasks"] == ["income_50k", "never_married"]
    assert result["max_difference"] < 1e-5  # the serving SavedModel predicts as the saved Keras copy
    assert 0.0 < result["prediction_range"][0] <= result["prediction_range"][1] < 1.0


def test_a_sharded_trainer_needs_step_counts(monkeypatch, transform_output, tmp_path):
    from pipeline import trainer
    from pipeline.config import trainer_config
    from tests.pipeline.conftest import SMALL_MMOE

    class Sharded(tf.distribute.ParameterServerStrategy):
        """Only its type is asked before the check: no cluster is built."""

    monkeypatch.setattr(trainer, "choose_strategy", lambda kind: object.__new__(Sharded))
    config = trainer_config(transform_output.spec, TrainingConfig("mmoe", SMALL_MMOE, distribution="parameter_server"))
    with pytest.raises(ValueError, match=r"distribution 'parameter_server' needs TrainArgs\(num_steps=...\) and "
                                         r"EvalArgs\(num_steps=...\)"):
        trainer.run_fn(transform_output.fn_args(config, str(tmp_path), train_steps=10))  # no eval steps
