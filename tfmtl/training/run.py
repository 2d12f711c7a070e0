"""One definition of a training run, shared by ``tfmtl train``, the TFX Trainer and the benchmarks.

A :class:`TrainingRun` holds every choice a run makes (the model and its arguments, the loss
weighting, the optimizer's rate, the convergence callbacks, the batch, an optional warm start)
with the one set of defaults. Each front end only says where the data comes from:

* ``tfmtl train`` (:mod:`tfmtl.cli`) fits DataFrames;
* the TFX Trainer (:mod:`pipeline.trainer`) fits the Transform output, with the pipeline-only
  choices (distribution, mixed precision) added by :class:`pipeline.config.TrainingConfig`;
* ``bench/`` fits its own splits.

A shorter run (the demo, a test) says so by its own arguments, e.g.
``TrainingRun(epochs=3, patience=1, lr_patience=0)``, never through a different default.

Example:

>>> from tfmtl.datasets import synthetic
>>> df, spec = synthetic.multitask_frame(400)
>>> run = TrainingRun("shared_bottom", epochs=2, patience=1, lr_patience=0)
>>> model = run.build(spec)
>>> report = run.fit(model, df.iloc[:300], df.iloc[300:], verbose=0)
>>> 1 <= report.best_epoch <= report.epochs_run <= 2
True
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tfmtl._keras import keras
from tfmtl.features import FeatureSpec
from tfmtl.training.averaging import DEFAULT_DECAY, WeightAveraging
from tfmtl.training.convergence import (
    DEFAULT_LR_PATIENCE,
    DEFAULT_MONITOR,
    DEFAULT_PATIENCE,
    MONITORS,
    best_epoch,
    convergence_callbacks,
)
from tfmtl.training.objectives import WEIGHTINGS, base_model, with_weighting
from tfmtl.training.warm_start import WarmStartReport, warm_start

# tfmtl.models imports tfmtl.training (the GAUC batch context): the model registry is imported where it is used.

DEFAULT_EPOCHS = 30  # a cap: early stopping ends a run when the validation metric stops improving
DEFAULT_LEARNING_RATE = 1e-3
# Also MultiTaskModel.fit(df)'s batch without one. 128, not 256 or 512: on 15k-35k-row tables the larger batches
# leave too few updates per epoch (one seed, width 32: bio 0.944 at 512 vs 0.974 at 128; california 0.953 vs 0.963).
DEFAULT_BATCH_SIZE = 128


@dataclasses.dataclass(frozen=True)
class TrainingReport:
    """What a :meth:`TrainingRun.fit` did and what it kept.

    Attributes:
      history: ``model.fit(...).history`` as plain floats.
      epochs_run: epochs that ran (at most the run's ``epochs``).
      best_epoch: the 1-based epoch whose weights were kept (the last one without early stopping).
      monitor: what decided the kept epoch.
      validation: the kept model's metrics on the validation data (``model.evaluate``), or empty.
      seconds: the fit's wall time.
      examples: training examples seen (rows times epochs; ``None`` when the data has no length).
      warm_start: what the warm start carried over, or ``None`` for a run from scratch.
      warm_start_from: the ``.keras`` file it started from (the run's ``warm_start``).
    """

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    monitor: str
    validation: dict[str, float]
    seconds: float
    examples: int | None = None
    warm_start: WarmStartReport | None = None
    warm_start_from: str | None = None

    @property
    def examples_per_second(self) -> float | None:
        return self.examples / self.seconds if self.examples and self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the Trainer's ``training.json``, the benchmarks' results)."""
        report = dataclasses.asdict(self)
        report["examples_per_second"] = self.examples_per_second
        # One entry: where the weights came from and what was carried ({"from", "carried", "new", "weights"}).
        source = report.pop("warm_start_from")
        report["warm_start"] = None if source is None else {"from": source, **(report["warm_start"] or {})}
        return report


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """How a model is built, compiled and fitted to convergence.

    Attributes:
      model: a registry name (``tfmtl.models.available_models()``).
      model_kwargs: keyword arguments of the model class (``num_experts``, ...).
      tasks: label names to train (default: all labels of the spec; ESMM: [click, conversion]).
      epochs: a cap: training stops when ``monitor`` has not improved for ``patience`` epochs
        and keeps the best epoch's weights (``patience=0``: no early stopping, every epoch runs).
      patience, lr_patience, weight_averaging, monitor: :func:`tfmtl.training.convergence_callbacks`
        (``lr_patience`` 0: the rate stays fixed; ``weight_averaging`` 0: the last step's weights).
      batch_size, learning_rate: the fit (Adam).
      seed: Keras' random seed, set by :meth:`build`.
      weighting, weighting_args: ``"none"`` (the model's compiled losses), ``"static"``,
        ``"uncertainty"`` or ``"pid"`` and its arguments (:func:`tfmtl.training.with_weighting`).
      warm_start: a trained model's ``.keras`` file; :meth:`build` copies its weights into the new
        model, embedding rows moved to the new spec's vocabularies (:func:`tfmtl.training.warm_start`).
    """

    model: str = "mmoe"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tasks: Sequence[str] | None = None
    epochs: int = DEFAULT_EPOCHS
    patience: int = DEFAULT_PATIENCE
    lr_patience: int = DEFAULT_LR_PATIENCE
    weight_averaging: float = DEFAULT_DECAY
    monitor: str = DEFAULT_MONITOR
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    seed: int = 0
    weighting: str = "none"
    weighting_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    warm_start: str | None = None

    def __post_init__(self):
        from tfmtl.models import get_model_class

        get_model_class(self.model)  # fails early, naming the known models
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if not self.patience and self.lr_patience:
            raise ValueError(f"lr_patience acts with early stopping: with patience 0 it must be 0, "
                             f"got {self.lr_patience}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        self.callbacks()  # checks lr_patience and weight_averaging, naming them
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        object.__setattr__(self, "weighting_args", dict(self.weighting_args))
        if self.tasks is not None:
            object.__setattr__(self, "tasks", [self.tasks] if isinstance(self.tasks, str) else list(self.tasks))
        if self.warm_start is not None:
            object.__setattr__(self, "warm_start", os.fspath(self.warm_start))

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """The convergence callbacks; with ``patience`` 0 only the weight averaging."""
        if self.patience:
            return convergence_callbacks(self.patience, lr_patience=self.lr_patience, averaging=self.weight_averaging,
                                         monitor=self.monitor)
        return [WeightAveraging(self.weight_averaging)] if self.weight_averaging else []

    def output_labels(self, spec: FeatureSpec) -> dict[str, str]:
        """``{model output: label name}`` of the trained outputs, as ``MultiTaskModel.label_map``.

        Known without building the model (the TFX Evaluator's config needs it when the pipeline
        is defined); :meth:`build` checks it against the built model.
        """
        from tfmtl.models import get_model_class

        tasks = list(self.tasks) if self.tasks else spec.label_names
        if get_model_class(self.model).esmm_head:
            if len(tasks) != 2:
                raise ValueError(f"{self.model}: needs tasks=[click, conversion], got {tasks}")
            return {"ctr": tasks[0], "ctcvr": tasks[1]}
        return {task: task for task in tasks}

    def build(self, spec: FeatureSpec, *, encoded_inputs: bool = False, seed: bool = True,
              warm_start_spec: FeatureSpec | None = None) -> keras.Model:
        """The compiled model (weighted if ``weighting`` says so), warm-started when ``warm_start`` is set.

        Args:
          spec: the feature spec the model reads.
          encoded_inputs: the model takes the encoded ids a TFX Transform writes (the pipeline).
          seed: set Keras' random seed to ``self.seed`` first (``False`` inside a distribution
            strategy that was seeded before its scope was entered).
          warm_start_spec: the spec the ``warm_start`` model was trained on (default: the one it carries).
        """
        from tfmtl.models import build_model
        from tfmtl.optimizers import Adam

        if seed:
            keras.utils.set_random_seed(self.seed)
        model = build_model(self.model, spec, self.tasks, encoded_inputs=encoded_inputs, **self.model_kwargs)
        expected = self.output_labels(spec)
        if model.label_map != expected:
            raise ValueError(f"model '{self.model}' trains outputs {model.label_map}, expected {expected}")
        if self.warm_start is not None:
            report = warm_start(model, self.warm_start, spec=spec, trained_spec=warm_start_spec)
            model._warm_start_report = report  # read back by fit() for its report
        weighted = with_weighting(model, self.weighting, **self.weighting_args)
        if weighted is not model:
            weighted._warm_start_report = getattr(model, "_warm_start_report", None)
        weighted.compile(optimizer=Adam(self.learning_rate))
        return weighted

    def fit(self, model: keras.Model, train, validation, *, callbacks: Sequence[keras.callbacks.Callback] = (),
            steps_per_epoch: int | None = None, validation_steps: int | None = None, verbose: int | str = 2,
            evaluate: bool = True) -> TrainingReport:
        """Fits ``model`` on ``train`` to convergence on ``validation`` and evaluates the kept weights.

        ``train`` and ``validation`` are what ``model.fit`` takes (DataFrames for tfmtl models, or
        batched ``tf.data`` datasets; a DataFrame is batched by ``batch_size``). ``callbacks`` come
        after the convergence ones (TensorBoard, a user's own).
        """
        is_frame = hasattr(train, "columns")  # a DataFrame, batched here; a dataset comes batched
        kwargs = {"batch_size": self.batch_size} if is_frame else {}
        start = time.perf_counter()
        history = model.fit(train, validation_data=validation, epochs=self.epochs, steps_per_epoch=steps_per_epoch,
                            validation_steps=validation_steps, callbacks=[*self.callbacks(), *callbacks],
                            verbose=verbose, **kwargs)
        seconds = time.perf_counter() - start
        values = {name: [float(v) for v in series] for name, series in history.history.items()}
        epochs_run = len(values.get("loss", [])) or self.epochs
        kept = best_epoch(values, self.monitor) if self.patience and self.monitor in values else epochs_run
        scores: dict[str, float] = {}
        if evaluate and validation is not None:
            # The kept weights on the validation data, at the models' inference batch for a DataFrame.
            measured = model.evaluate(validation, steps=validation_steps, verbose=0, return_dict=True)
            scores = {name: float(value) for name, value in measured.items()}
        rows = len(train) if is_frame else None
        return TrainingReport(history=values, epochs_run=epochs_run, best_epoch=kept, monitor=self.monitor,
                              validation=scores, seconds=seconds, examples=rows * epochs_run if rows else None,
                              warm_start=getattr(model, "_warm_start_report", None), warm_start_from=self.warm_start)

    def describe(self, model: keras.Model) -> str:
        """One line: the model, its weighting, its size."""
        base = base_model(model)
        weighted = "" if base is model else f" ({self.weighting} loss weighting)"
        warm = f", warm-started from {self.warm_start}" if self.warm_start else ""
        return f"{base.name}{weighted}: {base.count_params():,} parameters{warm}"
