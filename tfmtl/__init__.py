"""tfmtl: multi-task, multi-domain and multi-modal recommendation models for TensorFlow/Keras."""

import os

# Before TensorFlow loads, so that tf.keras is the tf_keras (Keras 2) that every tfmtl model uses.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from tfmtl import keras` without importing TensorFlow at `import tfmtl` (tfmtl.logs must not:
    # the command-line tools redirect TensorFlow's start-up output before it loads).
    if name == "keras":
        from tfmtl._keras import keras

        return keras
    raise AttributeError(f"module 'tfmtl' has no attribute {name!r}")
