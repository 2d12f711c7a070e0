"""tfmtl's public Keras handle, for code outside the package (pipelines, benchmarks, tests, user code).

* ``keras``: the Keras tfmtl builds on, tf_keras (Keras 2). Importing it sets
  ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads, so ``tf.keras`` is the same Keras.
* :func:`register`: registers a layer or model class for ``.keras`` save/load as ``tfmtl>Name``.
* :func:`without_autograph`: a function traced as written, without AutoGraph's rewrite.

Example:

>>> from tfmtl.compat import keras
>>> keras.__name__
'tf_keras'
"""

from tfmtl._keras import keras, register, without_autograph

__all__ = ["keras", "register", "without_autograph"]
