import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tfmtl.compat import keras
from tfmtl.features import CategoricalFeature, FeatureSpec, Label, NumericFeature
from tfmtl.models import SingleTask
from tfmtl.training import GroupAUC, MultiObjectiveModel, group_auc, group_auc_metrics

# User a: a positive tied with a negative at 0.8 (1/2) and above one at 0.3 (1): AUC 1.5 / 2 = 0.75.
# User b: positives 0.2 and 0.9 against a negative 0.5: AUC 1 / 2 = 0.5. User c: one class, skipped.
HAND = dict(labels=[1, 0, 0, 1, 1, 0, 1], scores=[0.8, 0.8, 0.3, 0.2, 0.9, 0.5, 0.4],
            users=["a", "a", "a", "b", "b", "b", "c"])


def sklearn_gauc(labels, scores, users, weights=None, weighting="impressions"):
    """The definition: per-user sklearn AUC, averaged by the user's impressions / clicks / 1."""
    labels, scores, users = map(np.asarray, (labels, scores, users))
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights)
    total = count = 0.0
    for user in np.unique(users):
        rows = users == user
        if len(np.unique(labels[rows])) < 2:
            continue
        w = {"impressions": weights[rows].sum(), "clicks": weights[rows][labels[rows] == 1].sum(),
             "uniform": 1.0}[weighting]
        total += w * roc_auc_score(labels[rows], scores[rows], sample_weight=weights[rows])
        count += w
    return total / count


def random_rows(n=400, users=30, seed=0):
    rng = np.random.default_rng(seed)
    return dict(labels=(rng.random(n) < 0.35).astype(np.float32),
                scores=np.round(rng.random(n), 1).astype(np.float32),  # rounded: many ties
                users=rng.integers(0, users, n), weights=rng.uniform(0.1, 2.0, n).astype(np.float32))


def test_hand_calculation():
    args = HAND["labels"], HAND["scores"], HAND["users"]
    assert group_auc(*args) == pytest.approx((3 * 0.75 + 3 * 0.5) / 6)
    assert group_auc(*args, weighting="clicks") == pytest.approx((1 * 0.75 + 2 * 0.5) / 3)
    assert group_auc(*args, weighting="uniform") == pytest.approx((0.75 + 0.5) / 2)
    # Doubling user b's rows' weight doubles its impressions; its AUC is unchanged.
    weights = [1, 1, 1, 2, 2, 2, 1]
    assert group_auc(*args, sample_weight=weights) == pytest.approx((3 * 0.75 + 6 * 0.5) / 9)


@pytest.mark.parametrize("weighting", ["impressions", "clicks", "uniform"])
def test_matches_per_user_sklearn_on_random_data(weighting):
    rows = random_rows()
    expected = sklearn_gauc(rows["labels"], rows["scores"], rows["users"], rows["weights"], weighting)
    got = group_auc(rows["labels"], rows["scores"], rows["users"], rows["weights"], weighting=weighting)
    assert got == pytest.approx(expected, abs=1e-6)


def test_streaming_over_batches_that_split_users_equals_one_shot():
    rows = random_rows(seed=1)
    metric = GroupAUC()
    for start in range(0, 400, 37):  # 37-row batches: almost every user is split
        part = slice(start, start + 37)
        metric.update_state(rows["labels"][part, None], rows["scores"][part, None], rows["weights"][part],
                            groups=rows["users"][part])
    expected = sklearn_gauc(rows["labels"], rows["scores"], rows["users"], rows["weights"])
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0  # nothing seen: no group with both classes
    metric.update_state([1, 0], [0.3, 0.6], groups=["x", "x"])
    assert float(metric.result()) == pytest.approx(0.0)
    metric.update_state([1], [0.9], groups=["x"])  # the same user later: now 1 win of 2 pairs
    assert float(metric.result()) == pytest.approx(0.5)


def test_string_and_integer_ids_agree():
    rows = random_rows(seed=2)
    by_int = group_auc(rows["labels"], rows["scores"], rows["users"])
    by_str = group_auc(rows["labels"], rows["scores"], rows["users"].astype(str))
    assert by_int == pytest.approx(by_str)


def test_serialization_round_trip():
    metric = GroupAUC(group="user_id", weighting="clicks", name="user_gauc")
    config = metric.get_config()
    assert (config["group"], config["weighting"], config["name"]) == ("user_id", "clicks", "user_gauc")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, GroupAUC)
    assert (restored.group, restored.weighting, restored.name) == ("user_id", "clicks", "user_gauc")
    args = HAND["labels"], HAND["scores"]
    restored.update_state(*args, groups=HAND["users"])
    assert float(restored.result()) == pytest.approx((1 * 0.75 + 2 * 0.5) / 3)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="weighting must be one of"):
        GroupAUC(weighting="users")
    with pytest.raises(ValueError, match="no group ids"):
        GroupAUC().update_state([1], [0.5])
    with pytest.raises(ValueError, match="needs the batch's features"):
        GroupAUC(group="user_id").update_state([1], [0.5])
    with pytest.raises(ValueError, match="strings or integers"):
        GroupAUC().update_state([1], [0.5], groups=[0.5])


def _user_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 25, n)
    x = rng.normal(size=n)
    click = (x + 0.4 * rng.normal(size=n) + 0.2 * (users % 3) > 0.3).astype(int)
    return pd.DataFrame({"user_id": users.astype(str), "x": x.astype(np.float32), "click": click})


def test_model_evaluate_reads_the_user_column_on_split_batches():
    df = _user_frame()
    spec = FeatureSpec((CategoricalFeature("user_id", vocabulary=tuple(str(u) for u in range(25))),
                        NumericFeature("x")), (Label("click"),))
    model = SingleTask(spec, ["click"], units=[8])
    model.compile(metrics={"click": [keras.metrics.AUC(name="auc"), *group_auc_metrics(["click"], "user_id")["click"]]})
    model.fit(df, epochs=1, batch_size=64, verbose=0)
    logs = model.evaluate(df, batch_size=32, verbose=0, return_dict=True)  # 32 rows: users split across batches
    scores = model.predict(df, verbose=0)["click"].ravel()
    # One output: Keras logs the metric without the output's prefix.
    assert logs["gauc"] == pytest.approx(sklearn_gauc(df["click"], scores, df["user_id"]), abs=1e-5)
    # The multi-objective wrapper hands its batches' features on too.
    wrapped = MultiObjectiveModel(model, {"click": ("click", "binary_crossentropy")})
    wrapped.compile(metrics={"click": [GroupAUC(group="user_id")]})
    assert wrapped.evaluate(df, batch_size=32, verbose=0, return_dict=True)["gauc"] == pytest.approx(logs["gauc"],
                                                                                                     abs=1e-5)
    wrong = SingleTask(spec, ["click"], units=[8])
    wrong.compile(metrics={"click": [GroupAUC(group="item_id")]})
    with pytest.raises(ValueError, match="'item_id' is not an input"):
        wrong.evaluate(df, verbose=0)
