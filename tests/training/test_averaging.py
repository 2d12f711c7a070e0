"""WeightAveraging: the running average against hand calculation, the swaps around validation, a real fit."""

import numpy as np
import pytest
from conftest import linear_model, noisy_linear_data

from tfmtl._keras import keras
from tfmtl.training import WeightAveraging, convergence_callbacks


def _model(learning_rate=1e-2):
    return linear_model(keras.optimizers.SGD(learning_rate))


def _set_kernel(model, value):
    model.layers[0].kernel.assign(np.full([2, 1], value, np.float32))


def _kernel(model):
    return float(model.layers[0].kernel.numpy()[0, 0])


def _started(decay):
    """A model whose kernel is 0 and a WeightAveraging on it, as at the start of fit."""
    model = _model()
    averaging = WeightAveraging(decay=decay)
    averaging.set_model(model)
    _set_kernel(model, 0.0)
    averaging.on_train_begin()
    return model, averaging


def test_the_average_follows_the_warmed_up_decay_step_by_step():
    model, averaging = _started(0.5)
    expected = 0.0
    for step, value in enumerate([4.0, 8.0, 2.0, 6.0], start=1):
        _set_kernel(model, value)
        averaging.on_train_batch_end(step - 1)
        decay = min(0.5, (1 + step) / (10 + step))  # the warm-up: 2/11, 3/12, 4/13, 5/14
        expected = decay * expected + (1 - decay) * value
        assert float(averaging.averaged_weights[0].numpy()[0, 0]) == pytest.approx(expected, rel=1e-6)
    assert _kernel(model) == 6.0  # training's own weights are untouched between validations


def test_validation_sees_the_average_and_the_next_epoch_trains_the_raw_weights():
    model, averaging = _started(0.9)
    _set_kernel(model, 11.0)
    averaging.on_train_batch_end(0)  # decay min(0.9, 2/11): average = 9/11 * 11 = 9
    averaging.on_test_begin()
    assert _kernel(model) == pytest.approx(9.0)
    averaging.on_test_begin()  # a second validation hook in the same epoch must not lose the raw weights
    averaging.on_epoch_begin(1)
    assert _kernel(model) == pytest.approx(11.0)
    averaging.on_train_end()  # no validation since: the average replaces the raw weights at the end
    assert _kernel(model) == pytest.approx(9.0)


def test_fit_keeps_the_best_averaged_weights_that_validation_measured():
    rng = np.random.default_rng(0)
    model = _model(0.05)
    validation = noisy_linear_data(rng, 64)
    averaging = WeightAveraging(decay=0.9)
    seen = []  # (model kernel, averaged kernel) at each epoch's end, where EarlyStopping reads the weights
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (model.layers[0].kernel.numpy().copy(), averaging.averaged_weights[0].numpy().copy())))
    stop = convergence_callbacks(3, lr_patience=None, averaging=None, monitor="val_loss")
    history = model.fit(*noisy_linear_data(rng, 64), validation_data=validation, epochs=30, batch_size=8, verbose=0,
                        callbacks=[averaging, record, *stop])
    losses = history.history["val_loss"]
    for in_model, averaged in seen:
        np.testing.assert_array_equal(in_model, averaged)
    # The logged validation losses are the averaged weights', and the best of them is what fit returns.
    assert model.evaluate(*validation, verbose=0) == pytest.approx(min(losses), rel=1e-5)
    assert len(losses) < 30


def test_decay_must_be_a_fraction():
    with pytest.raises(ValueError, match=r"WeightAveraging: decay must be in \(0, 1\), got 1.0"):
        WeightAveraging(decay=1.0)
