"""Training to convergence on a validation split: the callbacks ``tfmtl train``, the TFX Trainer and the
README's ``model.fit`` share, so that all three stop the same way.

The loss on the validation split decides: when it has not improved for ``lr_patience`` epochs the
learning rate is cut by ``lr_factor`` (a smaller step often finds a lower loss than the epoch the
larger one stalled at), and when it has not improved for ``patience`` epochs training stops and the
best epoch's weights are restored, so the ``epochs`` given to ``fit`` is only a cap.
"""

from __future__ import annotations

from tfmtl._keras import keras

DEFAULT_PATIENCE = 4
DEFAULT_LR_PATIENCE = 1
DEFAULT_LR_FACTOR = 0.3
DEFAULT_MIN_LEARNING_RATE = 1e-5


def convergence_callbacks(patience: int = DEFAULT_PATIENCE, *, lr_patience: int | None = DEFAULT_LR_PATIENCE,
                          lr_factor: float = DEFAULT_LR_FACTOR,
                          min_learning_rate: float = DEFAULT_MIN_LEARNING_RATE,
                          monitor: str = "val_loss") -> list[keras.callbacks.Callback]:
    """Early stopping with the best weights restored, after cutting the learning rate on a plateau.

    Args:
      patience: epochs without a lower ``monitor`` before training stops (>= 1).
      lr_patience: epochs without a lower ``monitor`` before the learning rate is multiplied by
        ``lr_factor``; ``None`` keeps the rate fixed. Must be below ``patience``, or training would
        stop before the lower rate is tried.
      lr_factor: the cut, in (0, 1).
      min_learning_rate: the rate is never cut below this.
      monitor: the logged quantity to minimise (``fit`` needs ``validation_data`` for ``val_*``).

    Returns:
      ``[ReduceLROnPlateau, EarlyStopping]`` (or only ``[EarlyStopping]``), to pass as
      ``model.fit(..., callbacks=...)``.

    Example:

    >>> [type(c).__name__ for c in convergence_callbacks()]
    ['ReduceLROnPlateau', 'EarlyStopping']
    >>> [type(c).__name__ for c in convergence_callbacks(2, lr_patience=None)]
    ['EarlyStopping']
    """
    if patience < 1:
        raise ValueError(f"convergence_callbacks: patience must be >= 1, got {patience}")
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    if lr_patience is None:
        return [stop]
    if not 1 <= lr_patience < patience:
        raise ValueError(f"convergence_callbacks: lr_patience must be >= 1 and below patience ({patience}), "
                         f"got {lr_patience}; pass lr_patience=None to keep the learning rate fixed")
    if not 0.0 < lr_factor < 1.0:
        raise ValueError(f"convergence_callbacks: lr_factor must be in (0, 1), got {lr_factor}")
    reduce = keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=lr_factor, patience=lr_patience,
                                               min_lr=min_learning_rate)
    return [reduce, stop]
