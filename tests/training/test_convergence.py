"""convergence_callbacks: the learning-rate cut and the early stop, epoch by epoch on given losses."""

import numpy as np
import pytest
from conftest import linear_model, noisy_linear_data, two_task_data, two_task_model

from tfmtl._keras import keras
from tfmtl.training import MeanOverTasks, WeightAveraging, best_epoch, convergence_callbacks


def _model(learning_rate=1e-3):
    return linear_model(keras.optimizers.Adam(learning_rate))


def _replay(callbacks, model, losses):
    """Feeds ``losses`` as the epochs' val_loss; returns the learning rate after each epoch and the
    number of epochs run. The kernel is set to the epoch number, so restored weights show which epoch won."""
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    rates = []
    for epoch, loss in enumerate(losses):
        model.layers[0].kernel.assign(np.full([2, 1], float(epoch), np.float32))
        for callback in callbacks:
            callback.on_epoch_end(epoch, {"val_loss": loss})
        rates.append(float(keras.backend.get_value(model.optimizer.learning_rate)))
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()
    return rates, len(rates)


def test_the_rate_is_cut_after_each_stalled_epoch_and_training_stops_after_patience():
    model = _model(1e-3)
    # Best at epoch 1 (0.8); epochs 2-5 do not improve: the rate is cut after each of them
    # (lr_patience 1; the counter restarts after a cut), and training stops after 4 (patience).
    callbacks = convergence_callbacks(4, lr_patience=1, lr_factor=0.5, min_learning_rate=2e-4, averaging=None,
                                      monitor="val_loss")
    rates, epochs = _replay(callbacks, model, [1.0, 0.8, 0.85, 0.9, 0.81, 0.95, 0.7])
    assert epochs == 6
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 5e-4, 2.5e-4, 2e-4, 2e-4], rtol=1e-6)
    # restore_best_weights: the kernel of epoch 1.
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), np.full([2, 1], 1.0))


def test_an_improvement_after_the_cut_resets_the_stop():
    model = _model(1e-3)
    rates, epochs = _replay(convergence_callbacks(2, lr_patience=1, lr_factor=0.3, averaging=None, monitor="val_loss"),
                            model,
                            [1.0, 1.1, 0.9, 0.95, 0.96, 0.5])
    # Epoch 1 stalls -> cut to 3e-4; epoch 2 improves; epochs 3 and 4 stall -> a cut each, then stop.
    assert epochs == 5
    np.testing.assert_allclose(rates, [1e-3, 3e-4, 3e-4, 9e-5, 2.7e-5], rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), np.full([2, 1], 2.0))


def test_without_a_rate_cut_and_averaging_only_the_early_stop_is_returned():
    (stop,) = convergence_callbacks(3, lr_patience=None, averaging=None, monitor="val_loss")
    assert isinstance(stop, keras.callbacks.EarlyStopping)
    assert stop.patience == 3 and stop.restore_best_weights and stop.monitor == "val_loss"
    # By default the tasks' mean validation AUC decides, maximised.
    mean, stop = convergence_callbacks(3, lr_patience=None, averaging=None)
    assert isinstance(mean, MeanOverTasks) and mean.metric == "auc"
    assert stop.monitor == "val_auc" and stop.monitor_op == np.greater


def test_the_weight_average_comes_first_so_the_others_read_the_averaged_weights():
    averaging, mean, reduce, stop = convergence_callbacks()
    assert isinstance(averaging, WeightAveraging) and averaging.decay == 0.99
    assert isinstance(mean, MeanOverTasks)
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau) and isinstance(stop, keras.callbacks.EarlyStopping)
    (averaging, stop) = convergence_callbacks(lr_patience=None, averaging=0.9, monitor="val_loss")
    assert averaging.decay == 0.9
    # 0 switches a part off as None does (the CLI's and the TFX Trainer's "0 = off").
    assert [type(c) for c in convergence_callbacks(lr_patience=0, averaging=0, monitor="val_loss")] == [
        keras.callbacks.EarlyStopping]


def test_fit_stops_on_a_noisy_validation_loss_with_the_best_epoch_kept():
    rng = np.random.default_rng(0)
    model = _model(0.1)
    validation = noisy_linear_data(rng, 64)
    history = model.fit(*noisy_linear_data(rng, 64), validation_data=validation, epochs=40, batch_size=16, verbose=0,
                        callbacks=convergence_callbacks(monitor="val_loss"))
    losses, rates = history.history["val_loss"], history.history["lr"]
    assert len(losses) < 40  # the noise floor is reached well before the cap
    assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.1  # the rate was cut before the stop
    assert int(np.argmin(losses)) == len(losses) - 1 - 4  # patience 4 after the best epoch
    assert best_epoch(history.history, "val_loss") == int(np.argmin(losses)) + 1
    assert model.evaluate(*validation, verbose=0) == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"patience": 0}, "patience must be >= 1, got 0"),
    ({"patience": 2, "lr_patience": 2}, "lr_patience must be 0 (fixed rate) or between 1 and patience - 1 (1), got 2"),
    ({"lr_patience": -1}, "lr_patience must be 0 (fixed rate) or between 1 and patience - 1 (3), got -1"),
    ({"lr_factor": 1.0}, "lr_factor must be in (0, 1), got 1.0"),
    ({"averaging": 1.5}, "averaging must be 0 or None (off) or a decay in (0, 1), got 1.5"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convergence_callbacks(**kwargs)


def test_an_auc_monitor_is_maximised_on_the_mean_over_tasks():
    model = _model(1e-3)
    callbacks = convergence_callbacks(2, lr_patience=1, lr_factor=0.5, averaging=None)
    assert [type(c) for c in callbacks] == [MeanOverTasks, keras.callbacks.ReduceLROnPlateau,
                                            keras.callbacks.EarlyStopping]
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    logged = []
    # Task AUCs per epoch; their means 0.70, 0.80, 0.75, 0.78: best epoch 1, cuts after epochs 2 and 3, stop.
    for epoch, (a, b) in enumerate([(0.6, 0.8), (0.7, 0.9), (0.8, 0.7), (0.76, 0.8), (0.99, 0.99)]):
        model.layers[0].kernel.assign(np.full([2, 1], float(epoch), np.float32))
        logs = {"val_loss": 1.0, "val_a_auc": a, "val_b_auc": b}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        logged.append(logs["val_auc"])
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()
    np.testing.assert_allclose(logged, [0.7, 0.8, 0.75, 0.78])
    assert float(keras.backend.get_value(model.optimizer.learning_rate)) == pytest.approx(2.5e-4)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), np.full([2, 1], 1.0))


def test_a_logged_single_output_auc_is_kept_and_a_missing_one_is_named():
    logs = {"val_loss": 0.2, "val_auc": 0.9, "auc": 0.95}
    MeanOverTasks().on_epoch_end(0, logs)
    assert logs == {"val_loss": 0.2, "val_auc": 0.9, "auc": 0.95}
    with pytest.raises(ValueError, match=r"monitor 'val_auc' cannot be computed: no output logs 'auc' on the "
                                         r"validation data \(logged: \['loss', 'val_loss'\]\)"):
        MeanOverTasks().on_epoch_end(0, {"loss": 0.3, "val_loss": 0.2})


def test_fit_on_two_tasks_stops_on_their_mean_validation_auc(data):
    model = two_task_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", run_eagerly=True,
                  metrics={task: [keras.metrics.AUC(name="auc")] for task in ("ctr", "cvr")})
    features, labels = data
    history = model.fit(features, labels, validation_data=two_task_data(64, seed=1), epochs=3, batch_size=16,
                        verbose=0, callbacks=convergence_callbacks(2, lr_patience=None))
    for epoch, mean in enumerate(history.history["val_auc"]):
        expected = (history.history["val_ctr_auc"][epoch] + history.history["val_cvr_auc"][epoch]) / 2
        assert mean == pytest.approx(expected)
    assert best_epoch(history.history) == int(np.argmax(history.history["val_auc"])) + 1


def test_best_epoch_is_the_one_the_monitor_kept():
    history = {"val_auc": [0.7, 0.9, 0.9, 0.8], "val_loss": [0.5, 0.4, 0.3, 0.35], "val_acc": [0.5, 0.6, 0.7, 0.6]}
    assert best_epoch(history) == 2  # the first of equal bests, as EarlyStopping keeps it
    assert best_epoch(history, "val_loss") == 3
    assert best_epoch(history, "val_acc") == 3
    with pytest.raises(KeyError, match=r"the history has no 'val_ctr_auc' \(it has \['val_acc', 'val_auc', "):
        best_epoch(history, "val_ctr_auc")
