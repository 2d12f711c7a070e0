import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.features import SpecError
from tfmtl.models import AITM, build_model


def test_outputs_losses_and_keras_round_trip(funnel_data, tmp_path):
    df, spec = funnel_data
    model = build_model("aitm", spec, ["click", "conversion"], tower_units=[8, 4], alpha=0.5)
    assert isinstance(model, AITM) and sorted(model.output) == ["ctcvr", "ctr", "cvr"]
    assert len(model.losses) == 1  # the calibrator
    model.compile()
    history = model.fit(df, epochs=1, verbose=0)
    assert {"ctr_loss", "ctcvr_loss"} <= set(history.history) and "cvr_loss" not in history.history
    out = model.predict(df, verbose=0)
    assert all(out[k].shape == (len(df), 1) for k in out)
    np.testing.assert_allclose(out["cvr"], np.clip(out["ctcvr"] / out["ctr"], 0, 1), rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for key, value in loaded.predict(df, verbose=0).items():
        np.testing.assert_allclose(value, out[key], rtol=1e-6, atol=1e-7)
    assert loaded.get_config()["alpha"] == 0.5


def test_calibrator_loss_is_added_to_the_training_loss(funnel_data):
    df, spec = funnel_data
    x = next(iter(AITM(spec, ["click", "conversion"], tower_units=[4], alpha=0.0)
                  .make_dataset(df.head(64), with_labels=False)))
    losses = {}
    for alpha in (0.0, 3.0):
        keras.utils.set_random_seed(0)
        model = AITM(spec, ["click", "conversion"], tower_units=[4], alpha=alpha)
        out = model(x)
        expected = alpha * np.mean(np.maximum(out["ctcvr"].numpy() - out["ctr"].numpy(), 0))
        losses[alpha] = float(tf.add_n(model.losses)) if model.losses else 0.0
        np.testing.assert_allclose(losses[alpha], expected, rtol=1e-5, atol=1e-7)


def test_bad_arguments():
    from tfmtl.datasets import synthetic

    _, spec = synthetic.funnel_frame(50)
    with pytest.raises(SpecError, match="tasks"):
        AITM(spec, ["click"])
    with pytest.raises(ValueError, match="tower_units"):
        AITM(spec, ["click", "conversion"], tower_units=[])
    with pytest.raises(SpecError, match="fm"):
        AITM(spec, ["click", "conversion"], fm=True)


@pytest.mark.slow
def test_fits_a_movielens_funnel_slice():
    from sklearn.metrics import roc_auc_score

    from tfmtl.datasets import movielens

    df, spec = movielens.funnel(seed=0)
    train, _, test = movielens.split_frame(df, (0.8, 0.1, 0.1), seed=0)
    keras.utils.set_random_seed(0)
    model = AITM(spec, ["click", "conversion"], tower_units=[32, 16])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(train.head(30000), epochs=2, batch_size=512, verbose=0)
    out = model.predict(test, verbose=0)
    # Wide margins: ~0.5 is chance; MovieLens' funnel is easy enough for a small model to clear these.
    assert roc_auc_score(test["click"], out["ctr"].ravel()) > 0.6
    assert roc_auc_score(test["conversion"], out["ctcvr"].ravel()) > 0.6
