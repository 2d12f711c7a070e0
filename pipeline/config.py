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
from tfmtl.models import get_model_class
from tfmtl.training import WEIGHTINGS, WeightAveraging, convergence_callbacks
from tfmtl.training.averaging import DEFAULT_DECAY as DEFAULT_WEIGHT_AVERAGING
from tfmtl.training.convergence import DEFAULT_MONITOR, MONITORS

TRAINING_KEY = "training"
DISTRIBUTIONS = ("auto", "mirrored", "multi_worker", "none")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How the Trainer builds and fits the model.

    Attributes:
      model: a registry name (``tfmtl.models.available_models()``).
      model_kwargs: keyword arguments of the model class (``num_experts``, ...).
      tasks: label names to train (default: all labels of the spec; ESMM: [click, conversion]).
      epochs, batch_size, learning_rate: the fit; with ``train_steps`` set (TFX
        ``TrainArgs``) the data repeats and each epoch is ``train_steps / epochs`` steps.
        ``epochs`` is a cap: training stops when ``monitor`` has not improved
        for ``patience`` epochs and keeps the best epoch's weights (``patience=0``:
        no early stopping, all ``epochs`` run). The cap of 3 keeps ``make demo`` short.
      lr_patience: epochs without an improvement before the learning rate is cut (below
        ``patience``; 0: the rate stays fixed).
      weight_averaging: decay of the running average of the weights that is validated and
        kept (:class:`tfmtl.training.WeightAveraging`; 0: the last step's weights). With
        ``patience`` and ``lr_patience`` it goes through
        :func:`tfmtl.training.convergence_callbacks`, as ``tfmtl train`` does.
      monitor: what the rate cut and the stop decide on: ``"val_auc"`` (the mean over the
        tasks of their eval AUC) or ``"val_loss"`` (the eval split's loss).
      distribution: ``auto`` (MultiWorkerMirrored when TF_CONFIG names several
        workers, Mirrored when GPUs are present, else the default strategy),
        ``mirrored`` (all GPUs, or all logical CPUs when there is no GPU),
        ``multi_worker`` or ``none``.
      mixed_precision: ``None``, ``"mixed_float16"`` (GPUs) or ``"mixed_bfloat16"`` (CPUs, TPUs).
      weighting: ``"none"`` (the model's compiled losses), ``"static"``, ``"uncertainty"`` or
        ``"pid"``: the model trains as a :class:`~tfmtl.training.MultiObjectiveModel` with that
        weighting (:func:`tfmtl.training.with_weighting`).
      weighting_args: its keyword arguments (``accuracy_objective``, ``weights``, ``set_point``,
        ``kp``, ``ki``, ``kd``, ``auxiliary_scale``).
    """

    model: str = "mmoe"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tasks: Sequence[str] | None = None
    epochs: int = 3
    patience: int = 1
    lr_patience: int = 0
    weight_averaging: float = DEFAULT_WEIGHT_AVERAGING
    monitor: str = DEFAULT_MONITOR
    batch_size: int = 256
    learning_rate: float = 1e-3
    distribution: str = "auto"
    mixed_precision: str | None = None
    seed: int = 0
    weighting: str = "none"
    weighting_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        get_model_class(self.model)  # fails early, naming the known models
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if self.mixed_precision not in (None, *MIXED_PRECISION_POLICIES):
            raise ValueError(f"mixed_precision must be None or one of {MIXED_PRECISION_POLICIES}, "
                             f"got {self.mixed_precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if not self.patience and self.lr_patience:
            raise ValueError(f"lr_patience acts with early stopping: with patience 0 it must be 0, "
                             f"got {self.lr_patience}")
        self.convergence_callbacks()  # checks lr_patience and weight_averaging, naming them
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        object.__setattr__(self, "weighting_args", dict(self.weighting_args))
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.tasks is not None:
            object.__setattr__(self, "tasks", [self.tasks] if isinstance(self.tasks, str) else list(self.tasks))

    def convergence_callbacks(self) -> list:
        """The Trainer's :func:`tfmtl.training.convergence_callbacks`; with ``patience`` 0 only the averaging."""
        if self.patience:
            return convergence_callbacks(self.patience, lr_patience=self.lr_patience, averaging=self.weight_averaging,
                                         monitor=self.monitor)
        return [WeightAveraging(self.weight_averaging)] if self.weight_averaging else []

    def output_labels(self, spec: FeatureSpec) -> dict[str, str]:
        """``{model output: label name}`` of the trained outputs, as ``MultiTaskModel.label_map``.

        Known without building the model (the Evaluator's config needs it when the
        pipeline is defined); the Trainer checks it against the built model.
        """
        tasks = list(self.tasks) if self.tasks else spec.label_names
        if get_model_class(self.model).esmm_head:
            if len(tasks) != 2:
                raise ValueError(f"{self.model}: needs tasks=[click, conversion], got {tasks}")
            return {"ctr": tasks[0], "ctcvr": tasks[1]}
        return {task: task for task in tasks}


def transform_config(spec: FeatureSpec, statistics: str = SPEC_STATISTICS,
                     na_values: Sequence[str] | None = None) -> dict[str, Any]:
    """The Transform's ``custom_config`` (read by :func:`pipeline.transform.preprocessing_fn`)."""
    if statistics not in (SPEC_STATISTICS, ANALYZER_STATISTICS):
        raise ValueError(f"statistics must be {SPEC_STATISTICS!r} or {ANALYZER_STATISTICS!r}, got {statistics!r}")
    config: dict[str, Any] = {SPEC_KEY: spec.get_config(), STATISTICS_KEY: statistics}
    if na_values is not None:
        config[NA_VALUES_KEY] = list(na_values)
    return config


def trainer_config(spec: FeatureSpec, training: TrainingConfig, statistics: str = SPEC_STATISTICS) -> dict[str, Any]:
    """The Trainer's ``custom_config`` (read by :func:`pipeline.trainer.run_fn`)."""
    return {SPEC_KEY: spec.get_config(), STATISTICS_KEY: statistics, TRAINING_KEY: dataclasses.asdict(training)}


def read_trainer_config(custom_config: Mapping[str, Any]) -> tuple[FeatureSpec, TrainingConfig, str]:
    """The inverse of :func:`trainer_config`."""
    return (FeatureSpec.from_config(custom_config[SPEC_KEY]), TrainingConfig(**custom_config[TRAINING_KEY]),
            custom_config.get(STATISTICS_KEY, SPEC_STATISTICS))
