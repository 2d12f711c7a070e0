"""tfmtl's public Keras handle and the one home of version differences between its dependencies.

* ``keras``: the Keras tfmtl builds on, tf_keras (Keras 2), imported by name. ``import tfmtl``
  does not set ``TF_USE_LEGACY_KERAS``: a program's own ``import keras`` (Keras 3) and ``tf.keras``
  are left as its environment chose.
* :func:`register`: registers a layer or model class for ``.keras`` save/load as ``tfmtl>Name``.
* :func:`without_autograph`: a function traced as written, without AutoGraph's rewrite.
* :func:`keras_tuner`: KerasTuner on tfmtl's Keras, for hyperparameter search over tfmtl models.

Example:

>>> from tfmtl.compat import keras
>>> keras.__name__
'tf_keras'
"""

from __future__ import annotations

import sys
import types

from tfmtl._keras import keras, register, without_autograph

__all__ = ["keras", "register", "without_autograph", "keras_tuner"]

_TUNER_BACKEND = ("keras_tuner.src.backend.config", "keras_tuner.src.backend.keras")


def keras_tuner(replace_keras_3: bool = False) -> types.ModuleType:
    """The ``keras_tuner`` module running on tf_keras, so that its tuners accept tfmtl models.

    KerasTuner (1.4) picks its Keras once, when it is first imported: Keras 3 whenever the ``keras``
    package is 3.x, as it is beside TensorFlow >= 2.16. It then refuses a tf_keras model ("Expected
    the model-building function ... to return a valid Keras Model instance") and hands it Keras 3
    callbacks. This imports it with its backend switch set to ``tf.keras`` and its Keras module set to
    tf_keras (its own code path for Keras 2), leaving the user's ``keras`` alone. Call it instead of
    ``import keras_tuner``, before anything else in the process imports keras_tuner.

    Args:
      replace_keras_3: where keras_tuner is already imported on Keras 3, drop its modules and import
        it again on tf_keras, instead of raising. For a process whose framework imported keras_tuner
        first and then only drives the tuner it is handed (TFX's Tuner executor imports it at module
        top, before it calls the ``tuner_fn``): objects made by the earlier import stay on Keras 3.

    Raises:
      RuntimeError: keras_tuner is already imported on Keras 3 in this process (without ``replace_keras_3``).

    Example (a build function returning a tfmtl model)::

        kt = tfmtl.compat.keras_tuner()
        tuner = kt.RandomSearch(build, objective="val_loss", max_trials=2, directory=tmp)
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=1)
    """
    loaded = sys.modules.get("keras_tuner.src.backend.keras")
    if loaded is keras:
        return sys.modules["keras_tuner"]
    if loaded is not None and replace_keras_3:
        for name in [name for name in sys.modules if name == "keras_tuner" or name.startswith("keras_tuner.")]:
            del sys.modules[name]
    elif loaded is not None:
        raise RuntimeError("keras_tuner was imported on Keras 3 before tfmtl.compat.keras_tuner(): it accepts only "
                           "Keras 3 models in this process. Call tfmtl.compat.keras_tuner() before anything imports "
                           "keras_tuner (or set TF_USE_LEGACY_KERAS=1 and KerasTuner's Keras module yourself).")
    config = types.ModuleType(_TUNER_BACKEND[0], "KerasTuner's backend switch, set to tf.keras (tf_keras) by tfmtl")
    config.multi_backend = lambda: False
    config.backend = lambda: "tensorflow"
    sys.modules[_TUNER_BACKEND[0]] = config
    sys.modules[_TUNER_BACKEND[1]] = keras
    try:
        import keras_tuner
    except BaseException:
        for name in _TUNER_BACKEND:
            sys.modules.pop(name, None)
        raise
    return keras_tuner
