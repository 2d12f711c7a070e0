"""A list feature through Transform (Beam), the Trainer and the exported signatures, against the Keras path."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline import trainer
from pipeline.config import TrainingConfig, trainer_config
from tests.pipeline.conftest import SMALL_MMOE, build_transform_output, serialize
from tfmtl.compat import keras
from tfmtl.features import FeaturePreprocessing, FeatureSpec, encoded_names
from tfmtl.features.spec import list_array

ITEMS = list("abcdef")


def _frames(n: int, seed: int, history_rows=()):
    """(Keras frame with list cells, raw frame as a CSV ExampleGen types it: lists joined with '|')."""
    rng = np.random.default_rng(seed)
    history = [list(rng.choice(ITEMS, rng.integers(0, 7))) for _ in range(n)]
    history[: len(history_rows)] = history_rows
    genres = [list(rng.integers(0, 4, rng.integers(0, 4))) for _ in range(n)]
    keras_frame = pd.DataFrame({"item": rng.choice(ITEMS, n), "x": rng.normal(size=n).round(3),
                                "history": history, "genres": genres,
                                "task_a": rng.integers(0, 2, n), "task_b": rng.integers(0, 2, n)})
    raw = keras_frame.assign(history=["|".join(h) for h in history],
                             genres=["|".join(str(g) for g in row) for row in genres])
    return keras_frame, raw


@pytest.mark.slow
def test_transform_trainer_and_export_agree_with_keras_on_lists(tmp_path):
    keras_train, raw_train = _frames(160, 0)
    keras_eval, raw_eval = _frames(40, 1, [["f", "e", "d", "c", "b", "a", "a", "c"], []])  # over-long, empty
    spec = FeatureSpec.from_dataframe(keras_train, ["task_a", "task_b"], shared_embeddings={"history": "item"},
                                      max_list_length=4)
    output = build_transform_output(str(tmp_path), spec, raw_train, raw_eval)

    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(output.transform_graph)
    raw = tf.io.parse_example(serialize(raw_eval), tft_output.raw_feature_spec())
    transformed = tft_output.transform_features_layer()(raw)
    keras_encoded = FeaturePreprocessing(spec)({k: tf.constant(v) for k, v in spec.feature_arrays(keras_eval).items()})
    for feature in spec.lists:  # Transform output == Keras preprocessing, padding -1, over-long cut
        np.testing.assert_array_equal(transformed[feature.name].numpy(), keras_encoded["lists"][feature.name].numpy())
    assert transformed["history"].numpy()[1].tolist() == [-1] * 4

    model_kwargs = {**SMALL_MMOE, "history_attention": {"history": "item"}, "attention_units": [4]}
    config = trainer_config(spec, TrainingConfig("mmoe", model_kwargs, batch_size=32, epochs=1))
    fn_args = output.fn_args(config, str(tmp_path / "trained"))
    trainer.run_fn(fn_args)

    model = keras.models.load_model(f"{trainer.keras_model_dir(fn_args.serving_model_dir)}/{trainer.KERAS_MODEL_FILE}")
    expected = model.predict({n: transformed[n] for n in encoded_names(spec)}, verbose=0)
    served = tf.saved_model.load(fn_args.serving_model_dir).signatures["serving_default"]
    arrays = spec.feature_arrays(keras_eval)
    for feature in spec.lists:  # the client pads to the batch's longest row, not to max_length
        arrays[feature.name] = list_array(keras_eval[feature.name], 9, feature.dtype, feature.name)
    got = served(**{k: tf.constant(v) for k, v in arrays.items()})
    for name in ("task_a", "task_b"):
        np.testing.assert_allclose(got[name].numpy().reshape(-1), expected[name][:, 0], rtol=1e-5, atol=1e-6)
