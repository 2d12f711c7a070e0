"""Small hand-built tf_keras models with dict outputs, standing in for tfmtl.models."""

import numpy as np
import pytest

from tfmtl.compat import keras  # tf_keras (Keras 2), the Keras of every tfmtl model


def two_task_model(seed: int = 0, regularizer=None) -> keras.Model:
    """``{"x": [B, 4]}`` -> ``{"ctr": [B, 1], "cvr": [B, 1]}`` (sigmoid heads)."""
    keras.utils.set_random_seed(seed)
    inputs = {"x": keras.Input([4], name="x")}
    body = keras.layers.Dense(8, activation="relu", kernel_regularizer=regularizer, name="body")(inputs["x"])
    outputs = {task: keras.layers.Dense(1, activation="sigmoid", name=task)(body) for task in ("ctr", "cvr")}
    return keras.Model(inputs, outputs, name="two_task")


def two_task_data(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    ctr = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype("float32")[:, None]
    cvr = (x[:, 1] + 0.3 * rng.normal(size=n) > 0.5).astype("float32")[:, None]
    return {"x": x}, {"ctr": ctr, "cvr": cvr}


@pytest.fixture
def data():
    return two_task_data()


def linear_model(optimizer) -> keras.Model:
    """``[B, 2] -> [B, 1]``: one Dense layer, mean squared error, run eagerly (tracing a tf_keras train step
    costs seconds; callbacks act the same either way)."""
    model = keras.Sequential([keras.Input([2]), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", run_eagerly=True)
    return model


def noisy_linear_data(rng: np.random.Generator, rows: int):
    """``y = x1 - 2 x2 + N(0, 1)``: a validation loss that reaches its noise floor and then wanders."""
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0]], np.float32) + rng.normal(size=(rows, 1)).astype(np.float32)
