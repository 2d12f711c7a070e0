"""tfmtl: multi-task, multi-domain and multi-modal recommendation models for TensorFlow/Keras."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from tfmtl import keras` (tf_keras, the Keras of every tfmtl model) without importing TensorFlow at
    # `import tfmtl` (tfmtl.logs must not: the command-line tools redirect TensorFlow's start-up output
    # before it loads).
    if name == "keras":
        from tfmtl._keras import keras

        return keras
    raise AttributeError(f"module 'tfmtl' has no attribute {name!r}")
