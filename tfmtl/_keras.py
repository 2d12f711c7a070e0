"""The one place tfmtl picks its Keras: tf_keras (Keras 2), imported by name.

TFX Transform and tensorflow-recommenders only work with Keras 2, so every tfmtl
model is a ``tf_keras`` model. Importing tfmtl changes nothing global: ``TF_USE_LEGACY_KERAS``
is left as the user set it, so a program's own ``keras`` and ``tf.keras`` stay Keras 3 unless it
asks otherwise (tfmtl's command-line programs set the variable for their own process).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras

__all__ = ["keras", "register", "without_autograph"]


def without_autograph(function: Callable) -> Callable:
    """``function`` traced as written, without AutoGraph's rewrite; its signature is kept for Keras.

    AutoGraph turns Python ``if``/``for`` over tensors into graph control flow. tfmtl's layers
    and training steps branch on Python values only, and AutoGraph skips the ``keras`` package
    but not ``tf_keras``: converting a layer's ``call`` also converts every Keras layer and loss it
    calls, which made building an MMoE take ~20 s and tracing its first training step ~20 s more
    (about 1 s and 3.5 s without). Inside a wrapped training step nothing below is converted
    (the same rule as Keras 3): tensor-dependent branches must use ``tf.cond``/``tf.where``.
    """
    wrapped = tf.autograph.experimental.do_not_convert(function)
    wrapped.__signature__ = inspect.signature(function)  # Keras reads ``call``'s arguments (training, mask)
    return wrapped


def register(cls=None, *, name: str | None = None):
    """Registers a layer or model class for ``.keras`` save/load as ``tfmtl>Name`` (``name`` overrides).

    Use as ``@register`` or ``@register(name="Other")``. A name that another class
    already holds is refused: Keras would silently deserialize one class as the other.
    A layer's (or subclassed model's) own ``call`` is wrapped in :func:`without_autograph`.
    """

    def decorate(cls):
        registered = f"tfmtl>{name or cls.__name__}"
        holder = keras.saving.get_registered_object(registered)
        if holder is not None and (holder.__module__, holder.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"{registered} is already registered for {holder.__module__}.{holder.__qualname__}; "
                             f"give {cls.__module__}.{cls.__qualname__} another name")
        if issubclass(cls, keras.layers.Layer) and "call" in vars(cls):
            cls.call = without_autograph(vars(cls)["call"])
        return keras.saving.register_keras_serializable(package="tfmtl", name=name)(cls)

    return decorate if cls is None else decorate(cls)
