"""Export of a model with list features: raw [batch, width] lists, var-len tf.Example lists, REST parity."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.export_helpers import call_in_tensorflow_only_process
from tests.models.test_list_features import list_frame, list_spec
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.export import export_saved_model
from tfmtl.features import ListFeature
from tfmtl.features.spec import list_array
from tfmtl.models import MMoE

OUTPUTS = ("task_a", "task_b")


def probe_rows() -> pd.DataFrame:
    """Rows with an empty list, a missing cell, over-long lists and unseen values."""
    return pd.DataFrame({
        "item": ["a", "b", "c", "zz", "d"],
        "x": [0.5, -1.0, 0.0, 2.0, 1.0],
        "history": [["a", "b"], [], None, ["f", "e", "d", "c", "b", "a", "a", "zz", "c"], ["qq"]],
        "genres": [[1, 2], [3], [], [0, 1, 2, 3, 0, 1, 2], None],
    })


def client_padded(spec, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a client sends to serving_default: lists padded to the batch's longest row (not cut to max_length)."""
    arrays = spec.feature_arrays(rows)
    for feature in spec.lists:
        arrays[feature.name] = list_array(rows[feature.name], 10, feature.dtype, feature.name)
    return arrays


def example_protos(spec, rows: pd.DataFrame) -> np.ndarray:
    """tf.Examples with var-len lists; an empty or missing list is a missing key."""
    serialized = []
    for _, row in rows.iterrows():
        features = {}
        for feature in spec.features:
            value = row[feature.name]
            values = list(value) if isinstance(value, (list, np.ndarray)) else ([] if value is None else [value])
            if not values:
                continue
            if spec.raw_dtype(feature) == "string":
                features[feature.name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[str(v).encode() for v in values]))
            elif spec.raw_dtype(feature) == "int64":
                features[feature.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
            else:
                features[feature.name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return np.array(serialized, dtype=object)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    df = list_frame(128)
    spec = list_spec(df)
    model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4], history_attention={"history": "item"},
                 attention_units=[8])
    model.compile(run_eagerly=True)
    model.fit(df, epochs=1, batch_size=64, verbose=0)
    base = tmp_path_factory.mktemp("exports")
    path = export_saved_model(model, base, "lists", warmup=None, warmup_records=6)
    rows = probe_rows()
    expected = {name: value[:, 0] for name, value in model.predict(rows, verbose=0).items()}
    examples = example_protos(spec, rows)
    calls = {path: {export.SERVING_DEFAULT: client_padded(spec, rows),
                    export.SERVING_TF_EXAMPLE: {"examples": examples},
                    **{export.CLASSIFY_PREFIX + name: {"inputs": examples} for name in OUTPUTS},
                    **{export.REGRESS_PREFIX + name: {"inputs": examples} for name in OUTPUTS}}}
    loaded = call_in_tensorflow_only_process(base, calls)
    return dict(base=base, path=path, spec=spec, model=model, rows=rows, expected=expected, loaded=loaded[path])


def test_signatures_take_lists_and_match_keras(exported):
    spec, loaded, expected = exported["spec"], exported["loaded"], exported["expected"]
    # Lists are [batch, any width] in the raw signature; max_length is applied inside the graph.
    assert [s.shape.as_list() for s in export.signatures.serving_signature(spec).values()] == [
        [None], [None], [None, None], [None, None]]
    assert isinstance(spec.feature("history"), ListFeature) and spec.feature("history").max_length == 4
    assert loaded["unregistered_ops"] == []
    outputs = loaded["outputs"]
    for name in OUTPUTS:
        np.testing.assert_allclose(outputs[export.SERVING_DEFAULT][name], expected[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[export.SERVING_TF_EXAMPLE][name], expected[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[export.CLASSIFY_PREFIX + name]["scores"][:, 1], expected[name],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[export.REGRESS_PREFIX + name]["outputs"], expected[name], rtol=1e-5,
                                   atol=1e-6)
    # The over-long rows were cut to their last max_length values: the same as sending only those.
    model, rows = exported["model"], exported["rows"]
    cut = rows.assign(**{f.name: [None if v is None else list(v)[-f.max_length:] for v in rows[f.name]]
                         for f in spec.lists})
    assert cut["history"][3] == ["a", "a", "zz", "c"]
    np.testing.assert_allclose(model.predict(cut, verbose=0)["task_a"][:, 0], expected["task_a"], rtol=1e-6)


def test_warmup_made_up_list_rows_replay(exported):
    replayed = exported["loaded"]["warmup"]
    assert len(replayed) == 6
    assert all(np.isfinite(r["outputs"][name]).all() for r in replayed for name in OUTPUTS)


def test_rest_predict_and_classify_match_keras(exported):
    """The serving app (read-only use) answers REST predict and classify with the Keras predictions."""
    from starlette.testclient import TestClient

    from serving.app import create_app
    from serving.manager import ModelManager
    from tests.serving.conftest import server_config

    spec, rows, expected = exported["spec"], exported["rows"], exported["expected"]
    manager = ModelManager(server_config({"lists": str(exported["base"] / "lists")}), poll_wait_seconds=0)
    padded = client_padded(spec, rows)
    instances = [{name: values[i : i + 1].tolist()[0]
                  for name, values in padded.items()} for i in range(len(rows))]
    examples = []
    for _, row in rows.iterrows():
        example = {"item": row["item"], "x": float(row["x"])}
        for feature in spec.lists:
            value = row[feature.name]
            if value is not None:  # an empty list is sent as [] (an empty feature), a missing one not at all
                example[feature.name] = [v.item() if isinstance(v, np.generic) else v for v in value]
        examples.append(example)
    with TestClient(create_app(manager)) as client:
        predicted = client.post("/v1/models/lists:predict", json={"instances": instances})
        assert predicted.status_code == 200, predicted.text
        got = predicted.json()["predictions"]
        for name in OUTPUTS:
            np.testing.assert_allclose([p[name] for p in got], expected[name], rtol=1e-5, atol=1e-6)
        classified = client.post("/v1/models/lists:classify",
                                 json={"signature_name": export.CLASSIFY_PREFIX + "task_a", "examples": examples})
        assert classified.status_code == 200, classified.text
        scores = [result[1][1] for result in classified.json()["results"]]  # [["0", p0], ["1", p1]]
        np.testing.assert_allclose(scores, expected["task_a"], rtol=1e-5, atol=1e-6)
