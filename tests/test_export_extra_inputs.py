"""Export of a model with inputs beyond its feature spec (MAMEX modalities): signatures, tf.Example, warmup, REST."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests.export_helpers import call_in_tensorflow_only_process
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.datasets import synthetic_domains
from tfmtl.export import export_saved_model
from tfmtl.features import FeatureSpec, NumericFeature, serving_signature
from tfmtl.models import MAMEX
from tfmtl.models.mamex import modality_specs

SMALL = dict(units=8, num_experts=3, top_k=2, user_units=[8], tower_units=[4], gate_units=[4])
OUTPUTS = ["click", "conversion"]


def _probe_rows(df: pd.DataFrame, modalities: list[dict]) -> pd.DataFrame:
    """Four rows with every modality present, then: image missing, meta and title missing, all missing, unseen user."""
    vectors = [c for m in modalities if "columns" in m for c in m["columns"]]
    present = df[df[vectors].notna().all(axis=1) & (df["title"] != "")].head(4)
    rows = pd.concat([present, present.head(4)], ignore_index=True)
    image = [c for c in vectors if c.startswith("image_")]
    meta = [c for c in vectors if c.startswith("meta_")]
    rows.loc[4, image] = np.nan
    rows.loc[5, meta] = np.nan
    rows.loc[5, "title"] = ""
    rows.loc[6, vectors] = np.nan
    rows.loc[6, "title"] = ""
    rows.loc[7, "user"] = "never-seen"
    return rows


def _serialize(spec: FeatureSpec, model: MAMEX, rows: pd.DataFrame) -> np.ndarray:
    """``tf.Example`` protos of ``rows``: a missing vector modality is a missing key; of the two rows with a
    missing title one sends ``""`` (row 5) and one leaves the key out (row 6)."""
    arrays = model.modality_arrays(rows)
    serialized = []
    for i, (_, row) in enumerate(rows.iterrows()):
        features = {}
        for name, tensor_spec in serving_signature(spec).items():
            if tensor_spec.dtype == tf.string:
                features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(row[name]).encode()]))
            else:
                features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[name])]))
        for name, values in arrays.items():
            if values.dtype == object:
                if values[i] or i == 5:
                    features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[values[i].encode()]))
            elif np.isfinite(values[i]).all():
                features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values[i].tolist()))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return np.array(serialized, dtype=object)


@pytest.fixture(scope="module")
def mamex(tmp_path_factory):
    """A MAMEX (two vector modalities and a text one) trained for one epoch, exported twice and called in a
    TensorFlow-only subprocess."""
    keras.utils.set_random_seed(0)
    df, spec, columns = synthetic_domains.multimodal_frame(300, modalities={"image": 6, "meta": 3}, text=True,
                                                           missing_rate=0.2, seed=0)
    modalities = modality_specs(columns, df)
    model = MAMEX(spec, modalities=modalities, **SMALL)
    model.compile(run_eagerly=True)  # a few eager batches cost less than tracing train_step
    model.fit(df, epochs=1, batch_size=128, verbose=0)
    base = tmp_path_factory.mktemp("exports")
    path = export_saved_model(model, base, "mamex", warmup=df.tail(4))  # rows with missing modalities too
    made_up = export_saved_model(model, base, "mamex_made_up", warmup_records=2)
    rows = _probe_rows(df, modalities)
    expected = {name: value[:, 0] for name, value in model.predict(rows, verbose=0).items()}
    examples = _serialize(spec, model, rows)
    raw = {**spec.feature_arrays(rows), **model.modality_arrays(rows)}
    calls = {path: {export.SERVING_DEFAULT: raw, export.SERVING_TF_EXAMPLE: {"examples": examples},
                    export.REGRESS_PREFIX + "click": {"inputs": examples}},
             made_up: {}}
    loaded = call_in_tensorflow_only_process(base, calls)
    return dict(base=base, path=path, made_up=made_up, model=model, rows=rows, expected=expected, loaded=loaded)


def test_signatures_take_the_extra_inputs_with_their_shapes(mamex):
    from serving.servable import TensorInfo, read_meta_graph

    signature_defs = read_meta_graph(mamex["path"]).signature_def
    inputs = {k: TensorInfo.from_proto(k, v) for k, v in signature_defs[export.SERVING_DEFAULT].inputs.items()}
    got = {k: (info.dtype, info.shape) for k, info in inputs.items()}
    assert got == {"user": (tf.string, (None,)), "age": (tf.float32, (None,)), "image": (tf.float32, (None, 6)),
                   "meta": (tf.float32, (None, 3)), "title": (tf.string, (None,))}
    assert list(signature_defs[export.SERVING_TF_EXAMPLE].inputs) == ["examples"]
    assert signature_defs[export.CLASSIFY_PREFIX + "conversion"].method_name == export.CLASSIFY_METHOD


def test_raw_and_tf_example_signatures_match_predict_with_missing_modalities(mamex):
    result, expected = mamex["loaded"][mamex["path"]], mamex["expected"]
    assert not [m for m in mamex["loaded"]["modules"] if m == "tfmtl" or m.startswith("tfmtl.")]
    assert result["unregistered_ops"] == []
    for signature in (export.SERVING_DEFAULT, export.SERVING_TF_EXAMPLE):
        got = result["outputs"][signature]
        assert sorted(got) == OUTPUTS
        for name in OUTPUTS:
            assert got[name].shape == (8,) and got[name].dtype == np.float32
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=f"{signature}/{name}")
    np.testing.assert_allclose(result["outputs"][export.REGRESS_PREFIX + "click"]["outputs"], expected["click"],
                               atol=1e-5)
    # The missing modalities matter: the same items with every modality present score differently.
    assert not np.allclose(expected["click"][4:7], expected["click"][:3], atol=1e-4)


@pytest.mark.parametrize("which, count", [("path", 4), ("made_up", 2)])
def test_warmup_requests_carry_the_extra_inputs_and_replay(mamex, which, count):
    path = mamex[which]
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(os.path.join(path, export.WARMUP_FILE))]
    assert len(logs) == count
    inputs = logs[0].predict_log.request.inputs
    shapes = {name: tuple(tf.make_ndarray(proto).shape) for name, proto in inputs.items()}
    assert shapes == {"user": (1,), "age": (1,), "image": (1, 6), "meta": (1, 3), "title": (1,)}
    replayed = mamex["loaded"][path]["warmup"]
    assert len(replayed) == count
    assert all(np.isfinite(v).all() and v.shape == (1,) for r in replayed for v in r["outputs"].values())


def test_rest_row_predict_with_list_valued_embeddings(mamex):
    """The tfmtl REST server (TestClient): row-format predict with embedding lists; a missing modality by
    leaving the feature out of a regress example (JSON has no NaN)."""
    from starlette.testclient import TestClient

    from serving import config as config_lib
    from serving.app import create_app
    from serving.manager import ModelManager

    rows, expected, model = mamex["rows"], mamex["expected"], mamex["model"]
    arrays = model.modality_arrays(rows)
    instances = [{"user": rows["user"][i], "age": float(rows["age"][i]), "image": arrays["image"][i].tolist(),
                  "meta": arrays["meta"][i].tolist(), "title": arrays["title"][i]} for i in range(4)]
    config = config_lib.parse_model_server_config(
        f'model_config_list {{ config {{ name: "mamex" base_path: "{mamex["base"] / "mamex"}" '
        'model_platform: "tensorflow" } }')
    with TestClient(create_app(ModelManager(config, poll_wait_seconds=0))) as client:
        response = client.post("/v1/models/mamex:predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        for name in OUTPUTS:
            np.testing.assert_allclose([p[name] for p in predictions], expected[name][:4], atol=1e-5)
        no_image = {k: v for k, v in instances[0].items() if k != "image"}  # row 4: row 0 with the image missing
        response = client.post("/v1/models/mamex:regress", json={"signature_name": "regress_click",
                                                                 "examples": [no_image]})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["results"], expected["click"][4:5], atol=1e-5)


def test_extra_inputs_need_a_known_shape_beyond_the_batch(tmp_path):
    spec = FeatureSpec((NumericFeature("x", mean=0.0, variance=1.0),))
    x = keras.Input(shape=(), name="x")
    v = keras.Input(shape=(None,), name="v")
    p = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Reshape((1,))(x + tf.reduce_sum(v, axis=1)))
    model = keras.Model({"x": x, "v": v}, {"p": p})
    with pytest.raises(ValueError, match=r"extra input 'v' has shape \(None, None\)"):
        export_saved_model(model, tmp_path, "m", spec=spec)
    assert os.listdir(tmp_path) == []
