"""Training to convergence on a validation split: the callbacks ``tfmtl train``, the TFX Trainer and the
README's ``model.fit`` share, so that all three stop the same way.

The validation AUC decides (the mean over the tasks for a multi-task model, written by
:class:`MeanOverTasks`): when it has not improved for ``lr_patience`` epochs the learning rate is cut
by ``lr_factor`` (a smaller step often gets further than the epoch the larger one stalled at), and
when it has not improved for ``patience`` epochs training stops and the best epoch's weights are
restored, so the ``epochs`` given to ``fit`` is only a cap. The weights validated and kept are a
running average of the last ~100 steps' (:class:`WeightAveraging`), which lies nearer the minimum
than any single step's. ``monitor="val_loss"`` decides on the validation loss instead (for a model
that logs no AUC); on data whose loss and AUC disagree the AUC, the quality users judge, chooses better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tfmtl._keras import keras
from tfmtl.training.averaging import DEFAULT_DECAY, WeightAveraging

DEFAULT_PATIENCE = 4
DEFAULT_LR_PATIENCE = 1
DEFAULT_LR_FACTOR = 0.3
DEFAULT_MIN_LEARNING_RATE = 1e-5
# Monitored quantities that improve upwards (Keras' ReduceLROnPlateau would minimise an AUC in "auto" mode).
_HIGHER_IS_BETTER = ("auc", "acc", "accuracy")
MONITORS = ("val_auc", "val_loss")  # the choices the CLIs and the TFX Trainer offer
DEFAULT_MONITOR = "val_auc"


def convergence_callbacks(patience: int = DEFAULT_PATIENCE, *, lr_patience: int | None = DEFAULT_LR_PATIENCE,
                          lr_factor: float = DEFAULT_LR_FACTOR,
                          min_learning_rate: float = DEFAULT_MIN_LEARNING_RATE,
                          monitor: str = DEFAULT_MONITOR,
                          averaging: float | None = DEFAULT_DECAY) -> list[keras.callbacks.Callback]:
    """Early stopping with the best (averaged) weights restored, after cutting the learning rate on a plateau.

    Args:
      patience: epochs without a better ``monitor`` before training stops (>= 1).
      lr_patience: epochs without a better ``monitor`` before the learning rate is multiplied by
        ``lr_factor``; ``0`` or ``None`` keeps the rate fixed. Must be below ``patience``, or
        training would stop before the lower rate is tried.
      lr_factor: the cut, in (0, 1).
      min_learning_rate: the rate is never cut below this.
      monitor: the logged quantity that decides (``fit`` needs ``validation_data`` for ``val_*``);
        minimised unless it ends in ``auc``/``acc``/``accuracy``. ``"val_auc"`` (default) on a
        multi-task model is the mean of the tasks' validation AUCs (:class:`MeanOverTasks`); a model
        that logs no AUC needs ``"val_loss"``.
      averaging: the decay of :class:`WeightAveraging`, whose average is what validation measures
        and what is kept; ``0`` or ``None`` validates and keeps each epoch's last weights.

    Returns:
      ``[WeightAveraging, ReduceLROnPlateau, EarlyStopping]`` (without the ones switched off;
      with :class:`MeanOverTasks` before the last two for an AUC or accuracy ``monitor``), to pass
      as ``model.fit(..., callbacks=...)``.

    Example:

    >>> [type(c).__name__ for c in convergence_callbacks()]
    ['WeightAveraging', 'MeanOverTasks', 'ReduceLROnPlateau', 'EarlyStopping']
    >>> [type(c).__name__ for c in convergence_callbacks(2, lr_patience=0, averaging=0, monitor="val_loss")]
    ['EarlyStopping']
    """
    if patience < 1:
        raise ValueError(f"convergence_callbacks: patience must be >= 1, got {patience}")
    if averaging is not None and averaging != 0 and not 0.0 < averaging < 1.0:
        raise ValueError(f"convergence_callbacks: averaging must be 0 or None (off) or a decay in (0, 1), "
                         f"got {averaging}")
    # First in the list: the average must be in the model before the others read the weights.
    leading = [WeightAveraging(averaging)] if averaging else []
    metric = monitor.removeprefix("val_")
    mode = direction(monitor)
    if mode == "max":
        leading.append(MeanOverTasks(metric))  # before the two that read it from the epoch's logs
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True)
    if not lr_patience:
        return [*leading, stop]
    if not 1 <= lr_patience < patience:
        raise ValueError(f"convergence_callbacks: lr_patience must be 0 (fixed rate) or between 1 and patience - 1 "
                         f"({patience - 1}), got {lr_patience}")
    if not 0.0 < lr_factor < 1.0:
        raise ValueError(f"convergence_callbacks: lr_factor must be in (0, 1), got {lr_factor}")
    reduce = keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=lr_factor, patience=lr_patience,
                                               min_lr=min_learning_rate)
    return [*leading, reduce, stop]


def direction(monitor: str) -> str:
    """``"max"`` for a monitored quantity that improves upwards (an AUC, an accuracy), else ``"min"``."""
    return "max" if monitor.endswith(_HIGHER_IS_BETTER) else "min"


def best_epoch(history: Mapping[str, Sequence[float]], monitor: str = DEFAULT_MONITOR) -> int:
    """The 1-based epoch whose ``monitor`` was best, i.e. whose weights ``convergence_callbacks`` kept.

    Args:
      history: ``model.fit(...).history`` (or any ``{name: per-epoch values}``).
      monitor: as given to :func:`convergence_callbacks` (maximised for AUCs and accuracies).

    Raises:
      KeyError: ``history`` has no ``monitor``, naming what it has.

    Example:

    >>> best_epoch({"val_auc": [0.80, 0.83, 0.82], "val_loss": [0.5, 0.4, 0.3]})
    2
    >>> best_epoch({"val_auc": [0.80, 0.83, 0.82], "val_loss": [0.5, 0.4, 0.3]}, "val_loss")
    3
    """
    if monitor not in history:
        raise KeyError(f"best_epoch: the history has no {monitor!r} (it has {sorted(history)})")
    values = [float(v) for v in history[monitor]]
    pick = max if direction(monitor) == "max" else min
    return pick(range(len(values)), key=values.__getitem__) + 1


class MeanOverTasks(keras.callbacks.Callback):
    """Logs ``<metric>`` and ``val_<metric>`` as the mean of the outputs' ``<output>_<metric>``.

    A multi-output Keras model logs ``val_income_auc``, ``val_married_auc``, ...; callbacks
    that should decide on all tasks at once (``EarlyStopping(monitor="val_auc")``) need one
    number. A single-output model already logs ``val_auc``, which is left as it is.

    Args:
      metric: the metric's name as compiled (``"auc"`` for tfmtl models' default AUC).

    Raises (at the end of the first epoch with validation data):
      ValueError: no output logs ``val_<output>_<metric>``, so there is nothing to decide on.

    Example:

    >>> logs = {"val_a_auc": 0.8, "val_b_auc": 0.6, "val_loss": 0.3}
    >>> callback = MeanOverTasks("auc")
    >>> callback.on_epoch_end(0, logs)
    >>> round(logs["val_auc"], 6)
    0.7
    """

    def __init__(self, metric: str = "auc"):
        super().__init__()
        self.metric = metric

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # The outputs' names are the model's when it has them; otherwise any key of the right shape.
        outputs = getattr(self.model, "output_names", None) or []
        for prefix in ("", "val_"):
            name = f"{prefix}{self.metric}"
            if name in logs:
                continue
            keys = [f"{prefix}{o}_{self.metric}" for o in outputs if f"{prefix}{o}_{self.metric}" in logs]
            keys = keys or [k for k in logs if k.startswith(prefix) and k.endswith(f"_{self.metric}")
                            and (prefix or not k.startswith("val_"))]
            if keys:
                logs[name] = float(sum(float(logs[k]) for k in keys) / len(keys))
            elif prefix and "val_loss" in logs:
                raise ValueError(f"convergence_callbacks: monitor '{name}' cannot be computed: no output logs "
                                 f"'{name[4:]}' on the validation data (logged: {sorted(logs)}); compile "
                                 f"the model with metrics that include it (tfmtl models log an AUC per output "
                                 f"by default) or monitor 'val_loss'")
