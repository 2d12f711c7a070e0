"""What the components are told: the Trainer's and Transform's ``custom_config``.

``custom_config`` is JSON in the pipeline IR (local MLMD or a Vertex pipeline spec),
so everything here is plain data: the spec as its config dict, the model as a
registry name plus keyword arguments. A model added to the registry later
(``build_model(name, spec, tasks, **kwargs)``) needs no pipeline change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.transform import ANALYZER_STATISTICS, NA_VALUES_KEY, SPEC_KEY, SPEC_STATISTICS, STATISTICS_KEY
from tfmtl.features import FeatureSpec
from tfmtl.training import TrainingRun
from tfmtl.training.tuning import HyperparameterSearch

TRAINING_KEY = "training"
SEARCH_KEY = "search"  # a HyperparameterSearch: the Tuner searches it, the Trainer applies its best values
DISTRIBUTIONS = ("auto", "mirrored", "multi_worker", "parameter_server", "none")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainingConfig(TrainingRun):
    """How the Trainer builds and fits the model: a :class:`tfmtl.training.TrainingRun` (the same run,
    with the same defaults, as ``tfmtl train`` and the benchmarks) plus the choices only the pipeline makes.

    With ``train_steps`` set (TFX ``TrainArgs``) the data repeats and each epoch is
    ``train_steps / epochs`` steps. ``warm_start`` is set by the Trainer itself from its
    ``base_model`` input, not here.

    Attributes:
      distribution: ``auto`` (ParameterServer when TF_CONFIG names ``ps`` tasks,
        MultiWorkerMirrored when it names several workers, Mirrored when GPUs are
        present, else the default strategy), ``mirrored`` (all GPUs, or all logical
        CPUs when there is no GPU), ``multi_worker``, ``parameter_server`` (embedding
        tables sharded over the ps tasks, see :mod:`tfmtl.training.sharding`; the
        chief trains, the worker and ps tasks only serve) or ``none``.
      mixed_precision: ``None``, ``"mixed_float16"`` (GPUs) or ``"mixed_bfloat16"`` (CPUs, TPUs).
    """

    distribution: str = "auto"
    mixed_precision: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if self.mixed_precision not in (None, *MIXED_PRECISION_POLICIES):
            raise ValueError(f"mixed_precision must be None or one of {MIXED_PRECISION_POLICIES}, "
                             f"got {self.mixed_precision!r}")


def transform_config(spec: FeatureSpec, statistics: str = SPEC_STATISTICS,
                     na_values: Sequence[str] | None = None) -> dict[str, Any]:
    """The Transform's ``custom_config`` (read by :func:`pipeline.transform.preprocessing_fn`)."""
    if statistics not in (SPEC_STATISTICS, ANALYZER_STATISTICS):
        raise ValueError(f"statistics must be {SPEC_STATISTICS!r} or {ANALYZER_STATISTICS!r}, got {statistics!r}")
    config: dict[str, Any] = {SPEC_KEY: spec.get_config(), STATISTICS_KEY: statistics}
    if na_values is not None:
        config[NA_VALUES_KEY] = list(na_values)
    return config


def trainer_config(spec: FeatureSpec, training: TrainingConfig, statistics: str = SPEC_STATISTICS,
                   search: HyperparameterSearch | None = None) -> dict[str, Any]:
    """The Trainer's and the Tuner's ``custom_config`` (read by :func:`pipeline.trainer.run_fn` and
    :func:`pipeline.tuner.tuner_fn`)."""
    config = {SPEC_KEY: spec.get_config(), STATISTICS_KEY: statistics, TRAINING_KEY: dataclasses.asdict(training)}
    if search is not None:
        config[SEARCH_KEY] = search.get_config()
    return config


def read_search(custom_config: Mapping[str, Any]) -> HyperparameterSearch | None:
    """The search space :func:`trainer_config` was given, or ``None``."""
    search = custom_config.get(SEARCH_KEY)
    return None if search is None else HyperparameterSearch.from_config(search)


def read_trainer_config(custom_config: Mapping[str, Any]) -> tuple[FeatureSpec, TrainingConfig, str]:
    """The inverse of :func:`trainer_config`."""
    return (FeatureSpec.from_config(custom_config[SPEC_KEY]), TrainingConfig(**custom_config[TRAINING_KEY]),
            custom_config.get(STATISTICS_KEY, SPEC_STATISTICS))
