"""List features in every model: pooled fields, DIN history attention, .keras round trips."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.models.test_models import FUNNEL, SMALL, _assert_same_predictions
from tfmtl.compat import keras
from tfmtl.features import CategoricalFeature, FeatureSpec, Label, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import DEFAULT_EMBEDDING_DIM
from tfmtl.models import AITM, MMoE, SingleTask

ITEMS = list("abcdef")


def list_frame(n=96, seed=0):
    rng = np.random.default_rng(seed)
    click = rng.integers(0, 2, n)
    return pd.DataFrame({
        "item": rng.choice(ITEMS, n),
        "x": rng.normal(size=n),
        "history": [list(rng.choice(ITEMS, rng.integers(0, 7))) for _ in range(n)],
        "genres": [list(rng.integers(0, 4, rng.integers(0, 4))) for _ in range(n)],
        "task_a": rng.integers(0, 2, n), "task_b": rng.integers(0, 2, n),
        "click": click, "conversion": click * rng.integers(0, 2, n),
    })


def list_spec(df, labels=("task_a", "task_b")):
    return FeatureSpec.from_dataframe(df.drop(columns=[c for c in ("task_a", "task_b", "click", "conversion")
                                                       if c not in labels]),
                                      list(labels), shared_embeddings={"history": "item"}, max_list_length=4)


@pytest.mark.parametrize("cls", list(SMALL), ids=lambda c: c.__name__)
def test_every_model_takes_pooled_lists_and_round_trips(cls, tmp_path):
    df = list_frame()
    model = cls(list_spec(df), **SMALL[cls])
    model.compile()
    model.fit(df, epochs=1, batch_size=32, verbose=0)
    predictions = model.predict(df, verbose=0)
    assert all(p.shape == (len(df), 1) and np.isfinite(p).all() for p in predictions.values())
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    _assert_same_predictions(predictions, loaded.predict(df, verbose=0))


@pytest.mark.parametrize("cls, config", [*FUNNEL.items(), (AITM, dict(tower_units=[8]))],
                         ids=lambda c: getattr(c, "__name__", ""))
def test_funnel_models_take_lists_and_history_attention(cls, config, tmp_path):
    df = list_frame()
    model = cls(list_spec(df, ("click", "conversion")), tasks=["click", "conversion"],
                history_attention={"history": "item"}, attention_units=[8], **config)
    model.compile()
    model.fit(df, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    _assert_same_predictions(model.predict(df, verbose=0),
                             keras.models.load_model(tmp_path / "m.keras").predict(df, verbose=0))


def test_pooled_list_is_a_field_the_fm_crosses():
    df = list_frame()
    model = MMoE(list_spec(df), num_experts=2, expert_units=[8], tower_units=[4], fm="shared")
    # fields = item, history (mean), genres (mean) and x (the default PLE encoding makes it a field).
    assert model.get_layer("fields").output.shape.as_list() == [None, 4, DEFAULT_EMBEDDING_DIM]
    assert model.get_layer("fm").input[2].shape.as_list() == [None, 4, DEFAULT_EMBEDDING_DIM]


def test_mean_pooling_matches_a_hand_calculation():
    spec = FeatureSpec((CategoricalFeature("item", vocabulary=("a",)),
                        ListFeature("genres", 3, vocabulary=("x", "y"), embedding_dim=2)),
                       (Label("task_a"),))
    spec = spec.with_embedding_dim(2)
    model = SingleTask(spec, units=[4])
    table = np.array([[10.0, 20.0], [1.0, 2.0], [3.0, 5.0]], np.float32)  # ids: 0 OOV, 1 x, 2 y
    model.get_layer("list_embedding").set_weights([table])
    df = pd.DataFrame({"item": ["a"] * 4, "genres": [["x", "y"], ["y", "zzz"], [], ["x", "x", "y", "y"]]})
    pooled = model.probe(model.get_layer("genres_pooling").output, df)
    expected = [(table[1] + table[2]) / 2,  # x, y
                (table[2] + table[0]) / 2,  # an unseen value is OOV (id 0), a real position
                [0.0, 0.0],  # empty: zeros, never NaN
                (table[1] + 2 * table[2]) / 3]  # over-long: the last 3 are x, y, y
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)


def attention_model():
    spec = FeatureSpec((CategoricalFeature("item", vocabulary=tuple(ITEMS), embedding_dim=3),
                        ListFeature("history", 4, embedding_dim=3, pooling=None, shares="item"),
                        NumericFeature("x")),
                       (Label("task_a"),))
    return SingleTask(spec, units=[4], history_attention={"history": "item"}, attention_units=[6])


def test_history_attention_gradients_reach_the_history_embeddings():
    model = attention_model()
    # Items e and f appear only in histories, never as the candidate.
    df = pd.DataFrame({"item": ["a", "b", "c"], "x": [0.0, 1.0, 2.0],
                       "history": [["e", "f"], ["f"], []], "task_a": [1, 0, 1]})
    x, y = next(iter(model.make_dataset(df, batch_size=3)))
    table = model.get_layer("embedding").embeddings
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(y["task_a"], model(x, training=True)["task_a"]))
    gradient = tf.convert_to_tensor(tape.gradient(loss, table)).numpy()
    e, f, d = 1 + ITEMS.index("e"), 1 + ITEMS.index("f"), 1 + ITEMS.index("d")
    assert np.abs(gradient[e]).sum() > 0 and np.abs(gradient[f]).sum() > 0
    assert np.abs(gradient[d]).sum() == 0  # d is nowhere in the batch


def test_history_padding_is_masked():
    model = attention_model()
    df = pd.DataFrame({"item": ["a", "b", "c"], "x": [0.0, 1.0, 2.0], "history": [["e", "f"], ["b"], []]})
    before = model.predict(df, verbose=0)["task_a"]
    # Padding gathers id 0 (the OOV row): changing that row must change nothing here (no OOV values).
    table = model.get_layer("embedding")
    weights = table.get_weights()[0]
    weights[0] += 5.0
    table.set_weights([weights])
    np.testing.assert_allclose(model.predict(df, verbose=0)["task_a"], before, rtol=1e-6)
    # ... while a real unseen item (OOV, a real position) does see it.
    unseen = model.predict(df.assign(history=[["e", "zzz"], ["b"], []]), verbose=0)["task_a"]
    assert abs(unseen[0, 0] - before[0, 0]) > 1e-6
    # Raw rows of any width with pad tokens anywhere give the same predictions.
    wide = {"item": np.array(["a", "b", "c"]), "x": np.array([0.0, 1.0, 2.0], np.float32),
            "history": np.array([["", "e", "", "", "f", ""], ["b", "", "", "", "", ""], [""] * 6])}
    np.testing.assert_allclose(model(wide)["task_a"].numpy(), before, rtol=1e-6)


def test_history_attention_bad_arguments():
    df = list_frame()
    spec = list_spec(df)
    with pytest.raises(SpecError, match="'x' is not a list feature"):
        MMoE(spec, num_experts=2, expert_units=[4], history_attention={"x": "item"})
    with pytest.raises(SpecError, match="'genres' must share the table of the categorical candidate 'item'"):
        MMoE(spec, num_experts=2, expert_units=[4], history_attention={"genres": "item"})
    sequence = FeatureSpec.from_dataframe(df.drop(columns=["click", "conversion"]), ["task_a", "task_b"],
                                          list_pooling=None, shared_embeddings={"history": "item"})
    with pytest.raises(SpecError, match=r"list features \['genres'\] have pooling=None"):
        MMoE(sequence, num_experts=2, expert_units=[4], history_attention={"history": "item"})


@pytest.mark.parametrize("name", ["m3oe", "star", "mamex"])
def test_domain_and_modality_models_take_pooled_lists(name, tmp_path):
    from tfmtl.datasets import synthetic_domains
    from tfmtl.models import build_model
    from tfmtl.models.mamex import modality_specs

    if name == "mamex":
        df, spec, columns = synthetic_domains.multimodal_frame(64, modalities={"image": 4}, seed=0)
        kwargs = dict(modalities=modality_specs(columns, df), units=8, num_experts=2, top_k=1, user_units=[8],
                      tower_units=[4], gate_units=[4])
    else:
        df, spec = synthetic_domains.multidomain_frame(64, num_domains=2, num_tasks=2, seed=0)
        kwargs = dict(star_units=[8], aux_units=None) if name == "star" else dict(
            num_experts=2, star_units=[8], expert_units=[8], tower_units=[4])
    rng = np.random.default_rng(0)
    df = df.assign(tags=[list(rng.choice(ITEMS, rng.integers(0, 4))) for _ in range(len(df))])
    spec = FeatureSpec(spec.features + (ListFeature("tags", 3, vocabulary=tuple(ITEMS[:4]),
                                                    embedding_dim=spec.embedding_dim),), spec.labels)
    model = build_model(name, spec, **kwargs)
    model.compile()
    model.fit(df, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    _assert_same_predictions(model.predict(df, verbose=0),
                             keras.models.load_model(tmp_path / "m.keras").predict(df, verbose=0))
