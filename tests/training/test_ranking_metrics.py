import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from tfmtl.training import metrics as M

# 4 queries, top-3 lists over 6 items; item attributes
TOP_K = np.array([[0, 1, 2], [3, 4, 5], [1, 0, 5], [2, 3, 4]])
TARGETS = np.array([2, 0, 5, 3])  # hits: yes, no, yes, yes
PRICE = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
FAIR_GROUP = np.array([0, 0, 1, 1, 2, 2])
POP_GROUP = np.array([0, 0, 0, 1, 1, 1])
TARGET_DIST = np.array([0.3, 0.7])


# ------------------------------------------------------------ numpy references
def np_hits(top_k, targets):
    return np.array([t in row for row, t in zip(top_k, targets)], dtype=float)


def np_rhit(top_k, targets, price):
    return float(np.mean(np_hits(top_k, targets) * price[targets]))


def np_min_hit(top_k, targets, group):
    hits, g = np_hits(top_k, targets), group[targets]
    return min(hits[g == k].mean() for k in np.unique(g))


def np_pop_kl(top_k, group, q, eps=1e-10):
    """MoRec Eq. 9: KL(Q || P), Q the target, P the recommended groups' shares."""
    p = np.bincount(group[top_k.ravel()], minlength=len(q)) / top_k.size
    q = q / q.sum()
    return float(sum(qi * np.log((qi + eps) / (pi + eps)) for pi, qi in zip(p, q) if qi > 0))


def test_hand_made_lists_match_numpy():
    assert M.hits_at_k(TOP_K, TARGETS).numpy().tolist() == [1.0, 0.0, 1.0, 1.0]
    assert float(M.hit_at_k(TOP_K, TARGETS)) == pytest.approx(0.75)
    # rHit: (3 + 0 + 6 + 4) / 4 = 3.25
    assert float(M.revenue_hit_at_k(TOP_K, TARGETS, PRICE)) == pytest.approx(3.25)
    assert float(M.revenue_hit_at_k(TOP_K, TARGETS, PRICE)) == pytest.approx(np_rhit(TOP_K, TARGETS, PRICE))
    # groups of targets: [1, 0, 2, 1] -> group 0: 0/1, group 1: 2/2, group 2: 1/1 -> min 0
    np.testing.assert_allclose(M.group_hit_at_k(TOP_K, TARGETS, FAIR_GROUP, 3).numpy(), [0.0, 1.0, 1.0])
    assert float(M.min_group_hit_at_k(TOP_K, TARGETS, FAIR_GROUP, 3)) == np_min_hit(TOP_K, TARGETS, FAIR_GROUP)
    # P = [6/12, 6/12] (items 0,1,2 vs 3,4,5); Eq. 9: KL(Q||P) = 0.3 ln(0.3/0.5) + 0.7 ln(0.7/0.5)
    want = 0.3 * np.log(0.3 / 0.5) + 0.7 * np.log(0.7 / 0.5)
    assert float(M.popularity_kl(TOP_K, POP_GROUP, TARGET_DIST)) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(np_pop_kl(TOP_K, POP_GROUP, TARGET_DIST))


def test_pop_kl_is_kl_of_target_against_recommended():
    """MoRec Eq. 9 is D_KL(Q || P); check it on hand numbers where it differs from KL(P || Q)."""
    # 3 popularity groups; items 0-1 group 0, 2-3 group 1, 4 group 2. Lists use groups 0 and 1 only:
    # P = [3/4, 1/4, 0]; target Q = [0.5, 0.3, 0.2] -> group 2 is never recommended.
    top_k, group, q = np.array([[0, 1], [0, 2]]), np.array([0, 0, 1, 1, 2]), np.array([0.5, 0.3, 0.2])
    eps = 1e-10
    want = 0.5 * np.log(0.5 / 0.75) + 0.3 * np.log(0.3 / 0.25) + 0.2 * np.log((0.2 + eps) / eps)
    # -0.2027 + 0.0547 + 0.2 ln(2e9) (= 4.2832): the never-recommended group dominates
    assert want == pytest.approx(4.1352, abs=1e-3)
    got = float(M.popularity_kl(top_k, group, q))
    assert got == pytest.approx(want, rel=1e-4)
    # the reverse direction ignores the missing group entirely: KL(P || Q) = 0.75 ln 1.5 + 0.25 ln(0.25/0.3)
    reverse = 0.75 * np.log(0.75 / 0.5) + 0.25 * np.log(0.25 / 0.3)
    assert reverse == pytest.approx(0.2585, abs=1e-3)
    assert got - reverse > 3.5
    # percent, the unit of MoRec's tables; unnormalised targets are normalised
    assert float(M.popularity_kl(top_k, group, 10 * q, percent=True)) == pytest.approx(100 * want, rel=1e-4)
    # a target group with Q = 0 contributes nothing, even when it is recommended
    q0 = np.array([0.6, 0.4, 0.0])
    p = np.array([0.75, 0.25])
    assert float(M.popularity_kl(top_k, group, q0)) == pytest.approx(float(np.sum(q0[:2] * np.log(q0[:2] / p))),
                                                                      rel=1e-5)
    with pytest.raises(ValueError, match="target_distribution"):
        M.popularity_kl(top_k, group, [[0.5, 0.5]])


def test_cut_off_k_and_empty_groups():
    # at K=1 only [0, 3, 1, 2] count: hits [no, no, no, no]
    assert float(M.hit_at_k(TOP_K, TARGETS, k=1)) == 0.0
    assert float(M.hit_at_k(TOP_K, TARGETS, k=2)) == pytest.approx(np_hits(TOP_K[:, :2], TARGETS).mean())
    # a group with no target query (group 3) is ignored, not counted as 0
    per_group = M.group_hit_at_k(TOP_K, TARGETS, np.array([0, 0, 1, 1, 1, 1]), 4).numpy()
    assert np.isnan(per_group[2]) and np.isnan(per_group[3])
    assert float(M.min_group_hit_at_k(TOP_K, TARGETS, np.array([0, 0, 1, 1, 1, 1]), 4)) == 0.0


def test_random_lists_match_numpy():
    rng = np.random.default_rng(0)
    items, queries, k = 50, 200, 10
    top_k = np.stack([rng.choice(items, k, replace=False) for _ in range(queries)])
    targets = rng.integers(0, items, queries)
    price, fair, pop = rng.uniform(1, 10, items), rng.integers(0, 4, items), rng.integers(0, 3, items)
    q = rng.uniform(0.1, 1.0, 3)
    report = M.ranking_report(top_k, targets, item_price=price, item_group=fair, item_popularity_group=pop,
                              target_distribution=q)
    assert report == pytest.approx({"hit@10": np_hits(top_k, targets).mean(), "rhit@10": np_rhit(top_k, targets, price),
                                    "min_hit@10": np_min_hit(top_k, targets, fair),
                                    "pop_kl@10": np_pop_kl(top_k, pop, q)}, rel=1e-5)


def test_graph_and_xla_safe():
    @tf.function(jit_compile=True)
    def fn(t, y):
        return (M.hit_at_k(t, y), M.revenue_hit_at_k(t, y, PRICE), M.min_group_hit_at_k(t, y, FAIR_GROUP, 3),
                M.popularity_kl(t, POP_GROUP, TARGET_DIST))

    got = [float(v) for v in fn(tf.constant(TOP_K), tf.constant(TARGETS))]
    assert got == pytest.approx([0.75, 3.25, 0.0, np_pop_kl(TOP_K, POP_GROUP, TARGET_DIST)], rel=1e-5)


def test_retrieval_through_tfrs_matches_numpy():
    rng = np.random.default_rng(1)
    queries, candidates = rng.normal(size=(5, 8)), rng.normal(size=(30, 8))
    ids = np.arange(100, 130)
    scores, top = M.retrieve_top_k(queries, candidates, k=4, candidate_ids=ids)
    dots = queries @ candidates.T
    want = ids[np.argsort(-dots, axis=1)[:, :4]]
    np.testing.assert_array_equal(top.numpy(), want)
    np.testing.assert_allclose(scores.numpy(), np.sort(dots, axis=1)[:, ::-1][:, :4], rtol=1e-5)
    # excluding each query's best item shifts the list by one
    _, top_excl = M.retrieve_top_k(queries, candidates, k=3, candidate_ids=ids, exclude=want[:, :1])
    np.testing.assert_array_equal(top_excl.numpy(), want[:, 1:4])


def test_top_k_from_scores_with_exclusions():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.3, 0.2, 0.8, 0.1]])
    assert M.top_k_from_scores(scores, k=2).numpy().tolist() == [[1, 3], [2, 0]]
    mask = np.array([[False, True, False, False], [False, False, False, False]])
    assert M.top_k_from_scores(scores, k=2, exclude_mask=mask).numpy().tolist() == [[3, 2], [2, 0]]


def test_validity_and_improvement():
    base = {"hit@10": 0.20, "rhit@10": 1.0, "min_hit@10": 0.10, "pop_kl@10": 0.40}
    run = {"hit@10": 0.195, "rhit@10": 1.2, "min_hit@10": 0.12, "pop_kl@10": 0.30}
    assert M.is_valid(run["hit@10"], base["hit@10"])  # 0.195 >= 0.97 * 0.2 = 0.194
    assert not M.is_valid(0.19, base["hit@10"])
    # Imp over the three non-accuracy objectives: (0.2 + 0.2 + 0.25) / 3
    imp = M.relative_improvement(run, base, names=["rhit@10", "min_hit@10", "pop_kl@10"])
    assert imp == pytest.approx((0.2 + 0.2 + 0.25) / 3)


def test_task_aucs_match_sklearn():
    rng = np.random.default_rng(2)
    y = {t: rng.integers(0, 2, 500) for t in ("ctr", "cvr")}
    p = {t: np.clip(0.3 * y[t] + rng.uniform(0, 0.7, 500), 0, 1) for t in y}
    got = M.task_aucs(y, p)
    for task in y:
        assert got[task] == pytest.approx(roc_auc_score(y[task], p[task]), abs=2e-3)
    metrics = M.auc_metrics(["ctr", "cvr"])
    assert set(metrics) == {"ctr", "cvr"} and metrics["ctr"][0].name == "auc"


def test_retrieval_with_row_index_ids_int64_exclusions_and_chunks():
    # No candidate ids (tfrs uses int32 row indices) and numpy int64 exclusions padded with -1,
    # answered in uneven chunks (7 queries, chunks of 3): same lists as one numpy ranking.
    rng = np.random.default_rng(3)
    queries, candidates = rng.normal(size=(7, 4)), rng.normal(size=(20, 4))
    exclude = np.full((7, 3), -1, np.int64)
    order = np.argsort(-(queries @ candidates.T), axis=1)
    for q in range(7):
        exclude[q, : q % 3 + 1] = order[q, : q % 3 + 1]  # drop the best 1-3 items
    want = np.stack([[i for i in order[q] if i not in exclude[q]][:5] for q in range(7)])
    _, top = M.retrieve_top_k(queries, candidates, k=5, exclude=exclude, query_batch_size=3)
    np.testing.assert_array_equal(top.numpy(), want)
    _, whole = M.retrieve_top_k(queries, candidates, k=5, query_batch_size=3)
    np.testing.assert_array_equal(whole.numpy(), order[:, :5])
