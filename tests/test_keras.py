"""tfmtl.compat (implemented in tfmtl._keras): layers and training steps are traced without AutoGraph."""

from unittest import mock

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.python.autograph.impl import api as autograph_api

from tfmtl.compat import keras, register, without_autograph
from tfmtl.export import save_signatures
from tfmtl.features import FeatureSpec, Label
from tfmtl.models import MMoE


class _Positive(keras.layers.Layer):
    def call(self, x):
        if tf.reduce_sum(x) > 0:  # a Python branch on a tensor: needs AutoGraph inside tf.function
            return x
        return -x


@register(name="TestPositiveUnconverted")
class _PositiveUnconverted(_Positive):
    def call(self, x):
        return super().call(x)


def test_registered_layers_are_traced_as_written():
    x = tf.constant([1.0, -3.0])
    np.testing.assert_allclose(tf.function(_Positive())(x), [-1.0, 3.0])  # AutoGraph rewrote the if
    np.testing.assert_allclose(_PositiveUnconverted()(x), [-1.0, 3.0])  # eager: plain Python
    with pytest.raises(TypeError, match="tf.Tensor"):  # OperatorNotAllowedInGraphError
        tf.function(_PositiveUnconverted())(x)


def test_keras_still_sees_the_call_signature():
    @register(name="TestTrainingFlag")
    class TrainingFlag(keras.layers.Layer):
        def call(self, x, training=None):
            return x * (2.0 if training else 1.0)

    @register(name="TestNoTrainingFlag")
    class NoTrainingFlag(keras.layers.Layer):
        def call(self, x):  # Keras must not pass training=
            return x + 1.0

    assert TrainingFlag()._expects_training_arg and not NoTrainingFlag()._expects_training_arg
    inputs = keras.Input([1])
    model = keras.Model(inputs, NoTrainingFlag()(TrainingFlag()(inputs)))
    np.testing.assert_allclose(model(tf.ones([1, 1]), training=True), [[3.0]])
    np.testing.assert_allclose(model(tf.ones([1, 1]), training=False), [[2.0]])
    assert without_autograph(TrainingFlag.call).__signature__ == TrainingFlag.call.__signature__


def test_building_training_and_exporting_a_model_converts_only_keras_step_wrappers(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"c": rng.choice(list("abc"), 64), "x": rng.normal(size=64),
                       "y": rng.integers(0, 2, 64), "z": rng.integers(0, 2, 64)})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("y"), Label("z")])
    converted, convert = [], autograph_api._convert_actual

    def spy(entity, program_ctx):
        converted.append(f"{entity.__module__}.{entity.__qualname__}")
        return convert(entity, program_ctx)

    with mock.patch.object(autograph_api, "_convert_actual", spy):
        model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
        model.compile()
        model.fit(df, validation_data=df, epochs=1, verbose=0)
        model.predict(df, verbose=0)
        save_signatures(model, str(tmp_path / "saved"), warmup=False)
    # Before: ~1,250 functions (every Keras layer and loss under tfmtl's layers); now Keras' own
    # train/test/predict function wrappers, metric results, distribution helpers and export's small
    # signature functions only.
    ours = [name for name in converted if name.startswith("tfmtl.") and "<lambda>" not in name]
    assert not [name for name in ours if not name.startswith("tfmtl.export.")]  # layers and steps
    assert not [name for name in converted if "layers" in name or "losses" in name]
    assert len(converted) < 150
