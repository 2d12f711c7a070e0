"""No train/serve skew for PLE and periodic numerics: Keras, the Transform graph and the export agree."""

import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import transform
from pipeline.config import transform_config
from tfmtl.export import save_signatures
from tfmtl.features import FeatureSpec, Label
from tfmtl.models import build_model


def _train_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"city": rng.choice(list("abc"), n), "spend": rng.exponential(3.0, n),
                         "age": rng.normal(40, 10, n), "clicked": rng.integers(0, 2, n)})


def test_keras_transform_and_export_agree_on_ple_and_periodic(tmp_path):
    spec = FeatureSpec.from_dataframe(_train_frame(), labels=[Label("clicked")], numeric_encoding="ple",
                                      numeric_bins=8)
    # One periodic feature beside the PLE one: both encodings in one model.
    spec = FeatureSpec.from_config({**spec.get_config(), "features": [
        {**f, "encoding": "periodic", "edges": None} if f["name"] == "age" else f
        for f in spec.get_config()["features"]]})
    assert spec.feature("spend").log and spec.feature("spend").encoding == "ple"
    lo, hi = np.expm1(spec.feature("spend").edges[0]), np.expm1(spec.feature("spend").edges[-1])
    # In range, missing, below and far above the fitted edges, and an unseen city.
    rows = pd.DataFrame({"city": ["a", "b", None, "zz", "c"],
                         "spend": [1.5, np.nan, lo / 2, hi * 10, 0.0],
                         "age": [40.0, np.nan, -20.0, 300.0, 41.5]})
    raw_model = build_model("shared_bottom", spec, bottom_units=[8], tower_units=[4])
    encoded_model = build_model("shared_bottom", spec, encoded_inputs=True, bottom_units=[8], tower_units=[4])
    encoded_model.set_weights(raw_model.get_weights())
    keras_p = raw_model.predict(rows, verbose=0)["clicked"].ravel()

    # The Transform graph on the raw rows (missing values absent from the sparse inputs) -> the pipeline model.
    present = rows.notna().to_numpy()
    inputs = {}
    for j, name in enumerate(rows.columns):
        index = np.flatnonzero(present[:, j])
        values = rows[name].to_numpy()[index]
        values = values.astype(str) if name == "city" else values.astype(np.float32)
        inputs[name] = tf.SparseTensor(np.stack([index, np.zeros_like(index)], 1).astype(np.int64),
                                       tf.constant(values), [len(rows), 1])
    config = transform_config(spec, na_values=transform.PANDAS_NA_VALUES)
    encoded = tf.function(lambda x: transform.preprocessing_fn(x, config))(inputs)
    pipeline_p = encoded_model({k: encoded[k] for k in encoded_model.input_names}, training=False)["clicked"]
    np.testing.assert_allclose(pipeline_p.numpy().ravel(), keras_p, atol=1e-5)

    # The exported serving signature on the same raw rows (missing numbers as NaN, missing strings as "").
    path = save_signatures(raw_model, str(tmp_path / "serving"), spec, warmup=False)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    arrays = spec.feature_arrays(rows)
    served = serve(**{k: tf.constant(v) for k, v in arrays.items()})["clicked"].numpy().ravel()
    np.testing.assert_allclose(served, keras_p, atol=1e-5)
    # The rows differ: out-of-range and missing values reach different predictions, not one clipped value.
    assert len(np.unique(np.round(keras_p, 5))) == len(rows)
