"""The one place tfmtl picks its Keras: tf_keras (Keras 2).

TFX Transform and tensorflow-recommenders only work with Keras 2, so every tfmtl
model is a ``tf_keras`` model whether or not the user set ``TF_USE_LEGACY_KERAS=1``.
Setting the variable here (before TensorFlow is first imported) also makes
``tf.keras`` point at the same Keras for code that imports TensorFlow after tfmtl.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras  # noqa: E402

__all__ = ["keras"]


def register(cls=None, *, name: str | None = None):
    """Registers a layer or model class for ``.keras`` save/load as ``tfmtl>Name`` (``name`` overrides).

    Use as ``@register`` or ``@register(name="Other")``. A name that another class
    already holds is refused: Keras would silently deserialize one class as the other.
    """

    def decorate(cls):
        registered = f"tfmtl>{name or cls.__name__}"
        holder = keras.saving.get_registered_object(registered)
        if holder is not None and (holder.__module__, holder.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"{registered} is already registered for {holder.__module__}.{holder.__qualname__}; "
                             f"give {cls.__module__}.{cls.__qualname__} another name")
        return keras.saving.register_keras_serializable(package="tfmtl", name=name)(cls)

    return decorate if cls is None else decorate(cls)
