"""SavedModel export: signatures served by TensorFlow alone, atomic versioned writes, warmup, errors."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests.export_helpers import call_in_tensorflow_only_process
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.export import export_saved_model, save_signatures
from tfmtl.features import FeatureSpec, NumericFeature, serving_signature
from tfmtl.models import ESMM, FSMD, MMoE

BIN = os.path.dirname(sys.executable)
MODELS = {
    "mmoe": (MMoE, "multitask_data", dict(num_experts=2, expert_units=[8], tower_units=[4])),
    "esmm": (ESMM, "funnel_data", dict(tasks=["click", "conversion"], tower_units=[8])),
    "fsmd": (FSMD, "funnel_data", dict(tasks=["click", "conversion"], num_levels=1, expert_units=[8],
                                       tower_units=[4])),
}
WARMUP = {"mmoe": "dataframe", "esmm": "made_up", "fsmd": "made_up"}


# ------------------------------------------------------------------ helpers
def _probe_rows(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """A few real rows, one of unseen values and one with every feature missing."""
    rows = df[spec.feature_names].head(6).copy()
    unseen = {f.name: "never-seen" if spec.raw_dtype(f) == "string" else 10_000 for f in spec.features}
    missing = {name: None for name in spec.feature_names}
    rows = pd.concat([rows, pd.DataFrame([unseen, missing])], ignore_index=True)
    for feature in spec.numeric:
        rows[feature.name] = rows[feature.name].astype(float)
    return rows


def _serialize(spec: FeatureSpec, rows: pd.DataFrame) -> np.ndarray:
    """``tf.Example`` protos of ``rows``; a missing value is a missing key."""
    serialized = []
    for _, row in rows.iterrows():
        features = {}
        for name, tensor_spec in serving_signature(spec).items():
            value = row[name]
            if pd.isna(value):
                continue
            if tensor_spec.dtype == tf.string:
                features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
            elif tensor_spec.dtype == tf.int64:
                features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            else:
                features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return np.array(serialized, dtype=object)


def _tiny_model(dtype: str = "float32") -> tuple[keras.Model, FeatureSpec]:
    """A one-feature Keras model (not a tfmtl model): exports in well under a second."""
    spec = FeatureSpec((NumericFeature("x", mean=1.0, variance=4.0),))
    x = keras.Input(shape=(), name="x", dtype=dtype)
    p = keras.layers.Dense(1, activation="sigmoid", name="p")(keras.layers.Reshape((1,))(tf.cast(x, "float32")))
    return keras.Model({"x": x}, {"p": p}), spec


def _entries(directory) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# ------------------------------------------------------------------ exports loaded by TensorFlow alone
@pytest.fixture(scope="module")
def exported(request, tmp_path_factory):
    """Trains and exports each model, then calls every signature in one TensorFlow-only subprocess."""
    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("exports")
    cases, calls = {}, {}
    for key, (cls, data, kwargs) in MODELS.items():
        df, spec = request.getfixturevalue(data)
        model = cls(spec, **kwargs)
        model.compile(run_eagerly=True)  # a few eager batches cost less than tracing train_step
        model.fit(df, epochs=1, batch_size=256, verbose=0)
        warmup = df if WARMUP[key] == "dataframe" else None
        path = export_saved_model(model, base, key, warmup=warmup, warmup_records=4 if warmup is None else 10)
        rows = _probe_rows(df, spec)
        expected = {name: value[:, 0] for name, value in model.predict(rows, verbose=0).items()}
        examples = _serialize(spec, rows)
        calls[path] = {export.SERVING_DEFAULT: spec.feature_arrays(rows),
                       export.SERVING_TF_EXAMPLE: {"examples": examples}}
        for name in model.output_names:
            calls[path][export.CLASSIFY_PREFIX + name] = {"inputs": examples}
            calls[path][export.REGRESS_PREFIX + name] = {"inputs": examples}
        cases[key] = dict(path=path, model=model, expected=expected, outputs=list(model.output_names))
    loaded = call_in_tensorflow_only_process(base, calls)
    return base, cases, loaded


@pytest.mark.parametrize("key", list(MODELS))
def test_every_signature_matches_the_in_process_model(exported, key):
    _, cases, loaded = exported
    case = cases[key]
    result = loaded[case["path"]]
    outputs = case["outputs"]
    expected_names = {export.SERVING_DEFAULT, export.SERVING_TF_EXAMPLE}
    expected_names |= {prefix + o for o in outputs for prefix in (export.CLASSIFY_PREFIX, export.REGRESS_PREFIX)}
    assert set(result["signatures"]) == expected_names
    for signature in (export.SERVING_DEFAULT, export.SERVING_TF_EXAMPLE):
        got = result["outputs"][signature]
        assert sorted(got) == sorted(outputs)
        for name in outputs:
            assert got[name].shape == case["expected"][name].shape and got[name].dtype == np.float32
            np.testing.assert_allclose(got[name], case["expected"][name], atol=1e-6, err_msg=f"{signature}/{name}")
    for name in outputs:
        p = case["expected"][name]
        classify = result["outputs"][export.CLASSIFY_PREFIX + name]
        assert classify["classes"].tolist() == [[b"0", b"1"]] * len(p)
        np.testing.assert_allclose(classify["scores"], np.stack([1 - p, p], axis=1), atol=1e-6)
        np.testing.assert_allclose(result["outputs"][export.REGRESS_PREFIX + name]["outputs"], p, atol=1e-6)
        assert result["methods"][export.CLASSIFY_PREFIX + name] == "tensorflow/serving/classify"
        assert result["methods"][export.REGRESS_PREFIX + name] == "tensorflow/serving/regress"
    assert result["methods"][export.SERVING_DEFAULT] == "tensorflow/serving/predict"


def test_esmm_exports_ctr_cvr_and_their_product(exported):
    _, cases, _ = exported
    expected = cases["esmm"]["expected"]
    assert sorted(expected) == ["ctcvr", "ctr", "cvr"]
    np.testing.assert_allclose(expected["ctcvr"], expected["ctr"] * expected["cvr"], rtol=1e-5)


def test_loader_needs_tensorflow_only_and_core_ops(exported):
    _, cases, loaded = exported
    assert not [m for m in loaded["modules"] if m == "tfmtl" or m.startswith("tfmtl.")]
    for case in cases.values():
        assert loaded[case["path"]]["unregistered_ops"] == []


def test_warmup_file_holds_predict_requests_that_replay(exported):
    _, cases, loaded = exported
    for key, case in cases.items():
        path = os.path.join(case["path"], export.WARMUP_FILE)
        logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        assert len(logs) == (10 if WARMUP[key] == "dataframe" else 4)
        request = logs[0].predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == (key, "serving_default")
        assert sorted(request.inputs) == sorted(case["model"].spec.feature_names)
        replayed = loaded[case["path"]]["warmup"]
        assert len(replayed) == len(logs)
        assert all(np.isfinite(v).all() and v.shape == (1,) for r in replayed for v in r["outputs"].values())


def test_saved_model_cli_lists_the_signatures(exported):
    _, cases, _ = exported
    shown = subprocess.run([os.path.join(BIN, "saved_model_cli"), "show", "--dir", cases["esmm"]["path"], "--all"],
                           check=True, capture_output=True, text=True).stdout
    for name in ("serving_default", "serving_tf_example", "classify_ctr", "regress_ctcvr"):
        assert f"signature_def['{name}']" in shown
    assert "Method name is: tensorflow/serving/classify" in shown
    assert "inputs['examples'] tensor_info" in shown and "outputs['cvr'] tensor_info" in shown


def test_export_holds_no_optimizer_state_or_keras_traces(exported):
    _, cases, _ = exported
    path = cases["mmoe"]["path"]
    names = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]
    assert not [n for n in names if "optimizer" in n.lower()]
    assert not os.path.exists(os.path.join(path, "keras_metadata.pb"))


# ------------------------------------------------------------------ versions and atomic writes
def test_versions_count_up_from_the_largest_existing_one(tmp_path):
    model, spec = _tiny_model()
    base = tmp_path / "models"
    kwargs = dict(spec=spec, warmup=False)
    assert export_saved_model(model, base, "tiny", **kwargs) == str(base / "tiny" / "1")
    assert export_saved_model(model, base, "tiny", **kwargs) == str(base / "tiny" / "2")
    assert export_saved_model(model, str(base), "tiny", version=7, **kwargs) == str(base / "tiny" / "7")
    (base / "tiny" / "not-a-version").mkdir()
    (base / "tiny" / "99.bak").mkdir()
    assert export_saved_model(model, base, "tiny", **kwargs) == str(base / "tiny" / "8")
    assert _entries(base / "tiny") == ["1", "2", "7", "8", "99.bak", "not-a-version"]
    assert all(os.path.exists(base / "tiny" / v / "saved_model.pb") for v in ("1", "2", "7", "8"))


def test_an_existing_version_is_never_overwritten(tmp_path):
    model, spec = _tiny_model()
    path = export_saved_model(model, tmp_path, "tiny", spec=spec, version=3, warmup=False)
    before = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(model, tmp_path, "tiny", spec=spec, version=3, warmup=False)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before
    assert _entries(tmp_path / "tiny") == ["3"]


def test_a_failed_save_leaves_no_version_and_no_temp_dir(tmp_path, monkeypatch):
    model, spec = _tiny_model()
    export_saved_model(model, tmp_path, "tiny", spec=spec, warmup=False)

    def crash(path, *args):  # after tf.saved_model.save has filled the staging directory
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
        raise RuntimeError("disk full")

    monkeypatch.setattr(export.writer, "write_warmup", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, tmp_path, "tiny", spec=spec)
    assert _entries(tmp_path / "tiny") == ["1"]
    with pytest.raises(RuntimeError, match="disk full"):
        save_signatures(model, tmp_path / "plain", spec)
    assert _entries(tmp_path) == ["tiny"]


def test_a_version_that_appears_during_the_save_is_kept(tmp_path, monkeypatch):
    model, spec = _tiny_model()
    target = tmp_path / "tiny" / "1"

    def concurrent_export(path, *args):
        target.mkdir()
        (target / "saved_model.pb").write_bytes(b"theirs")

    monkeypatch.setattr(export.writer, "write_warmup", concurrent_export)
    with pytest.raises(FileExistsError):
        export_saved_model(model, tmp_path, "tiny", spec=spec)
    assert _entries(tmp_path / "tiny") == ["1"] and (target / "saved_model.pb").read_bytes() == b"theirs"


# ------------------------------------------------------------------ save_signatures (the TFX Trainer's entry)
def test_save_signatures_writes_a_plain_saved_model_with_tracked_preprocessing(tmp_path):
    model, spec = _tiny_model()
    scale = tf.Module()
    scale.factor = tf.Variable(2.0)  # stands in for the TFT layer: state raw_fn uses beyond the model
    raw_fn = lambda raw: model({"x": raw["x"] * scale.factor})  # noqa: E731
    with pytest.raises(ValueError, match="track"):
        save_signatures(model, tmp_path / "untracked", spec, raw_fn, warmup=False)
    assert _entries(tmp_path) == []
    scaled = tf.function(lambda x: {"y": x * scale.factor}).get_concrete_function(tf.TensorSpec([None], name="x"))
    with pytest.raises(ValueError, match=r"extra_signatures \['serving_default'\] clash"):
        save_signatures(model, tmp_path / "clash", spec, raw_fn, track=[scale],
                        extra_signatures={"serving_default": scaled})
    path = save_signatures(model, tmp_path / "serving_model_dir", spec, raw_fn, ["p"], track=[scale],
                           model_name="tiny", extra_signatures={"scaled_x": scaled})
    assert path == str(tmp_path / "serving_model_dir") and os.path.exists(os.path.join(path, "saved_model.pb"))
    assert _entries(tmp_path) == ["serving_model_dir"]
    loaded = tf.saved_model.load(path)
    x = tf.constant([0.5, -1.0])
    expected = model({"x": x * 2.0})["p"].numpy()[:, 0]
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=x)["p"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.signatures["scaled_x"](x=x)["y"].numpy(), [1.0, -2.0])
    with pytest.raises(FileExistsError):
        save_signatures(model, path, spec, raw_fn, track=[scale])


def test_remote_paths_are_copied_with_saved_model_pb_last(monkeypatch):
    model, spec = _tiny_model()
    copied = []
    copy = tf.io.gfile.copy
    monkeypatch.setattr(tf.io.gfile, "copy", lambda src, dst, *a, **k: (copied.append(dst), copy(src, dst, *a, **k)))
    path = export_saved_model(model, "ram://exports", "tiny", spec=spec)
    assert path == "ram://exports/tiny/1" and copied[-1] == "ram://exports/tiny/1/saved_model.pb"
    assert any(c.endswith(export.WARMUP_FILE) for c in copied)
    assert export_saved_model(model, "ram://exports", "tiny", spec=spec, warmup=False) == "ram://exports/tiny/2"


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x y", None])
def test_model_names_must_be_one_plain_directory(tmp_path, name):
    model, spec = _tiny_model()
    with pytest.raises(ValueError, match="model_name"):
        export_saved_model(model, tmp_path, name, spec=spec)
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("version, error", [(-1, ValueError), ("3", TypeError), (True, TypeError), (2.0, TypeError)])
def test_versions_must_be_non_negative_integers(tmp_path, version, error):
    model, spec = _tiny_model()
    with pytest.raises(error, match="version"):
        export_saved_model(model, tmp_path, "tiny", spec=spec, version=version)


def test_bad_arguments_get_clear_errors(tmp_path):
    model, spec = _tiny_model()
    with pytest.raises(TypeError, match="Keras model or tf.Module, got str"):
        export_saved_model("model.keras", tmp_path, "m", spec=spec)
    with pytest.raises(TypeError, match="has no .spec; pass spec="):
        export_saved_model(model, tmp_path, "m")
    with pytest.raises(ValueError, match=r"warmup_records must be an integer in \[1, 1000\]"):
        export_saved_model(model, tmp_path, "m", spec=spec, warmup_records=1001)
    with pytest.raises(TypeError, match="warmup must be a DataFrame"):
        export_saved_model(model, tmp_path, "m", spec=spec, warmup="rows.csv")
    with pytest.raises(ValueError, match=r"outputs \['nope'\] are not among"):
        save_signatures(model, tmp_path / "m", spec, outputs=["nope"])
    with pytest.raises(TypeError, match="raw_fn must return a dict"):
        export_saved_model(model, tmp_path, "m", spec=spec, raw_fn=lambda raw: raw["x"])
    with pytest.raises(ValueError, match="expected one probability per example"):
        export_saved_model(model, tmp_path, "m", spec=spec, raw_fn=lambda raw: {"p": tf.stack([raw["x"]] * 2, 1)})
    encoded, _ = _tiny_model(dtype="int64")  # e.g. a model on TFX Transform output
    with pytest.raises(ValueError, match=r"not the spec's raw features .*tft_layer"):
        export_saved_model(encoded, tmp_path, "m", spec=spec)
    assert _entries(tmp_path) == []
