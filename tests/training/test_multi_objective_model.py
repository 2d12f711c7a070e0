import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import two_task_model

from tfmtl.compat import keras
from tfmtl.training import MultiObjectiveModel, PIDController, PIDWeighting, StaticWeights, UncertaintyWeighting

HERE = os.path.dirname(os.path.abspath(__file__))


def bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).reshape(-1)


def pid_model(jit=False, **kwargs):
    controller = PIDController(set_point=0.3, kp=0.01, ki=0.001, q_min=0.5)
    model = MultiObjectiveModel(
        two_task_model(),
        {"income": ("ctr", "binary_crossentropy"), "marital": ("cvr", keras.losses.BinaryCrossentropy())},
        accuracy_objective="income",
        weighting=PIDWeighting("income", controller, preferences={"marital": 1.0}, auxiliary_scale=0.2),
        **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=jit)
    return model, controller


def test_fit_history_holds_losses_and_weights(data):
    x, y = data
    model, controller = pid_model()
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert set(history) == {"loss", "loss_income", "loss_marital", "q_income", "q_marital"}
    assert all(len(v) == 3 and np.all(np.isfinite(v)) for v in history.values())
    assert history["q_marital"] == pytest.approx([0.2] * 3)
    # q_* is the weight in force at the end of the epoch: the controller's last output.
    assert history["q_income"][-1] == pytest.approx(float(controller.weight))
    assert int(controller.steps) == 3 * 4
    # Validation reports the same names and does not step the controller.
    result = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert int(controller.steps) == 12 and set(result) == set(history)


def test_losses_respect_objective_sample_weights(data):
    x, y = data
    base = two_task_model()
    model = MultiObjectiveModel(
        base, {"accuracy": ("ctr", "binary_crossentropy"), "revenue": ("ctr", "binary_crossentropy"),
               "cvr": "binary_crossentropy"},
        weighting=StaticWeights({"revenue": 0.5, "cvr": 2.0}))
    model.compile(optimizer="sgd")
    revenue = np.linspace(0.0, 2.0, 64).astype("float32")
    cvr_w = np.where(np.arange(64) % 2 == 0, 1.0, 3.0).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y, {"revenue": revenue, "cvr": cvr_w})).batch(64)
    result = model.evaluate(ds, verbose=0, return_dict=True)

    pred = base.predict(x, verbose=0)
    acc = bce(y["ctr"], pred["ctr"])
    want = {"loss_accuracy": acc.mean(), "loss_revenue": (acc * revenue).mean(),
            "loss_cvr": (bce(y["cvr"], pred["cvr"]) * cvr_w).mean()}
    for name, value in want.items():
        assert result[name] == pytest.approx(value, rel=1e-5), name
    total = want["loss_accuracy"] + 0.5 * want["loss_revenue"] + 2.0 * want["loss_cvr"]
    assert result["loss"] == pytest.approx(total, rel=1e-5)
    assert (result["q_accuracy"], result["q_revenue"], result["q_cvr"]) == (1.0, 0.5, 2.0)


def test_rank_one_labels_do_not_broadcast(data):
    # ``[B]`` labels against ``[B, 1]`` heads with a bare loss function: must not become ``[B, B]``.
    x, y = data
    model = MultiObjectiveModel(two_task_model(), {"ctr": "binary_crossentropy", "cvr": "binary_crossentropy"})
    model.compile(optimizer="sgd")
    flat = {k: v.reshape(-1) for k, v in y.items()}
    got = model.evaluate(x, flat, batch_size=64, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert got["loss_ctr"] == pytest.approx(bce(y["ctr"], pred["ctr"]).mean(), rel=1e-5)
    assert got["loss_cvr"] == pytest.approx(bce(y["cvr"], pred["cvr"]).mean(), rel=1e-5)


def test_train_step_matches_manual_gradient_step(data):
    x, y = data
    base, reference = two_task_model(seed=1, regularizer="l2"), two_task_model(seed=1, regularizer="l2")
    model = MultiObjectiveModel(base, {"ctr": "binary_crossentropy", "cvr": "binary_crossentropy"},
                                weighting=StaticWeights({"cvr": 0.3}))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)

    with tf.GradientTape() as tape:
        pred = reference(x, training=True)
        bce_fn = keras.losses.BinaryCrossentropy()
        loss = bce_fn(y["ctr"], pred["ctr"]) + 0.3 * bce_fn(y["cvr"], pred["cvr"]) + tf.add_n(reference.losses)
    grads = tape.gradient(loss, reference.trainable_variables)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, reference.trainable_variables))
    for got, want in zip(base.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_jit_compile(data):
    x, y = data
    plain, _ = pid_model()
    plain_history = plain.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history
    jit, controller = pid_model(jit=True)
    history = jit.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history
    assert jit.jit_compile and int(controller.steps) == 8
    assert history["q_income"][-1] == pytest.approx(float(controller.weight))
    # Same seed and data: the XLA-compiled step and the plain graph agree.
    for key in plain_history:
        np.testing.assert_allclose(history[key], plain_history[key], rtol=1e-4, err_msg=key)


def test_uncertainty_weighting_is_trained_with_the_model(data):
    x, y = data
    weighting = UncertaintyWeighting()
    model = MultiObjectiveModel(two_task_model(), {"ctr": "binary_crossentropy", "cvr": "binary_crossentropy"},
                                weighting=weighting)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    assert all(any(v is lv for v in model.trainable_variables) for lv in weighting.log_variances.values())
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert all(abs(float(v)) > 1e-3 for v in weighting.log_variances.values())
    # Both losses are below 1, so the learned weights 1/L grow above 1.
    assert 1.0 < history["q_ctr"][0] < history["q_ctr"][-1]


def test_compiled_metrics_are_reported(data):
    x, y = data
    model = MultiObjectiveModel(two_task_model(), {"ctr": "binary_crossentropy"})
    model.compile(optimizer="adam", metrics={"ctr": [keras.metrics.AUC(name="auc")]})
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, validation_data=(x, y)).history
    assert "ctr_auc" in history and "val_ctr_auc" in history and "val_q_ctr" in history


def test_a_wrapped_tfmtl_model_keeps_its_default_aucs_for_the_trained_outputs(multitask_data):
    from tfmtl.models import MMoE
    from tfmtl.training import convergence_callbacks

    df, spec = multitask_data
    base = MMoE(spec, num_experts=2, expert_units=[8], gate_units=[4], tower_units=[4])
    model = MultiObjectiveModel(base, {"task_a": "binary_crossentropy"})  # task_b is not trained
    model.compile(optimizer="adam")
    batches = base.make_dataset(df, batch_size=100)
    history = model.fit(batches, epochs=2, validation_data=batches, verbose=0,
                        callbacks=convergence_callbacks(2, lr_patience=None, averaging=None)).history
    assert {"task_a_auc", "val_task_a_auc"} <= set(history) and not any("task_b" in k for k in history)
    # The default monitor, the mean over the logged task AUCs, is here the one trained task's.
    assert history["val_auc"] == pytest.approx(history["val_task_a_auc"])


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="not outputs"):
        MultiObjectiveModel(two_task_model(), {"acc": ("missing", "mse")})
    with pytest.raises(ValueError, match="accuracy_objective"):
        MultiObjectiveModel(two_task_model(), {"ctr": "mse"}, accuracy_objective="cvr")
    with pytest.raises(ValueError, match="without `loss`"):
        MultiObjectiveModel(two_task_model(), {"ctr": "mse"}).compile(loss="mse")


def test_get_config_round_trip_and_keras_file(tmp_path, data):
    x, y = data
    model, controller = pid_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    config = json.loads(json.dumps(model.get_config()))  # the contract: a JSON round trip
    clone = MultiObjectiveModel.from_config(config)
    again = json.loads(json.dumps(clone.get_config()))
    # (tf_keras adds "fn" to a deserialised loss's config: compare loss classes, the rest exactly)
    assert again.keys() == config.keys()
    assert all(again[key] == config[key] for key in config if key != "objectives")
    for name, spec in config["objectives"].items():
        assert again["objectives"][name]["output"] == spec["output"]
        assert again["objectives"][name]["loss"]["class_name"] == spec["loss"]["class_name"]
    assert clone.objectives.keys() == model.objectives.keys()

    path = str(tmp_path / "mo.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MultiObjectiveModel) and isinstance(loaded.weighting, PIDWeighting)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["ctr"], model.predict(x, verbose=0)["ctr"], rtol=1e-6)
    assert float(loaded.weighting.controller.weight) == pytest.approx(float(controller.weight))
    assert float(loaded.weighting.controller.integral) == pytest.approx(float(controller.integral))
    loaded.compile(optimizer="adam")
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)  # keeps training from the restored state
    assert int(loaded.weighting.controller.steps) == int(controller.steps) + 2


@pytest.mark.timeout(240)
def test_mirrored_strategy_two_logical_cpus():
    # Logical devices must be configured before TensorFlow initialises: own process.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join([HERE, os.getcwd()])}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_fit.py")], capture_output=True, text=True,
                          env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert set(result["history"]) == {"loss", "loss_income", "loss_marital", "q_income", "q_marital"}
    assert result["history"]["q_marital"] == pytest.approx([0.2, 0.2])
    # Both replicas hold the same controller state, and history reports it (not a sum over replicas).
    assert result["controller_replicas"][0] == pytest.approx(result["controller_replicas"][1])
    assert result["history"]["q_income"][-1] == pytest.approx(result["controller_replicas"][0]["weight"])
    assert result["controller_replicas"][0]["steps"] == 2 * 4
    # Distributed evaluation equals the single-device numpy computation.
    assert result["evaluate"]["loss_income"] == pytest.approx(result["numpy"]["loss_income"], rel=1e-5)
    assert result["evaluate"]["loss_marital"] == pytest.approx(result["numpy"]["loss_marital"], rel=1e-5)
    # One distributed step equals one single-device step on the whole batch.
    assert result["max_weight_change"] > 1e-3
    assert result["max_weight_diff_vs_single_device"] < 1e-5
