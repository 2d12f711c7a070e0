import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import two_task_model

from tfmtl.compat import keras
from tfmtl.training import (
    AdaptiveSampler,
    AlignmentSampling,
    FairnessSampling,
    MultiObjectiveModel,
    RevenueSampling,
    StaticWeights,
    sign_step,
)


def test_sign_step_by_hand():
    w = np.array([0.5, 0.3, 0.2])
    # +alpha on group 2, renormalise: [0.5, 0.3, 0.3] / 1.1
    np.testing.assert_allclose(sign_step(w, [0, 0, 1], 0.1), [0.5 / 1.1, 0.3 / 1.1, 0.3 / 1.1])
    # -alpha / +alpha: [0.4, 0.3, 0.3], already normalised
    np.testing.assert_allclose(sign_step(w, [-1, 0, 1], 0.1), [0.4, 0.3, 0.3])
    # bounded at 0: [max(0.5 - 0.6, 0), 0.3 + 0.6, 0.2] = [0, 0.9, 0.2] / 1.1
    np.testing.assert_allclose(sign_step(w, [-1, 1, 0], 0.6), [0.0, 0.9 / 1.1, 0.2 / 1.1])
    # inactive groups stay at 0 and get no push
    np.testing.assert_allclose(sign_step([0.5, 0.5, 0.0], [0, 0, 1], 0.1, active=[True, True, False]), [0.5, 0.5, 0])
    np.testing.assert_allclose(sign_step(w, [0, 0, 0], 0.1), w)


def test_revenue_weights_follow_price_with_mean_one():
    price = np.array([1.0, 2.0, 5.0])
    rule = RevenueSampling(key="item", table=price)
    train_items = np.array([0, 0, 1, 2])  # mean training price = (1 + 1 + 2 + 5) / 4 = 2.25
    rule.adapt(train_items)
    got = rule.example_weights(tf.constant([[0], [1], [2]])).numpy()
    np.testing.assert_allclose(got, price / 2.25, rtol=1e-6)
    assert rule.example_weights(tf.constant(train_items)).numpy().mean() == pytest.approx(1.0)


def test_fairness_raises_the_worst_groups_weight_by_loss():
    # items 0..3 -> groups [0, 0, 1, 2]; training shares: g0 = 4/8, g1 = 2/8, g2 = 2/8
    rule = FairnessSampling(key="item", table=[0, 0, 1, 2], alpha=0.1)
    rule.adapt(np.array([0, 1, 0, 1, 2, 2, 3, 3]))
    np.testing.assert_allclose(rule.weights, [0.5, 0.25, 0.25])
    np.testing.assert_allclose(rule.example_weights(tf.constant([0, 2, 3])).numpy(), [1.0, 1.0, 1.0])

    # validation: group 1 has the highest mean loss (0.9) -> w = [0.5, 0.35, 0.25] / 1.1
    rule.update(keys=np.array([0, 1, 2, 3, 3]), losses=np.array([0.2, 0.4, 0.9, 0.5, 0.3]))
    w = np.array([0.5, 0.35, 0.25]) / 1.1
    np.testing.assert_allclose(rule.weights, w)
    # example weight = w_g / share_g
    np.testing.assert_allclose(rule.example_weights(tf.constant([0, 2, 3])).numpy(),
                               [w[0] / 0.5, w[1] / 0.25, w[2] / 0.25], rtol=1e-6)
    # group 1 was upweighted, the others went down
    assert rule.example_weights(tf.constant([2])).numpy()[0] > 1.0 > rule.example_weights(tf.constant([0])).numpy()[0]


def test_fairness_by_hit_picks_the_lowest_hit_group():
    rule = FairnessSampling(key="item", table=[0, 1, 1], signal="hit", alpha=0.2)
    rule.adapt(np.array([0, 1, 2, 0]))  # shares [0.5, 0.5]
    # targets 0 (group 0) hit, 1 and 2 (group 1) missed -> group 1 is worst
    rule.update(top_k=np.array([[0, 5], [0, 5], [7, 0]]), targets=np.array([0, 1, 2]))
    np.testing.assert_allclose(rule.weights, np.array([0.5, 0.7]) / 1.2)


def test_alignment_moves_weights_against_the_popularity_gap():
    # items 0,1 popular (group 0), items 2,3 niche (group 1); target Q = [0.5, 0.5]
    rule = AlignmentSampling(key="item", table=[0, 0, 1, 1], target=[1.0, 1.0], alpha=0.1)
    rule.adapt(np.array([0, 0, 0, 1, 1, 1, 2, 3]))  # shares [0.75, 0.25]
    top_k = np.array([[0, 1], [1, 0], [0, 2]])  # P = [5/6, 1/6]: popular over-recommended
    np.testing.assert_allclose(rule.recommended_distribution(top_k), [5 / 6, 1 / 6])
    rule.update(top_k=top_k)
    np.testing.assert_allclose(rule.weights, [0.65, 0.35])  # [0.75 - 0.1, 0.25 + 0.1]
    scale = rule.example_weights(tf.constant([0, 2])).numpy()
    np.testing.assert_allclose(scale, [0.65 / 0.75, 0.35 / 0.25], rtol=1e-6)


def test_attach_batched_unbatched_and_merging():
    rule = FairnessSampling(key="item", table=[0, 1], alpha=0.5)
    sampler = AdaptiveSampler([rule, RevenueSampling(key="item", table=[1.0, 3.0])],
                              train_features={"item": np.array([0, 0, 0, 1])},
                              validation_data=({"item": np.array([0])}, {"y": np.array([1.0])}), output="y")
    features, labels = {"item": np.array([0, 1, 1])}, {"y": np.array([1.0, 0.0, 1.0])}
    ds = tf.data.Dataset.from_tensor_slices((features, labels, {"other": np.array([7.0, 8.0, 9.0])}))
    attached = sampler.attach(ds)
    assert attached.element_spec[2]["fairness"].shape == []
    batched = sampler.attach(tf.data.Dataset.from_tensor_slices((features, labels)).batch(3))
    _, _, weights = next(iter(batched))
    np.testing.assert_allclose(weights["fairness"].numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(weights["revenue"].numpy(), [1 / 1.5, 3 / 1.5, 3 / 1.5])
    assert [w["other"].numpy() for _, _, w in attached] == [7.0, 8.0, 9.0]

    # An update reaches the existing pipeline without rebuilding it.
    rule.step(np.array([0.0, 1.0]))  # w = [0.75, 0.75] / 1.5 -> example scale [0.5/0.75, 0.5/0.25]
    _, _, weights = next(iter(batched))
    np.testing.assert_allclose(weights["fairness"].numpy(), [0.5 / 0.75, 2.0, 2.0], rtol=1e-6)


def test_callback_updates_from_validation_during_fit():
    rng = np.random.default_rng(0)
    n = 96
    group = (np.arange(n) % 3).astype("int64")
    x = rng.normal(size=(n, 4)).astype("float32")
    ctr = (x[:, 0] > 0).astype("float32")[:, None]
    y = {"ctr": ctr, "cvr": ctr}
    features = {"x": x, "group": group}

    model = MultiObjectiveModel(two_task_model(), {"accuracy": ("ctr", "binary_crossentropy"),
                                                   "fairness": ("ctr", "binary_crossentropy"),
                                                   "cvr": "binary_crossentropy"},
                                weighting=StaticWeights({"fairness": 0.5, "cvr": 0.1}))
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    rule = FairnessSampling(key="group", num_groups=3, alpha=0.1)
    sampler = AdaptiveSampler([rule], train_features=pd.DataFrame({"group": group}),
                              validation_data=(features, y), output="ctr")

    worst = []  # runs before the sampler each epoch: the group it must upweight

    def record(epoch, logs):
        pred = model.predict(features, verbose=0)["ctr"]
        losses = keras.losses.binary_crossentropy(y["ctr"], pred).numpy()
        worst.append(int(np.argmax([losses[group == g].mean() for g in range(3)])))

    ds = sampler.attach(tf.data.Dataset.from_tensor_slices((features, y)).batch(32))
    history = model.fit(ds, epochs=3, verbose=0,
                        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=record), sampler]).history

    expected = np.full(3, 1 / 3)
    for g in worst:
        expected = sign_step(expected, np.eye(3)[g], 0.1)
    w = sampler.group_weights()["fairness"]
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert np.all(w[worst[-1]] >= w)
    assert history["sampler_fairness_max_weight"][-1] == pytest.approx(w.max())
    # The pipeline now weights group g by w_g / (1/3).
    _, _, weights = next(iter(ds))
    np.testing.assert_allclose(weights["fairness"].numpy(), 3 * w[group[:32]], rtol=1e-5)


def test_requires_the_validation_inputs_it_needs():
    with pytest.raises(ValueError, match="validation_data"):
        AdaptiveSampler([FairnessSampling(key="g", num_groups=2)])
    with pytest.raises(ValueError, match="recommend_fn"):
        AdaptiveSampler([AlignmentSampling(key="item", table=[0, 1], target=[0.5, 0.5])])
    with pytest.raises(ValueError, match="distinct"):
        AdaptiveSampler([RevenueSampling(key="a"), RevenueSampling(key="b")])
