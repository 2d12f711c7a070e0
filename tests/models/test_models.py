import numpy as np
import pytest

from tfmtl.compat import keras
from tfmtl.features import SpecError
from tfmtl.models import (
    ESMM,
    FG,
    FS,
    FSMD,
    PLE,
    Base,
    DeepFM,
    MMoE,
    SharedBottom,
    SingleTask,
    available_models,
    build_model,
)

SMALL = {
    SingleTask: dict(tasks=["task_a"], units=[8]),
    SharedBottom: dict(bottom_units=[8], tower_units=[4]),
    DeepFM: dict(dnn_units=[8]),
    MMoE: dict(num_experts=3, expert_units=[8], gate_units=[4], tower_units=[4]),
    PLE: dict(num_levels=2, specific_experts=1, shared_experts=1, expert_units=[8], tower_units=[4]),
    Base: dict(bottom_units=[8], tower_units=[4]),
    FG: dict(num_experts=2, expert_units=[8]),
    FS: dict(num_levels=1, expert_units=[8]),
}
FUNNEL = {ESMM: dict(tower_units=[8]), FSMD: dict(expert_units=[8], tower_units=[4])}


def _assert_same_predictions(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", list(SMALL), ids=lambda c: c.__name__)
def test_fit_predict_and_keras_file_round_trip(cls, multitask_data, tmp_path):
    df, spec = multitask_data
    model = cls(spec, **SMALL[cls])
    model.compile()
    history = model.fit(df, epochs=1, batch_size=64, validation_data=df, verbose=0)
    # Keras names metrics "<output>_auc", or plain "auc" for a single output.
    expected = [f"val_{o}_auc" for o in model.label_map] if len(model.label_map) > 1 else ["val_auc"]
    assert set(expected) <= set(history.history)
    predictions = model.predict(df, verbose=0)
    assert all(p.shape == (len(df), 1) and ((p > 0) & (p < 1)).all() for p in predictions.values())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is cls and loaded.get_config() == model.get_config()
    _assert_same_predictions(predictions, loaded.predict(df, verbose=0))
    loaded.fit(df, epochs=1, verbose=0)  # compiled again on load


@pytest.mark.parametrize("cls", list(FUNNEL), ids=lambda c: c.__name__)
def test_esmm_family_trains_ctr_and_ctcvr_over_all_exposures(cls, funnel_data, tmp_path):
    df, spec = funnel_data
    model = cls(spec, tasks=["click", "conversion"], **FUNNEL[cls])
    model.compile()
    history = model.fit(df, epochs=1, verbose=0)
    assert {"ctr_loss", "ctcvr_loss"} <= set(history.history) and "cvr_loss" not in history.history
    out = model.predict(df, verbose=0)
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], rtol=1e-5)
    model.save(tmp_path / "m.keras")
    _assert_same_predictions(out, keras.models.load_model(tmp_path / "m.keras").predict(df, verbose=0))


def test_gradients_reach_every_expert(multitask_data):
    import tensorflow as tf

    df, spec = multitask_data
    model = MMoE(spec, num_experts=4, expert_units=[8], tower_units=[4])
    model.compile()
    x, y = next(iter(model.make_dataset(df, batch_size=128)))
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_mean(keras.losses.binary_crossentropy(y[k], model(x, training=True)[k])) for k in y)
    kernel = model.get_layer("mmoe").experts._layers[0].kernel
    gradient = tape.gradient(loss, kernel).numpy()
    assert all(np.abs(gradient[e]).sum() > 0 for e in range(4))


def test_registry_builds_by_name(multitask_data):
    _, spec = multitask_data
    assert {"mmoe", "ple", "fsmd", "esmm", "deepfm", "single_task"} <= set(available_models())
    assert isinstance(build_model("MMoE", spec, num_experts=2, expert_units=[4]), MMoE)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope", spec)


def _has_cross(model) -> bool:
    return any(layer.name == "cross" for layer in model.layers)


def test_mmoe_adds_a_parallel_cross_by_default_and_the_paper_presets_do_not(multitask_data):
    _, spec = multitask_data
    small = dict(num_experts=2, expert_units=[4], tower_units=[2])
    default = MMoE(spec, **small)
    assert _has_cross(default) and default.get_config()["cross"] == "parallel"
    assert any(layer.name == "cross_plus_deep" for layer in default.layers)
    assert default.get_layer("cross").num_layers == 3 and default.get_config()["cross_layers"] == 3
    assert MMoE.from_config(default.get_config()).get_layer("cross").num_layers == 3
    assert list(MMoE(spec).get_config()["expert_units"]) == [256, 128]
    assert list(FG(spec).get_config()["expert_units"]) == [512, 256]  # the FSMD paper's DNN
    # Only MMoE's depth was measured; the other models keep the base's 2.
    assert SharedBottom(spec, cross="parallel", bottom_units=[4]).get_layer("cross").num_layers == 2
    paper = MMoE(spec, cross=None, **small)
    assert not _has_cross(paper) and paper.get_config()["cross"] is None
    assert not _has_cross(FG(spec, **small))  # FSMD's FG: FM + MMoE as its paper has it
    assert _has_cross(FG(spec, cross="parallel", **small))
    # Configs saved before "cross" was always written left it out when it was None.
    config = paper.get_config()
    del config["cross"]
    assert not _has_cross(MMoE.from_config(config))


def test_bad_arguments_get_clear_errors(multitask_data, funnel_data):
    df, spec = multitask_data
    with pytest.raises(SpecError, match="label 'typo' is not in the spec"):
        MMoE(spec, tasks=["typo"])
    with pytest.raises(ValueError, match="SingleTask predicts one task"):
        SingleTask(spec)
    with pytest.raises(SpecError, match="needs tasks=\\[click_label"):
        ESMM(funnel_data[1], tasks=["click"])
    model = SharedBottom(spec, bottom_units=[4])
    model.compile()
    with pytest.raises(ValueError, match="do not pass y"):
        model.fit(df, df["task_a"])
    with pytest.raises(SpecError, match="missing from the DataFrame"):
        model.fit(df.drop(columns="color"), verbose=0)
    with pytest.raises(SpecError, match="label 'task_b': column 'task_b' is missing"):
        model.fit(df.drop(columns="task_b"), verbose=0)
    with pytest.raises(SpecError, match="empty"):
        model.predict(df.iloc[:0])
    with pytest.raises(SpecError, match="feature 'x1' must be numeric"):
        model.predict(df.assign(x1="high"))


def converged_census_aucs(splits) -> tuple[float, float]:
    """Income and never-married test AUCs of a small MMoE trained to convergence on a census slice.

    bench/test_margins.py runs this same function over seeds and oneDNN on/off to size the bounds below.
    """
    from sklearn.metrics import roc_auc_score

    model = MMoE(splits.spec, num_experts=4, expert_units=[64, 32], tower_units=[16], cross=None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(splits.train, validation_data=splits.validation, epochs=12, batch_size=256, verbose=0, callbacks=[stop])
    predictions = model.predict(splits.test, verbose=0)
    return tuple(float(roc_auc_score(splits.spec.label_array(splits.test, task).ravel(), predictions[task].ravel()))
                 for task in ("income_50k", "never_married"))


def test_census_slice_beats_fixed_auc(census_slice):
    # Trained to convergence so that seeds and CPU numerics do not cross the bounds: over seeds 0-5 with
    # oneDNN on and off, income 0.936-0.946 (std 0.003), never married 0.9935-0.9944 with the default PLE
    # numerics, 32 point-mass-aware bins (bench/results/test_margins.md; 16 plain quantile bins gave
    # 0.932-0.943, scalar numerics 0.930-0.942); the earlier 2-epoch
    # version (scalar) spread 0.899-0.931 and failed at 0.90.
    # A majority-class or random model scores 0.5; the full-data models reach ~0.95 / ~0.995.
    income, married = converged_census_aucs(census_slice)
    assert income > 0.92 and married > 0.985, (income, married)
