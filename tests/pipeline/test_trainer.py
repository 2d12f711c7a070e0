"""The Trainer's run_fn on a Transform output: training, strategies, mixed precision and the export."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline import trainer
from pipeline.config import TrainingConfig, trainer_config
from pipeline.distribution import choose_strategy, cluster_workers
from pipeline.signatures import EVAL_FEATURES_SIGNATURE, EVAL_SIGNATURE
from tests.pipeline.conftest import EVAL_ROWS, SHORT_RUN, SMALL_MMOE, serialize
from tfmtl.compat import keras
from tfmtl.datasets import census
from tfmtl.features import FeatureSpec, encoded_names
from tfmtl.training import MeanOverTasks, WeightAveraging

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _train(transform_output, out_dir, **training):
    config = trainer_config(transform_output.spec, TrainingConfig("mmoe", SMALL_MMOE, batch_size=64,
                                                                  **{**SHORT_RUN, **training}))
    fn_args = transform_output.fn_args(config, str(out_dir))
    trainer.run_fn(fn_args)
    return fn_args


def _keras_path(fn_args) -> str:
    return os.path.join(trainer.keras_model_dir(fn_args.serving_model_dir), trainer.KERAS_MODEL_FILE)


def _report(fn_args) -> dict:
    with open(os.path.join(fn_args.model_run_dir, trainer.REPORT_FILE)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def trained(transform_output, tmp_path_factory):
    return _train(transform_output, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def clean_eval():
    return census.read_census_csv(os.path.join(census.DATA_DIR, "test.csv.gz"), nrows=EVAL_ROWS)


def _trainer_predictions(fn_args, transform_output) -> dict[str, np.ndarray]:
    """The trained Keras model on the Transform graph's output for the eval rows."""
    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(transform_output.transform_graph)
    raw = tf.io.parse_example(serialize(transform_output.eval), tft_output.raw_feature_spec())
    transformed = tft_output.transform_features_layer()(raw)
    model = keras.models.load_model(_keras_path(fn_args))
    predictions = model.predict({n: transformed[n] for n in encoded_names(transform_output.spec)}, verbose=0)
    return {name: value[:, 0] for name, value in predictions.items()}


def test_run_fn_trains_and_exports_every_signature(trained):
    loaded = tf.saved_model.load(trained.serving_model_dir)
    assert set(loaded.signatures) == {
        "serving_default", "serving_tf_example", "classify_income_50k", "classify_never_married",
        "regress_income_50k", "regress_never_married", EVAL_SIGNATURE, EVAL_FEATURES_SIGNATURE}
    report = _report(trained)
    assert report["replicas"] == 1 and len(report["history"]["loss"]) == report["epochs_run"]
    assert os.path.isdir(os.path.join(trained.model_run_dir, "train"))  # TensorBoard logs
    assert os.path.exists(os.path.join(trained.serving_model_dir, "assets.extra", "tf_serving_warmup_requests"))


def test_the_next_run_warm_starts_from_the_base_model(trained, transform_output, tmp_path, caplog):
    """TFX hands the Trainer the last blessed model as base_model (its Format-Serving path); run_fn finds the
    Keras copy beside it and starts from its weights: before any step the new model scores as the old one."""
    config = trainer_config(transform_output.spec, TrainingConfig("mmoe", SMALL_MMOE, batch_size=64, epochs=1,
                                                                  patience=0, lr_patience=0))
    fn_args = transform_output.fn_args(config, str(tmp_path / "second"))
    fn_args.base_model = trained.serving_model_dir
    kept_spec = FeatureSpec.load(os.path.join(trainer.keras_model_dir(trained.serving_model_dir), trainer.SPEC_FILE))
    assert kept_spec == transform_output.spec
    trainer.run_fn(fn_args)
    entry = _report(fn_args)["warm_start"]
    assert entry["from"] == _keras_path(trained)
    assert sum(entry["carried"].values()) > 0 and set(entry["new"].values()) == {0}  # the same vocabularies
    assert entry["weights"] > 0
    # A base model without a Keras copy (exported before the Trainer kept one): from scratch, with a warning.
    scratch = transform_output.fn_args(config, str(tmp_path / "scratch"))
    scratch.base_model = str(tmp_path / "old" / "Format-Serving")
    with caplog.at_level("WARNING"):
        trainer.run_fn(scratch)
    assert _report(scratch)["warm_start"] is None and "training from scratch" in caplog.text


def test_serving_signatures_match_the_trained_model(trained, transform_output, clean_eval):
    """Raw JSON-style features (clean, spec-typed) through the exported Transform layer give the
    Trainer's predictions; so do the ExampleGen's own examples through the eval signature."""
    spec = transform_output.spec
    expected = _trainer_predictions(trained, transform_output)
    loaded = tf.saved_model.load(trained.serving_model_dir)
    raw = {name: tf.constant(values) for name, values in spec.feature_arrays(clean_eval).items()}
    served = loaded.signatures["serving_default"](**raw)
    from_examples = loaded.signatures[EVAL_SIGNATURE](examples=tf.constant(serialize(transform_output.eval)))
    for task in spec.label_names:
        np.testing.assert_allclose(served[task].numpy(), expected[task], atol=1e-5)
        np.testing.assert_allclose(from_examples[task].numpy(), expected[task], atol=1e-5)


def test_the_eval_signature_keeps_tfma_cross_entropy_finite_for_saturated_predictions(trained, transform_output):
    """A prediction of exactly 0 or 1 reaches TFMA clipped as Keras' loss clips it, not as a NaN loss."""
    import tensorflow_transform as tft

    from pipeline import signatures

    tft_output = tft.TFTransformOutput(transform_output.transform_graph)
    model = keras.models.load_model(_keras_path(trained))
    examples = tf.constant(serialize(transform_output.eval))
    for saturate in (tf.ones_like, tf.zeros_like):
        def saturated(inputs, training=False, saturate=saturate):
            return {name: saturate(value) for name, value in model(inputs, training=training).items()}

        fn = signatures.eval_signatures(saturated, tft_output.transform_features_layer(), transform_output.spec,
                                        tft_output.raw_feature_spec(), encoded_names(transform_output.spec))
        for task, value in fn[EVAL_SIGNATURE](examples=examples).items():
            p = value.numpy()
            assert np.all((p > 0) & (p < 1)), task
            for label in (0.0, 1.0):  # TFMA's per-example binary cross-entropy, unclipped
                assert np.all(np.isfinite(-(label * np.log(p) + (1 - label) * np.log(1 - p)))), task


def test_eval_features_give_labels_and_clean_slices(trained, transform_output, clean_eval):
    spec = transform_output.spec
    loaded = tf.saved_model.load(trained.serving_model_dir)
    features = loaded.signatures[EVAL_FEATURES_SIGNATURE](examples=tf.constant(serialize(transform_output.eval)))
    for label in spec.label_names:
        np.testing.assert_array_equal(features[label].numpy(), spec.label_array(clean_eval, label)[:, 0])
    assert [v.decode() for v in features["sex"].numpy()] == clean_eval["sex"].tolist()


def test_mixed_precision_on_cpu(transform_output, tmp_path, clean_eval):
    fn_args = _train(transform_output, tmp_path, mixed_precision="mixed_float16")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the Trainer
    assert _report(fn_args)["mixed_precision"] == "mixed_float16"
    loaded = tf.saved_model.load(fn_args.serving_model_dir)
    spec = transform_output.spec
    served = loaded.signatures["serving_default"](
        **{name: tf.constant(values) for name, values in spec.feature_arrays(clean_eval).items()})
    for task in spec.label_names:
        assert served[task].dtype == tf.float32 and np.all(np.isfinite(served[task].numpy()))
    assert np.isfinite(_report(fn_args)["history"]["loss"][0])


def test_mirrored_strategy_on_two_logical_cpus(transform_output, tmp_path):
    config = trainer_config(transform_output.spec, TrainingConfig("mmoe", SMALL_MMOE, batch_size=32, **SHORT_RUN,
                                                                  distribution="mirrored"))
    _run_process(transform_output.directory, tmp_path, config, cpus=2)
    with open(tmp_path / "model_run" / trainer.REPORT_FILE) as f:
        report = json.load(f)
    assert report["strategy"] == "MirroredStrategy" and report["replicas"] == 2
    assert report["global_batch_size"] == 64
    assert tf.saved_model.load(str(tmp_path / "Format-Serving")).signatures["serving_default"] is not None


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_from_tf_config(transform_output, tmp_path):
    """Two worker processes on localhost, as a TF_CONFIG cluster; the chief writes the model."""
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    config = trainer_config(transform_output.spec, TrainingConfig("mmoe", SMALL_MMOE, batch_size=32, **SHORT_RUN))
    config["_train_steps"] = 4  # same number of steps on both workers
    processes = [_start_process(transform_output.directory, tmp_path, config,
                                env={"TF_CONFIG": json.dumps({"cluster": cluster,
                                                              "task": {"type": "worker", "index": i}})})
                 for i in range(2)]
    for process in processes:
        out, _ = process.communicate(timeout=900)
        assert process.returncode == 0, out[-3000:]
    with open(tmp_path / "model_run" / trainer.REPORT_FILE) as f:
        report = json.load(f)
    assert report["strategy"] == "MultiWorkerMirroredStrategy" and report["replicas"] == 2
    assert tf.saved_model.load(str(tmp_path / "Format-Serving")).signatures["serving_default"] is not None


def test_strategy_choice(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_workers() == 0
    assert isinstance(choose_strategy("auto"), type(tf.distribute.get_strategy()))  # no GPU here
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert cluster_workers() == 3
    with pytest.raises(ValueError, match="unknown distribution"):
        choose_strategy("tpu")


def test_training_config_checks_and_esmm_outputs(census_slice):
    spec = census_slice.spec
    assert TrainingConfig("esmm", tasks=spec.label_names).output_labels(spec) == {
        "ctr": "income_50k", "ctcvr": "never_married"}
    assert TrainingConfig("ple").output_labels(spec) == {"income_50k": "income_50k", "never_married": "never_married"}
    with pytest.raises(ValueError, match="unknown model"):
        TrainingConfig("nope")
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainingConfig(mixed_precision="float8")
    with pytest.raises(ValueError, match="distribution"):
        TrainingConfig(distribution="parameter_servers")


# ------------------------------------------------------------------ helpers
def _start_process(transform_dir, out_dir, config, cpus=1, env=None):
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, os.path.join(HERE, "run_fn_process.py"), transform_dir, str(out_dir),
                             json.dumps(config), str(cpus)], env=environment, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_process(transform_dir, out_dir, config, cpus=1):
    process = _start_process(transform_dir, out_dir, config, cpus)
    out, _ = process.communicate(timeout=900)
    assert process.returncode == 0, out[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_pid_weighting_from_the_config(transform_output, tmp_path):
    fn_args = _train(transform_output, tmp_path, weighting="pid",
                     weighting_args={"accuracy_objective": "income_50k", "set_point": 0.3})
    history = _report(fn_args)["history"]
    assert {"q_income_50k", "loss_income_50k", "loss_never_married"} <= set(history)
    assert history["q_income_50k"][0] > 0  # the controller set the accuracy weight
    loaded = tf.saved_model.load(fn_args.serving_model_dir)  # the plain model is exported, not the wrapper
    assert {"serving_default", "classify_income_50k"} <= set(loaded.signatures)
    with pytest.raises(ValueError, match="weighting must be one of"):
        TrainingConfig("mmoe", weighting="bogus")


def test_training_stops_early_and_reports_the_kept_epoch(trained):
    """The Trainer trains to convergence: at most the epoch cap, best mean eval AUC epoch kept and evaluated."""
    report = _report(trained)
    history = report["history"]
    aucs = history["val_auc"]
    assert aucs == pytest.approx([(a + b) / 2 for a, b in zip(history["val_income_50k_auc"],
                                                               history["val_never_married_auc"])])
    assert 1 <= report["epochs_run"] == len(aucs) <= SHORT_RUN["epochs"]
    assert report["best_epoch"] == aucs.index(max(aucs)) + 1
    with pytest.raises(ValueError, match="patience"):
        TrainingConfig(patience=-1)


@pytest.mark.parametrize("patience, lr_patience", [(1, 1), (3, 3), (3, -1)])
def test_a_learning_rate_cut_that_could_never_be_tried_is_refused(patience, lr_patience):
    with pytest.raises(ValueError, match=rf"lr_patience must be 0 \(fixed rate\) or between 1 and patience - 1 "
                                         rf"\({patience - 1}\), got {lr_patience}"):
        TrainingConfig(patience=patience, lr_patience=lr_patience)
    assert TrainingConfig(patience=3, lr_patience=2).lr_patience == 2
    with pytest.raises(ValueError, match="lr_patience acts with early stopping: with patience 0 it must be 0, got 1"):
        TrainingConfig(patience=0, lr_patience=1)


def test_the_trainer_validates_and_keeps_averaged_weights_unless_told_not_to():
    averaging, mean, stop = TrainingConfig(**SHORT_RUN).callbacks()  # patience 1, fixed rate, averaging 0.99
    assert isinstance(averaging, WeightAveraging) and averaging.decay == 0.99
    assert isinstance(mean, MeanOverTasks) and mean.metric == "auc"
    assert isinstance(stop, keras.callbacks.EarlyStopping) and stop.patience == 1
    assert stop.monitor == "val_auc" and stop.monitor_op == np.greater
    assert [type(c) for c in TrainingConfig(patience=0, lr_patience=0).callbacks()] == [WeightAveraging]
    assert TrainingConfig(patience=0, lr_patience=0, weight_averaging=0).callbacks() == []
    with pytest.raises(ValueError, match=r"averaging must be 0 or None \(off\) or a decay in \(0, 1\), got 1.2"):
        TrainingConfig(weight_averaging=1.2)
    with pytest.raises(ValueError, match=r"WeightAveraging: decay must be in \(0, 1\), got -0.5"):
        TrainingConfig(patience=0, lr_patience=0, weight_averaging=-0.5)
    *_, loss_stop = TrainingConfig(patience=2, monitor="val_loss").callbacks()
    assert loss_stop.monitor == "val_loss" and loss_stop.monitor_op == np.less
    with pytest.raises(ValueError, match=r"monitor must be one of \('val_auc', 'val_loss'\), got 'auc'"):
        TrainingConfig(monitor="auc")
