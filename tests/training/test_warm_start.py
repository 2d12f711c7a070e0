import numpy as np
import pandas as pd
import pytest

from tfmtl.features import CategoricalFeature, FeatureSpec, Label, ListFeature, NumericFeature
from tfmtl.models import SingleTask
from tfmtl.training import WarmStartError, grown_spec, warm_start


def span(users, items, seed, tags=("x", "y", "z")):
    rng = np.random.default_rng(seed)
    n = 120
    return pd.DataFrame({
        "user_id": rng.choice(users, n), "item_id": rng.choice(items, n),
        "history": [list(rng.choice(items, 3)) for _ in range(n)],
        "tags": [list(rng.choice(tags, 2)) for _ in range(n)],
        "city": rng.choice(["paris", "rome", "oslo"], n), "age": rng.normal(40, 10, n).astype(np.float32),
        "click": rng.integers(0, 2, n)})


OLD_SPEC = FeatureSpec((
    CategoricalFeature("user_id", vocabulary=("u1", "u2", "u3")),
    CategoricalFeature("item_id", vocabulary=("i1", "i2", "i3", "i4")),
    ListFeature("history", 3, shares="item_id"),
    ListFeature("tags", 2, vocabulary=("x", "y")),
    CategoricalFeature("city", hash_buckets=7),
    NumericFeature("age", mean=40.0, variance=100.0),
), (Label("click"),))


def trained_model(spec=OLD_SPEC, units=(8,)):
    model = SingleTask(spec, ["click"], units=list(units), fm="per_task")
    model.compile()
    model.fit(span(["u1", "u2", "u3"], ["i1", "i2", "i3", "i4"], seed=0), epochs=2, batch_size=32, verbose=0)
    return model


def test_grown_spec_keeps_known_ids_and_appends_new_values():
    df = span(["u2", "u4"], ["i4", "i9"], seed=1)
    grown = grown_spec(OLD_SPEC, df)
    assert grown.feature("user_id").vocabulary == ("u1", "u2", "u3", "u4")
    assert grown.feature("item_id").vocabulary == ("i1", "i2", "i3", "i4", "i9")  # history's values counted too
    tags = grown.feature("tags").vocabulary
    assert tags[:2] == ("x", "y") and set(tags) == {"x", "y", "z"}
    assert grown.feature("city") == OLD_SPEC.feature("city") and grown.feature("age") == OLD_SPEC.feature("age")


def test_known_scores_are_unchanged_and_new_ids_get_initializer_rows():
    old = trained_model()
    # The new span's vocabularies: re-ordered (every known value moves to another id) and grown.
    new_spec = FeatureSpec((
        CategoricalFeature("user_id", vocabulary=("u9", "u3", "u1", "u2")),
        CategoricalFeature("item_id", vocabulary=("i4", "i8", "i2", "i1", "i3")),
        ListFeature("history", 3, shares="item_id"),
        ListFeature("tags", 2, vocabulary=("z", "y", "x")),
        CategoricalFeature("city", hash_buckets=7),
        NumericFeature("age", mean=40.0, variance=100.0),
    ), (Label("click"),))
    new = SingleTask(new_spec, ["click"], units=[8], fm="per_task")
    initial = new.get_layer("embedding").embeddings.numpy().copy()
    report = warm_start(new, old)

    # Known values only: tag "z" was out of the trained vocabulary (the OOV row) and is new now.
    known = span(["u1", "u2", "u3"], ["i1", "i2", "i3", "i4"], seed=5, tags=("x", "y"))
    before = old.predict(known, verbose=0)["click"]
    after = new.predict(known, verbose=0)["click"]
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert not np.allclose(before, before.mean())  # the scores carry the users and items, not a constant

    table = new.get_layer("embedding").embeddings.numpy()
    old_table = old.get_layer("embedding").embeddings.numpy()
    # u9 (new id 1 of field 0) keeps the new model's initializer row; u3 (new id 2) has the old id 3's row.
    np.testing.assert_array_equal(table[1], initial[1])
    np.testing.assert_array_equal(table[2], old_table[3])
    np.testing.assert_array_equal(table[0], old_table[0])  # the OOV row stays the OOV row
    # i8 (item field starts after the 5 user ids; new id 2) is new; i4 (new id 1) was old id 4.
    np.testing.assert_array_equal(table[5 + 2], initial[5 + 2])
    np.testing.assert_array_equal(table[5 + 1], old_table[4 + 4])
    # city is hashed: its 7 rows are kept as they are (after 5 user + 6 item ids).
    np.testing.assert_array_equal(table[11:18], old_table[4 + 5:4 + 5 + 7])
    assert report.carried["user_id"] == 4 and report.new["user_id"] == 1
    assert report.carried["item_id"] == 5 and report.new["item_id"] == 1
    assert report.carried["tags"] == 3 and report.new["tags"] == 1

    fresh = span(["u9"], ["i8"], seed=6)  # new ids score with their own rows, not the OOV row
    oov = fresh.assign(user_id="nobody", item_id="nothing", history=[["nothing"] * 3] * len(fresh))
    assert not np.allclose(new.predict(fresh, verbose=0)["click"], new.predict(oov, verbose=0)["click"])


def test_warm_start_from_a_keras_file(tmp_path):
    old = trained_model()
    path = str(tmp_path / "day1.keras")
    old.save(path)
    new = SingleTask(grown_spec(OLD_SPEC, span(["u7"], ["i7"], seed=2)), ["click"], units=[8], fm="per_task")
    warm_start(new, path)
    known = span(["u1", "u2"], ["i1", "i3"], seed=3, tags=("x", "y"))
    np.testing.assert_allclose(new.predict(known, verbose=0)["click"], old.predict(known, verbose=0)["click"],
                               atol=1e-6)


def test_shape_mismatch_names_the_layer_and_leaves_the_model_alone():
    old = trained_model()
    wider = SingleTask(OLD_SPEC, ["click"], units=[16], fm="per_task")
    initial = [w.numpy().copy() for w in wider.weights]
    with pytest.raises(WarmStartError, match="layer 'dnn'.*shape"):
        warm_start(wider, old)
    for weight, value in zip(wider.weights, initial):
        np.testing.assert_array_equal(weight.numpy(), value)
    rehashed = FeatureSpec(tuple(CategoricalFeature("city", hash_buckets=9) if f.name == "city" else f
                                 for f in OLD_SPEC.features), OLD_SPEC.labels)
    with pytest.raises(WarmStartError, match="'city' is hashed into 7 buckets"):
        warm_start(SingleTask(rehashed, ["click"], units=[8], fm="per_task"), old)
    with pytest.raises(WarmStartError, match=r"layer\(s\) \['cross'.*no layer of the same name"):
        warm_start(SingleTask(OLD_SPEC, ["click"], units=[8], fm="per_task", cross="parallel"), old)
    with pytest.raises(WarmStartError, match="no trained model at"):
        warm_start(wider, "/nonexistent/model.keras")
