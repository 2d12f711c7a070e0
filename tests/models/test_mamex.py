"""MAMEX: modality inputs beyond the spec, missing modalities, fusion variants, .keras round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.datasets import synthetic_domains
from tfmtl.models import MAMEX, build_model
from tfmtl.models.mamex import hide_modality, modality_specs

SMALL = dict(units=8, num_experts=3, top_k=2, user_units=[8], tower_units=[4], gate_units=[4])


@pytest.fixture(scope="module")
def frame():
    df, spec, columns = synthetic_domains.multimodal_frame(256, modalities={"image": 6, "meta": 3}, text=True,
                                                           missing_rate=0.2, seed=0)
    return df, spec, modality_specs(columns, df)


def _batch(model, df):
    return next(iter(model.make_dataset(df, with_labels=False, batch_size=len(df))))


def test_outputs_inputs_and_auxiliary_losses(frame):
    df, spec, modalities = frame
    model = MAMEX(spec, modalities=modalities, **SMALL)
    assert model.output_names == ["click", "conversion"]
    assert set(model.input_names) == {"user", "age", "image", "meta", "title"}
    outputs = model(_batch(model, df.head(32)))
    assert outputs["click"].shape == (32, 1) and np.isfinite(outputs["click"].numpy()).all()
    # One load-balance loss per modality MoE plus the modality-balance regulariser.
    assert len(model.losses) == len(modalities) + 1


def test_modality_weights_sum_to_one_and_missing_gets_zero(frame):
    df, spec, modalities = frame
    model = MAMEX(spec, modalities=modalities, **SMALL)
    assert model.modality_names == ["image", "meta", "title"]
    rows = df.head(40).reset_index(drop=True)
    image = [f"image_{j}" for j in range(6)]
    rows[image] = rows[image].fillna(0.0)  # image always present, so every row has a modality
    rows.loc[:9, ["meta_0", "meta_1", "meta_2"]] = np.nan
    rows.loc[5:14, "title"] = ""
    weights = model.modality_weights(rows)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    meta_missing = rows[["meta_0", "meta_1", "meta_2"]].isna().any(axis=1).to_numpy()
    title_missing = (rows["title"] == "").to_numpy()
    np.testing.assert_array_equal(weights[meta_missing, 1], 0.0)
    np.testing.assert_array_equal(weights[title_missing, 2], 0.0)
    assert (weights[~meta_missing & ~title_missing] > 0).all()


def test_hiding_a_modality_changes_only_its_share(frame):
    df, spec, modalities = frame
    model = MAMEX(spec, modalities=modalities, **SMALL)
    rows = df.head(30)
    present = model.modality_weights(rows)
    hidden = model.modality_weights(hide_modality(rows, modalities[0]))
    np.testing.assert_array_equal(hidden[:, 0], 0.0)
    keep = present[:, 1:].sum(1) > 0
    np.testing.assert_allclose(hidden[keep, 1:], present[keep, 1:] / present[keep, 1:].sum(1, keepdims=True),
                               rtol=1e-4, atol=1e-6)


def test_fit_and_fusion_baselines(frame):
    df, spec, modalities = frame
    for fusion in ("gate", "mean", "concat"):
        model = MAMEX(spec, modalities=modalities, fusion=fusion, modality_dropout=0.3,
                      **dict(SMALL, num_experts=1 if fusion != "gate" else 3, top_k=None))
        model.compile(metrics={}, run_eagerly=True)  # eager: two small batches need no tracing
        history = model.fit(df, epochs=1, batch_size=128, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_bad_modalities_are_rejected(frame):
    df, spec, modalities = frame
    with pytest.raises(ValueError, match="exactly one of columns or text_column"):
        MAMEX(spec, modalities=[{"name": "x"}])
    with pytest.raises(ValueError, match="distinct"):
        MAMEX(spec, modalities=[modalities[0], modalities[0]])
    with pytest.raises(ValueError, match="clash"):
        MAMEX(spec, modalities=[{"name": "user", "columns": ["image_0"]}])
    model = MAMEX(spec, modalities=modalities[:1], **SMALL)
    with pytest.raises(ValueError, match="image_0"):
        model.make_dataset(df.drop(columns=["image_0"]))


def test_keras_round_trip_gives_identical_predictions(frame, tmp_path):
    df, spec, modalities = frame
    model = build_model("mamex", spec, modalities=modalities, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    x, y = next(iter(model.make_dataset(df.head(128))))
    with tf.GradientTape() as tape:  # one eager step so the weights are not the initial ones
        out = model(x, training=True)
        loss = tf.add_n([tf.reduce_mean(keras.losses.binary_crossentropy(y[k], out[k])) for k in y])
    model.optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    path = str(tmp_path / "mamex.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is MAMEX
    batch = _batch(model, df.head(64))
    for output in model.output_names:
        np.testing.assert_array_equal(loaded(batch)[output].numpy(), model(batch)[output].numpy())


@pytest.mark.parametrize("preset", ["paper", "user_gate"])
def test_paper_gate_scores_modalities_from_item_content_only(frame, preset):
    """MAMEX's gate weights a modality by its content: changing only the user features leaves the
    fusion weights of every item unchanged; the user-conditioned option (gate_context=True) moves them."""
    df, spec, modalities = frame
    kwargs = dict(SMALL)
    model = (MAMEX.paper(spec, modalities=modalities, **kwargs) if preset == "paper"
             else MAMEX(spec, modalities=modalities, gate_context=True, **kwargs))
    assert model.get_config()["gate_context"] is (preset != "paper")
    rows = df.head(64).reset_index(drop=True)
    other_users = rows.copy()
    user_columns = [c for c in spec.feature_names if c in rows.columns]
    order = np.random.default_rng(1).permutation(len(rows))
    for column in user_columns:
        other_users[column] = rows[column].to_numpy()[order]
    assert not rows[user_columns].equals(other_users[user_columns])
    before, after = model.modality_weights(rows), model.modality_weights(other_users)
    if preset == "paper":
        np.testing.assert_array_equal(before, after)
        fusion = model.get_layer("fusion")
        assert len(fusion.input) == 2  # [modality embeddings, mask]: no user context enters the gate
    else:
        assert np.max(np.abs(before - after)) > 1e-4
    with pytest.raises(ValueError, match="gate_context"):
        MAMEX.paper(spec, modalities=modalities, gate_context=True, **kwargs)
