"""Hyperparameter search over a :class:`~tfmtl.training.TrainingRun`, with KerasTuner.

A :class:`HyperparameterSearch` is plain data (JSON in a TFX ``custom_config``): a search space over
the run's fields (``learning_rate``, ``batch_size``, ``patience``, ...) and the model's keyword
arguments (any other name: ``num_experts``, ``expert_units``, ...), a trial budget and an algorithm.
Each trial is the run with the trial's values applied (:meth:`HyperparameterSearch.apply`), built and
fitted by :meth:`TrainingRun.build` and :meth:`TrainingRun.fit`: the same compile, convergence and
kept epoch as ``tfmtl train`` and the TFX Trainer, so a trial's score is the score the final run gets.
The TFX Tuner component runs the same search (:mod:`pipeline.tuner`) and hands the best values to the
Trainer.

A space entry is either ``{"values": [...]}`` (a choice; values may be lists or objects, e.g. layer
widths) or ``{"min": a, "max": b}`` with optional ``"step"`` and ``"sampling"`` (``"linear"`` or
``"log"``): integers when ``min``, ``max`` (and ``step``) are integers, else floats.

Example:

>>> from tfmtl.datasets import synthetic
>>> df, spec = synthetic.multitask_frame(400)
>>> run = TrainingRun("mmoe", epochs=2, patience=1, lr_patience=0)
>>> search = HyperparameterSearch({"num_experts": {"values": [2, 3]},
...                                "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"}}, max_trials=2)
>>> search.apply(run, {"num_experts": 3, "learning_rate": 0.005}).model_kwargs
{'num_experts': 3}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from tfmtl.features import FeatureSpec
from tfmtl.training.convergence import direction
from tfmtl.training.run import TrainingRun

ALGORITHMS = ("random", "bayesian")
DEFAULT_MAX_TRIALS = 10
DEFAULT_ALGORITHM = "random"
SAMPLINGS = ("linear", "log")
# What a trial may not change: which model and tasks the search is about, its seed, where it starts from.
_FIXED_FIELDS = ("model", "model_kwargs", "tasks", "seed", "warm_start", "weighting_args")
_RUN_FIELDS = tuple(field.name for field in dataclasses.fields(TrainingRun) if field.name not in _FIXED_FIELDS)
_SCALARS = (bool, int, float, str)


class SearchSpaceError(ValueError):
    """A search space entry that cannot be searched; the message names the entry."""


@dataclasses.dataclass(frozen=True)
class HyperparameterSearch:
    """A search space over a training run, its trial budget and its algorithm.

    Attributes:
      space: ``{name: {"values": [...]}}`` or ``{name: {"min", "max"[, "step"][, "sampling"]}}``; a name is
        a :class:`TrainingRun` field or else a keyword argument of the model.
      max_trials: trials to run (each one a whole run to convergence).
      algorithm: ``"random"`` (KerasTuner's RandomSearch) or ``"bayesian"`` (BayesianOptimization).
      seed: the search's own seed (which values the trials draw); the runs keep the run's ``seed``.
    """

    space: Mapping[str, Mapping[str, Any]]
    max_trials: int = DEFAULT_MAX_TRIALS
    algorithm: str = DEFAULT_ALGORITHM
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.space, Mapping) or not self.space:
            raise SearchSpaceError(f"search space must be a non-empty mapping of name -> entry, got {self.space!r}")
        object.__setattr__(self, "space", {name: _checked_entry(name, entry) for name, entry in self.space.items()})
        if not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise SearchSpaceError(f"max_trials must be an integer >= 1, got {self.max_trials!r}")
        if self.algorithm not in ALGORITHMS:
            raise SearchSpaceError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")

    def define(self, hp) -> dict[str, Any]:
        """Declares the space on KerasTuner's ``hp`` and returns this trial's values, decoded."""
        for name, entry in self.space.items():
            if "values" in entry:
                choices = entry["values"]
                if not all(isinstance(value, _SCALARS) for value in choices):
                    choices = [_encoded(value) for value in choices]  # KerasTuner chooses among scalars only
                hp.Choice(name, choices)
            elif isinstance(entry["min"], int) and isinstance(entry["max"], int) and \
                    isinstance(entry.get("step", 1), int):
                hp.Int(name, entry["min"], entry["max"], step=entry.get("step"), sampling=entry["sampling"])
            else:
                hp.Float(name, entry["min"], entry["max"], step=entry.get("step"), sampling=entry["sampling"])
        return self.decode(hp.values)

    def decode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The space's values from KerasTuner's ``hp.values`` (or a Tuner's best hyperparameters): choices
        among lists or objects decoded, the tuner's own entries (``tuner/...``) dropped."""
        missing = sorted(set(self.space) - set(values))
        if missing:
            raise SearchSpaceError(f"hyperparameter values lack {missing} of the search space (got "
                                   f"{sorted(values)}): were they found by a search over another space?")
        decoded = {}
        for name, entry in self.space.items():
            value = values[name]
            if "values" in entry and not all(isinstance(choice, _SCALARS) for choice in entry["values"]):
                value = json.loads(value)
            decoded[name] = value
        return decoded

    def apply(self, run: TrainingRun, values: Mapping[str, Any]) -> TrainingRun:
        """``run`` with ``values`` applied: run fields replaced, the rest merged into ``model_kwargs``."""
        unknown = sorted(set(values) - set(self.space))
        if unknown:
            raise SearchSpaceError(f"values {unknown} are not in the search space {sorted(self.space)}")
        fields = {name: value for name, value in values.items() if name in _RUN_FIELDS}
        model_kwargs = {name: value for name, value in values.items() if name not in _RUN_FIELDS}
        return dataclasses.replace(run, **fields, model_kwargs={**run.model_kwargs, **model_kwargs})

    def tuner(self, run: TrainingRun, spec: FeatureSpec, directory: str, *, project_name: str = "tfmtl",
              encoded_inputs: bool = False, overwrite: bool = False, replace_keras_3: bool = False):
        """A KerasTuner tuner whose trials build and fit ``run`` with the trial's values.

        Its ``search(x, validation_data=...)`` takes what :meth:`TrainingRun.fit` takes (DataFrames, or
        batched datasets with ``steps_per_epoch``/``validation_steps``); the objective is the run's
        ``monitor`` at the kept epoch. ``replace_keras_3``: see :func:`tfmtl.compat.keras_tuner`.
        """
        from tfmtl.compat import keras_tuner

        kt = keras_tuner(replace_keras_3=replace_keras_3)
        objective = kt.Objective(run.monitor, direction=direction(run.monitor))
        hypermodel = _hypermodel_class(kt)(self, run, spec, encoded_inputs)
        common = {"objective": objective, "max_trials": self.max_trials, "seed": self.seed,
                  "directory": directory, "project_name": project_name, "overwrite": overwrite}
        if self.algorithm == "bayesian":
            return kt.BayesianOptimization(hypermodel, **common)
        return kt.RandomSearch(hypermodel, **common)

    def get_config(self) -> dict[str, Any]:
        return {"space": {name: dict(entry) for name, entry in self.space.items()}, "max_trials": self.max_trials,
                "algorithm": self.algorithm, "seed": self.seed}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HyperparameterSearch:
        return cls(**config)


def _checked_entry(name: str, entry: Any) -> dict[str, Any]:
    where = f"search space entry '{name}'"
    if name in _FIXED_FIELDS:
        raise SearchSpaceError(f"{where}: '{name}' is fixed for a search (tunable run fields: {list(_RUN_FIELDS)}; "
                               "any other name is a model keyword argument)")
    if not isinstance(entry, Mapping):
        raise SearchSpaceError(f"{where} must be an object such as {{\"values\": [2, 4]}} or "
                               f"{{\"min\": 0.0001, \"max\": 0.01, \"sampling\": \"log\"}}, got {entry!r}")
    entry = dict(entry)
    if "values" in entry:
        extra = sorted(set(entry) - {"values"})
        values = entry["values"]
        if extra:
            raise SearchSpaceError(f"{where}: a choice takes only 'values', got also {extra}")
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{where}: 'values' must be a non-empty list, got {values!r}")
        encoded = [_encoded(value) for value in values]
        if len(set(encoded)) != len(encoded):
            raise SearchSpaceError(f"{where}: 'values' repeat a value: {values!r}")
        return entry
    extra = sorted(set(entry) - {"min", "max", "step", "sampling"})
    if extra or "min" not in entry or "max" not in entry:
        raise SearchSpaceError(f"{where} needs 'values', or 'min' and 'max' (with optional 'step', 'sampling'); "
                               f"got keys {sorted(entry)}")
    low, high, step = entry["min"], entry["max"], entry.get("step")
    numbers = [value for value in (low, high, step) if value is not None]
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
               for value in numbers):
        raise SearchSpaceError(f"{where}: 'min', 'max' and 'step' must be finite numbers, got {low!r}, {high!r}, "
                               f"{step!r}")
    if not low < high:
        raise SearchSpaceError(f"{where}: 'min' must be below 'max', got {low} and {high}")
    if step is not None and step <= 0:
        raise SearchSpaceError(f"{where}: 'step' must be > 0, got {step}")
    entry.setdefault("sampling", "linear")
    if entry["sampling"] not in SAMPLINGS:
        raise SearchSpaceError(f"{where}: 'sampling' must be one of {SAMPLINGS}, got {entry['sampling']!r}")
    if entry["sampling"] == "log" and low <= 0:
        raise SearchSpaceError(f"{where}: log sampling needs 'min' > 0, got {low}")
    return entry


def _encoded(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _hypermodel_class(kt):
    """The HyperModel class on this process' KerasTuner (it subclasses the module's own base class)."""

    class TrainingRunHyperModel(kt.HyperModel):
        """Builds and fits ``run`` with each trial's values; the score is the kept epoch's metrics."""

        def __init__(self, search: HyperparameterSearch, run: TrainingRun, spec: FeatureSpec, encoded_inputs: bool):
            super().__init__(name=f"{run.model}_search", tunable=True)
            self.search, self.run, self.spec, self.encoded_inputs = search, run, spec, encoded_inputs

        def build(self, hp):
            return self.search.apply(self.run, self.search.define(hp)).build(self.spec,
                                                                             encoded_inputs=self.encoded_inputs)

        def fit(self, hp, model, x, validation_data=None, callbacks=None, steps_per_epoch=None,
                validation_steps=None, verbose=2, **unused):
            trial_run = self.search.apply(self.run, self.search.decode(hp.values))
            report = trial_run.fit(model, x, validation_data, callbacks=list(callbacks or ()),
                                   steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                                   verbose=verbose, evaluate=False)
            # The kept epoch's logged metrics: the objective is the run's monitor there.
            return {name: values[report.best_epoch - 1] for name, values in report.history.items()
                    if len(values) >= report.best_epoch}

    return TrainingRunHyperModel
