"""PID-controlled multi-objective training (MoRec's tri-level scheme) on two problems.

    nice -n 10 .venv/bin/python -m bench.pid_control              # both parts -> bench/results/pid_control.*
    nice -n 10 .venv/bin/python -m bench.pid_control --quick --out /tmp/pid   # smoke run (a few minutes)

(a) **census** (MMoE, tasks ``income_50k`` and ``never_married``): a single-objective income
    model is trained first; the set point is its converged training income loss, relaxed by
    ``--relax``. Every method then continues from that checkpoint with both objectives (as
    MoRec fine-tunes a pretrained model): static weights (several ``w_never_married``),
    uncertainty weighting and the PID controller on the income weight. Reported: how well the
    training income loss (a 100-step moving average) stays at the set point, plus validation
    losses and AUCs.

(b) **MovieLens-100k top-K**: a small two-tower click model (dot product + item bias, 4
    uniform negatives per rated pair) is pretrained on the click objective, then continued
    with the click (accuracy) objective plus revenue, fairness and popularity-alignment
    objectives, which are the click loss under sample weights from :class:`AdaptiveSampler`
    (MoRec's middle level; the weights act on the rated pairs, negatives keep weight 1).
    Methods: static weights, uncertainty weighting, PID + adaptive sampler; all share the
    sampler. The base is the click-only model trained for the same number of epochs; the
    PID set point is its final training click loss, relaxed. Split: per user by time, the
    last 3 ratings are test, the 2 before validation (sampler signals), the rest train; the
    ranking is over all items except the user's train (and, for test, validation) items.
    Item attributes (all from the training split only):

    * fairness group: the item's first genre (MovieLens genre order); first genres with
      under 2% of the training interactions are pooled into "Other" so every group has
      enough test queries for a per-group Hit@10;
    * popularity bin: 10 bins of items sorted by training popularity, each holding about a
      tenth of the training interactions (bin 9 = the head); the alignment target Q is the
      training interaction share per bin;
    * price (a synthetic revenue proxy; MovieLens has no prices):
      ``price = 1 + 2 * recency + 2 * (1 - popularity_percentile)``, with
      ``recency = clip((release_year - 1930) / (1998 - 1930), 0, 1)`` (missing year: median)
      and the percentile of the item's training popularity (1 = most popular); range [1, 5]:
      new releases and long-tail catalogue titles are dear.

Metrics (:mod:`tfmtl.training.metrics`): Hit@10, rHit@10 (price-weighted hit), min-Hit@10
(worst fairness group), Pop-KL@10 (MoRec Eq. 9: KL of the target popularity-bin distribution
Q from the recommended one P), validity (Hit@10 >= 97% of the base's) and Imp (mean relative improvement over the base
on rHit, min-Hit and Pop-KL, the last one lower-is-better).

Writes ``<out>/pid_control.{json,md}`` and ``pid_control_{census,movielens}.png``
atomically; the JSON holds the exact command, settings and per-step curves (subsampled).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmtl and tfrs are Keras 2; before TensorFlow loads

import tensorflow as tf

from bench import _report
from tfmtl.compat import keras
from tfmtl.datasets import census, movielens
from tfmtl.models import MMoE
from tfmtl.training import (
    AdaptiveSampler,
    AlignmentSampling,
    FairnessSampling,
    MultiObjectiveModel,
    PIDController,
    PIDWeighting,
    RevenueSampling,
    StaticWeights,
    UncertaintyWeighting,
    Weighting,
)
from tfmtl.training import metrics as M

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BCE = "binary_crossentropy"
K = 10


# ============================================================================ shared helpers
class StepLog(keras.callbacks.Callback):
    """Per-step ``loss_<objective>`` and ``q_<objective>`` of a MultiObjectiveModel fit.

    Keras reports running epoch means; the batch value is recovered from two consecutive
    means (``n * m_n - (n - 1) * m_{n-1}``). Weights are last values already.
    """

    def __init__(self):
        super().__init__()
        self.steps: dict[str, list[float]] = {}
        self._means: dict[str, float] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._means = {}

    def on_train_batch_end(self, batch, logs=None):
        n = batch + 1
        for key, value in (logs or {}).items():
            value = float(value)
            if key.startswith("loss_"):
                self.steps.setdefault(key, []).append(n * value - (n - 1) * self._means.get(key, 0.0))
                self._means[key] = value
            elif key.startswith("q_"):
                self.steps.setdefault(key, []).append(value)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` steps (shorter at the start)."""
    values = np.asarray(values, np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (sums[idx] - sums[lo]) / (idx - lo)


def tracking(loss: Sequence[float], set_point: float, window: int, settle: float, band: float) -> dict[str, float]:
    """How well a per-step loss stays at ``set_point`` after the first ``settle`` share of steps."""
    smooth = moving_average(loss, window)
    start = int(settle * len(smooth))
    rel = (smooth[start:] - set_point) / set_point
    peak = (smooth - set_point) / set_point
    return {"final_loss": float(smooth[-1]), "final_rel_dev": float(rel[-1]), "peak_rel_dev": float(peak.max()),
            "mean_rel_dev": float(np.mean(rel)), "mean_abs_rel_dev": float(np.mean(np.abs(rel))),
            "share_in_band": float(np.mean(np.abs(rel) <= band))}


def curves(steps: Mapping[str, list[float]], window: int, stride: int) -> dict[str, list[float]]:
    """Per-step series for the JSON: ``window``-step means, subsampled every ``stride`` steps.

    The weights are smoothed too: a PID weight moves every step with the mini-batch noise.
    """
    out = {}
    for key, values in steps.items():
        out[key] = [round(float(v), 6) for v in moving_average(values, window)[stride - 1::stride]]
    return out


def bce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, np.float64).reshape(-1), 1e-7, 1 - 1e-7)
    y = np.asarray(y, np.float64).reshape(-1)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


class Clock:
    """Wall and process-CPU seconds since creation."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"wall_s": round(time.perf_counter() - self.wall, 1), "cpu_s": round(time.process_time() - self.cpu, 1)}


def pid_weighting(accuracy: str, args: argparse.Namespace, set_point: float, ki: float,
                  preferences: Mapping[str, float], auxiliary_scale: float) -> PIDWeighting:
    """The PID weighting of both parts (gains in loss units; see ``--kp`` and docs/training.md)."""
    # Linear P by default: the losses here are ~0.1-0.4 and deviations ~0.01, where MoRec's
    # sigmoid P (Kp / (1 + e^e)) is a constant Kp/2 for all practical purposes. q_min is the
    # offset (q at the set point with no integral), output_min the floor.
    controller = PIDController(set_point=set_point, kp=args.kp, ki=ki, q_min=args.q_offset,
                               sigmoid_p=args.sigmoid_p, output_min=args.q_floor, output_max=args.q_max,
                               integral_min=-args.integral_clamp, integral_max=args.integral_clamp,
                               initial_weight=args.q_offset, name="pid")
    return PIDWeighting(accuracy, controller, preferences=preferences, auxiliary_scale=auxiliary_scale)


def selected(name: str, args: argparse.Namespace) -> bool:
    return not args.only or any(name.startswith(prefix) for prefix in args.only)


# ============================================================================ (a) census
CENSUS_OBJECTIVES = {"income": ("income_50k", BCE), "never_married": ("never_married", BCE)}


def census_part(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    splits = census.load_census(nrows=args.census_rows, numeric_encoding="scalar")  # as the integration test
    validation = splits.validation.iloc[: args.census_val_rows]
    keras.utils.set_random_seed(args.seed)
    base = MMoE(splits.spec, tasks=["income_50k", "never_married"], num_experts=args.census_experts,
                expert_units=[args.census_expert_units], tower_units=[8], batch_norm=False, cross=None)
    train = base.make_dataset(splits.train, batch_size=args.census_batch, shuffle=True, seed=args.seed).repeat()
    val_x = base.make_dataset(validation, with_labels=False, batch_size=4096)
    val_y = {t: splits.spec.label_array(validation, t) for t in ("income_50k", "never_married")}

    def evaluate(model: keras.Model) -> dict[str, float]:
        pred = model.predict(val_x, verbose=0)
        aucs = M.task_aucs(val_y, pred)
        return {"val_loss_income": bce(val_y["income_50k"], pred["income_50k"]),
                "val_loss_never_married": bce(val_y["never_married"], pred["never_married"]),
                "val_auc_income": aucs["income_50k"], "val_auc_never_married": aucs["never_married"]}

    # 1. Single-objective income model. Its checkpoint after the pretraining steps is where
    #    every method starts; trained on for as many steps as the methods get, its loss is
    #    "the loss a single-objective model converges to" at this budget: the set point source.
    single = MultiObjectiveModel(base, {"income": CENSUS_OBJECTIVES["income"]})
    single.compile(optimizer=keras.optimizers.Adam(args.census_lr))
    single.fit(train, epochs=1, steps_per_epoch=args.census_pretrain_steps, verbose=0)
    pretrained = base.get_weights()
    log = StepLog()
    single.fit(train, epochs=1, steps_per_epoch=args.census_steps, verbose=0, callbacks=[log])
    converged = float(np.mean(log.steps["loss_income"][-args.tail:]))
    set_point = (1.0 + args.relax) * converged
    result: dict[str, Any] = {
        "rows": {"train": len(splits.train), "validation": len(validation)},
        "single_objective": {"converged_train_loss_income": converged, **evaluate(single),
                             "curves": curves(log.steps, args.window, args.stride)},
        "set_point": set_point, "methods": {}}
    print(f"[census] single-objective income loss {converged:.4f} -> set point {set_point:.4f} "
          f"({clock.read()})", flush=True)

    # 2. Every method continues from the single-objective checkpoint with both objectives.
    methods: list[tuple[str, Callable[[], Weighting]]] = [
        (f"static w_nm={w:g}", lambda w=w: StaticWeights({"income": 1.0, "never_married": w}))
        for w in args.census_static]
    methods += [("uncertainty", UncertaintyWeighting),
                ("pid", lambda: pid_weighting("income", args, set_point, args.census_ki, {"never_married": 1.0}, 1.0))]
    for name, make_weighting in methods:
        if not selected(name, args):
            continue
        run_clock = Clock()
        keras.utils.set_random_seed(args.seed + 1)
        base.set_weights(pretrained)
        model = MultiObjectiveModel(base, CENSUS_OBJECTIVES, accuracy_objective="income", weighting=make_weighting())
        model.compile(optimizer=keras.optimizers.Adam(args.census_lr))
        log = StepLog()
        model.fit(train, epochs=1, steps_per_epoch=args.census_steps, verbose=0, callbacks=[log])
        track = tracking(log.steps["loss_income"], set_point, args.window, args.settle, args.band)
        q = {key: float(np.mean(values[-args.tail:])) for key, values in log.steps.items() if key.startswith("q_")}
        nm = float(np.mean(log.steps["loss_never_married"][-args.tail:]))
        result["methods"][name] = {**track, "final_loss_never_married": nm, "final_q": q, **evaluate(model),
                                   "curves": curves(log.steps, args.window, args.stride), **run_clock.read()}
        print(f"[census] {name}: income {track['final_loss']:.4f} ({track['final_rel_dev']:+.1%} of set point, "
              f"{track['share_in_band']:.0%} in band), never_married {nm:.4f}, q {q} ({run_clock.read()})",
              flush=True)
    result.update(clock.read())
    return result


# ============================================================================ (b) MovieLens
OTHER_GENRE_SHARE = 0.02
POP_BINS = 10


def movielens_data(test_per_user: int = 3, val_per_user: int = 2) -> dict[str, Any]:
    """Time-ordered per-user split and the item attributes (groups, popularity bins, prices)."""
    ratings = movielens.load_ratings()
    items = movielens.load_items().sort_values("movie_id").reset_index(drop=True)
    users = np.sort(ratings["user_id"].unique())
    ratings["u"] = np.searchsorted(users, ratings["user_id"].to_numpy())
    ratings["i"] = np.searchsorted(items["movie_id"].to_numpy(), ratings["movie_id"].to_numpy())
    ratings = ratings.sort_values(["u", "timestamp", "i"], kind="stable")
    from_end = ratings.groupby("u").cumcount(ascending=False).to_numpy()
    part = np.where(from_end < test_per_user, "test", np.where(from_end < test_per_user + val_per_user, "val", "train"))
    split = {name: (ratings["u"].to_numpy()[part == name], ratings["i"].to_numpy()[part == name])
             for name in ("train", "val", "test")}
    num_users, num_items = len(users), len(items)
    train_u, train_i = split["train"]

    counts = np.bincount(train_i, minlength=num_items).astype(np.float64)
    # Popularity bins of (about) equal training interaction mass, tail -> head.
    order = np.argsort(counts, kind="stable")
    mass_before = np.cumsum(counts[order]) - counts[order]
    pop_bin = np.empty(num_items, np.int64)
    pop_bin[order] = np.minimum((POP_BINS * mass_before / counts.sum()).astype(np.int64), POP_BINS - 1)
    pop_target = np.bincount(pop_bin, weights=counts, minlength=POP_BINS) / counts.sum()

    first = items["genres"].str.split("|").str[0].replace("", "unknown").to_numpy()
    share = {g: counts[first == g].sum() / counts.sum() for g in np.unique(first)}
    names = sorted((g for g, s in share.items() if s >= OTHER_GENRE_SHARE), key=lambda g: -share[g]) + ["Other"]
    group = np.array([names.index(g) if g in names else len(names) - 1 for g in first], np.int64)

    year = items["release_year"].fillna(items["release_year"].median()).to_numpy()
    recency = np.clip((year - 1930.0) / (1998.0 - 1930.0), 0.0, 1.0)
    percentile = (np.argsort(np.argsort(counts, kind="stable"), kind="stable") + 0.5) / num_items
    price = 1.0 + 2.0 * recency + 2.0 * (1.0 - percentile)

    genres = items[list(movielens.GENRE_COLUMNS)].to_numpy(np.float32)
    seen_train = [[] for _ in range(num_users)]
    for u, i in zip(train_u, train_i):
        seen_train[u].append(i)
    seen_val = [list(s) for s in seen_train]
    for u, i in zip(*split["val"]):
        seen_val[u].append(i)
    group_shares = np.bincount(group, weights=counts, minlength=len(names)) / counts.sum()
    return {"split": split, "num_users": num_users, "num_items": num_items, "genres": genres,
            "group": group, "group_names": names, "group_shares": group_shares, "pop_bin": pop_bin,
            "pop_target": pop_target, "price": price,
            "exclude_val": _pad(seen_train), "exclude_test": _pad(seen_val)}


def _pad(rows: list[list[int]]) -> np.ndarray:
    """Ragged id lists as one ``[N, max_len]`` array padded with -1 (never an item id)."""
    out = np.full((len(rows), max(len(r) for r in rows)), -1, np.int64)
    for n, row in enumerate(rows):
        out[n, : len(row)] = row
    return out


class TwoTower:
    """``click = sigmoid(<u, v_i> + b_i)``, ``v_i`` = item id embedding + projected genres.

    ``model`` maps ``{"user", "item"}`` to ``{"click": [B, 1]}``; :meth:`top_k` retrieves
    with ``[u, 1] . [v_i, b_i]`` (the same score) through tfrs' BruteForce.
    """

    def __init__(self, num_users: int, num_items: int, genres: np.ndarray, dim: int, l2: float):
        reg = keras.regularizers.l2(l2) if l2 else None
        user = keras.Input([], dtype="int64", name="user")
        item = keras.Input([], dtype="int64", name="item")
        u = keras.layers.Embedding(num_users, dim, embeddings_regularizer=reg, name="user_embedding")(user)
        genre = keras.layers.Embedding(num_items, genres.shape[1], trainable=False, name="genres",
                                       embeddings_initializer=keras.initializers.Constant(genres))(item)
        v = keras.layers.Add(name="item_vector")([
            keras.layers.Embedding(num_items, dim, embeddings_regularizer=reg, name="item_embedding")(item),
            keras.layers.Dense(dim, use_bias=False, name="genre_projection")(genre)])
        b = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros", name="item_bias")(item)
        logit = keras.layers.Add(name="logit")([keras.layers.Dot(axes=1)([u, v]), b])
        click = keras.layers.Activation("sigmoid", name="click")(logit)
        self.model = keras.Model({"user": user, "item": item}, {"click": click}, name="two_tower")
        self.user_tower = keras.Model(user, u)
        self.item_tower = keras.Model(item, keras.layers.Concatenate()([v, b]))
        self.num_users, self.num_items = num_users, num_items

    def top_k(self, exclude: np.ndarray, k: int = K) -> np.ndarray:
        """``[num_users, k]`` item ids for every user, ``exclude`` ``[num_users, E]`` left out."""
        users = self.user_tower(tf.range(self.num_users, dtype=tf.int64))
        queries = tf.concat([users, tf.ones([self.num_users, 1])], axis=1)
        candidates = self.item_tower(tf.range(self.num_items, dtype=tf.int64))
        _, ids = M.retrieve_top_k(queries, candidates, k=k, exclude=exclude, query_batch_size=128)
        return ids.numpy()


def click_dataset(users: np.ndarray, items: np.ndarray, data: Mapping[str, Any], args: argparse.Namespace,
                  sampler: AdaptiveSampler | None = None) -> tf.data.Dataset:
    """Batches of rated pairs (weighted by the sampler) plus ``--negatives`` uniform negatives each."""
    n, negatives, num_items = len(users), args.negatives, data["num_items"]
    pos = tf.data.Dataset.from_tensor_slices(({"user": users, "item": items}, {"click": np.ones([n, 1], "float32")}))
    pos = pos.shuffle(n, seed=args.seed, reshuffle_each_iteration=True).batch(args.ml_batch)
    if sampler is not None:
        pos = sampler.attach(pos)  # before the negatives: MoRec reweights interactions, not exposures
    pos = tf.data.Dataset.zip((pos, tf.data.Dataset.random(seed=args.seed).batch(2)))

    def add_negatives(element, seed):
        x, y = element[0], element[1]
        b = tf.shape(x["user"])[0]
        neg_items = tf.random.stateless_uniform([b * negatives], seed, 0, num_items, dtype=tf.int64)
        x = {"user": tf.concat([x["user"], tf.repeat(x["user"], negatives)], 0),
             "item": tf.concat([x["item"], neg_items], 0)}
        y = {"click": tf.concat([y["click"], tf.zeros([b * negatives, 1])], 0)}
        if len(element) == 2:
            return x, y
        weights = {k: tf.concat([w, tf.ones([b * negatives])], 0) for k, w in element[2].items()}
        return x, y, weights

    return pos.map(add_negatives, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def movielens_part(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    data = movielens_data()
    train_u, train_i = data["split"]["train"]
    val_u, val_i = data["split"]["val"]
    test_u, test_i = data["split"]["test"]
    keras.utils.set_random_seed(args.seed)
    net = TwoTower(data["num_users"], data["num_items"], data["genres"], args.ml_dim, args.ml_l2)
    steps_per_epoch = int(np.ceil(len(train_u) / args.ml_batch))

    def report(exclude: np.ndarray, users: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        lists = net.top_k(exclude)[users]
        return lists, M.ranking_report(lists, targets, item_price=data["price"], item_group=data["group"],
                                       num_groups=len(data["group_names"]),
                                       item_popularity_group=data["pop_bin"], target_distribution=data["pop_target"])

    def recommend_validation(_model) -> tuple[np.ndarray, np.ndarray]:
        return net.top_k(data["exclude_val"])[val_u], val_i

    # 1. Pretrain on clicks only, then the base continues on clicks only (the reference).
    accuracy = {"accuracy": ("click", BCE)}
    base = MultiObjectiveModel(net.model, accuracy)
    base.compile(optimizer=keras.optimizers.Adam(args.ml_lr))
    base.fit(click_dataset(train_u, train_i, data, args), epochs=args.ml_pretrain_epochs, verbose=0)
    pretrained = net.model.get_weights()
    _, pretrain_report = report(data["exclude_test"], test_u, test_i)
    log = StepLog()
    base.fit(click_dataset(train_u, train_i, data, args), epochs=args.ml_epochs, verbose=0, callbacks=[log])
    base_loss = float(np.mean(log.steps["loss_accuracy"][-steps_per_epoch:]))
    set_point = (1.0 + args.ml_relax) * base_loss
    _, base_report = report(data["exclude_test"], test_u, test_i)
    result: dict[str, Any] = {
        "sizes": {"users": data["num_users"], "items": data["num_items"], "train": len(train_u),
                  "validation": len(val_u), "test": len(test_u)},
        "groups": data["group_names"], "group_shares": [round(float(s), 4) for s in data["group_shares"]],
        "pop_target": [round(float(q), 4) for q in data["pop_target"]],
        "price": {"min": float(data["price"].min()), "mean": float(data["price"].mean()),
                  "max": float(data["price"].max())},
        "pretrained": pretrain_report,
        "base": {**base_report, "final_loss_accuracy": base_loss, "curves": curves(log.steps, args.window,
                                                                                    args.stride)},
        "set_point": set_point, "methods": {}}
    print(f"[movielens] base {base_report}; click loss {base_loss:.4f} -> set point {set_point:.4f} "
          f"({clock.read()})", flush=True)

    # 2. Multi-objective continuation from the pretrained checkpoint; all methods share the sampler.
    others = ("revenue", "fairness", "alignment")
    objectives = {"accuracy": ("click", BCE), **{name: ("click", BCE) for name in others}}
    aux = args.ml_auxiliary_scale / len(others)
    methods: list[tuple[str, Callable[[], Weighting]]] = [
        ("static equal", lambda: StaticWeights({name: 1.0 for name in others})),
        (f"static light ({aux:.3g} each)", lambda: StaticWeights({name: aux for name in others})),
        ("uncertainty", UncertaintyWeighting),
        ("pid + sampler", lambda: pid_weighting("accuracy", args, set_point, args.ml_ki,
                                                {name: 1.0 / len(others) for name in others},
                                                args.ml_auxiliary_scale))]
    for name, make_weighting in methods:
        if not selected(name, args):
            continue
        run_clock = Clock()
        keras.utils.set_random_seed(args.seed + 1)
        net.model.set_weights(pretrained)
        rules = [RevenueSampling(key="item", table=data["price"]),
                 FairnessSampling(key="item", table=data["group"], num_groups=len(data["group_names"]),
                                  signal="hit", alpha=args.alpha),
                 AlignmentSampling(key="item", table=data["pop_bin"], target=data["pop_target"], alpha=args.alpha)]
        sampler = AdaptiveSampler(rules, train_features={"item": train_i}, recommend_fn=recommend_validation)
        model = MultiObjectiveModel(net.model, objectives, accuracy_objective="accuracy", weighting=make_weighting())
        model.compile(optimizer=keras.optimizers.Adam(args.ml_lr))
        log = StepLog()
        history = model.fit(click_dataset(train_u, train_i, data, args, sampler), epochs=args.ml_epochs,
                            verbose=0, callbacks=[log, sampler]).history
        _, rep = report(data["exclude_test"], test_u, test_i)
        hit = rep[f"hit@{K}"]
        entry = {**rep, "valid": M.is_valid(hit, base_report[f"hit@{K}"]),
                 "imp": M.relative_improvement(rep, base_report, names=[f"rhit@{K}", f"min_hit@{K}", f"pop_kl@{K}"]),
                 **tracking(log.steps["loss_accuracy"], set_point, args.window, args.settle, args.band),
                 "final_q": {k: float(np.mean(v[-steps_per_epoch:])) for k, v in log.steps.items()
                             if k.startswith("q_")},
                 "final_losses": {k: float(np.mean(v[-steps_per_epoch:])) for k, v in log.steps.items()
                                  if k.startswith("loss_")},
                 "sampler": {k: [round(float(x), 4) for x in w] for k, w in sampler.group_weights().items()},
                 "sampler_max_weight": {k: v for k, v in history.items() if k.startswith("sampler_")},
                 "curves": curves(log.steps, args.window, args.stride), **run_clock.read()}
        result["methods"][name] = entry
        print(f"[movielens] {name}: hit {hit:.4f} rhit {rep[f'rhit@{K}']:.4f} min_hit {rep[f'min_hit@{K}']:.4f} "
              f"pop_kl {rep[f'pop_kl@{K}']:.4f} valid {entry['valid']} imp {entry['imp']:+.3f}; "
              f"q {entry['final_q']} ({run_clock.read()})", flush=True)
    result.update(clock.read())
    return result


# ============================================================================ output
def _save_figure(fig, path: str) -> None:
    _report.save_figure(fig, path, dpi=110)


def plot_census(result: Mapping[str, Any], args: argparse.Namespace, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    sp = result["set_point"]
    ref = result["single_objective"]["curves"]["loss_income"]
    axes[0].plot(np.arange(1, len(ref) + 1) * args.stride, ref, color="grey", ls=":", lw=1.2,
                 label="income only (set-point source)")
    for name, run in result["methods"].items():
        c = run["curves"]
        steps = np.arange(1, len(c["loss_income"]) + 1) * args.stride
        style = {"lw": 2.2, "color": "black"} if name == "pid" else {"lw": 1.2}
        axes[0].plot(steps, c["loss_income"], label=name, **style)
        axes[1].plot(steps, np.asarray(c["q_income"]) / np.asarray(c["q_never_married"]), label=name, **style)
        axes[2].plot(steps, c["loss_never_married"], label=name, **style)
    axes[0].axhline(sp, color="red", ls="--", lw=1, label="set point")
    axes[0].axhspan(sp * (1 - args.band), sp * (1 + args.band), color="red", alpha=0.08,
                    label=f"set point \u00b1{args.band:.0%}")
    axes[0].set_ylabel(f"L_income (train, {args.window}-step mean)")
    axes[0].set_title("Census: continuing a single-objective income MMoE with never_married added")
    axes[1].set_yscale("log")
    axes[1].set_ylabel(f"q_income / q_never_married ({args.window}-step mean)")
    axes[2].set_ylabel(f"L_never_married (train, {args.window}-step mean)")
    axes[2].set_xlabel("training step (after the single-objective checkpoint)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_movielens(result: Mapping[str, Any], args: argparse.Namespace, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax in (axes[0, 1], *axes[1]):  # the curves share the step axis; the bar chart [0, 2] has its own
        ax.sharex(axes[0, 0])
    sp = result["set_point"]
    runs = {"base (click only)": result["base"], **result["methods"]}
    for name, run in runs.items():
        c = run["curves"]
        steps = np.arange(1, len(c["loss_accuracy"]) + 1) * args.stride
        style = {"lw": 2.2, "color": "black"} if name.startswith("pid") else {"lw": 1.2}
        if name.startswith("base"):
            style = {"lw": 1.0, "color": "grey", "ls": ":"}
        axes[0, 0].plot(steps, c["loss_accuracy"], label=name, **style)
        axes[0, 1].plot(steps, c["q_accuracy"], label=name, **style)
        for ax, objective in zip(axes[1], ("revenue", "fairness", "alignment")):
            if f"loss_{objective}" in c:
                ax.plot(steps, c[f"loss_{objective}"], label=name, **style)
    axes[0, 0].axhline(sp, color="red", ls="--", lw=1, label="set point")
    axes[0, 0].set_ylabel(f"L_acc (click BCE, {args.window}-step mean)")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_ylabel(f"q_acc ({args.window}-step mean)")
    pid = next((run for name, run in result["methods"].items() if name.startswith("pid")), None)
    if pid is not None:
        weights = pid["sampler"]["fairness"]
        axes[0, 2].bar(range(len(weights)), weights, color="tab:blue", label="PID run: fairness w_g")
        axes[0, 2].plot(range(len(weights)), result["group_shares"], "k_", ms=14, label="training share")
        axes[0, 2].set_xticks(range(len(weights)))
        axes[0, 2].set_xticklabels(result["groups"], rotation=60, fontsize=7)
        axes[0, 2].set_title("sampler group probabilities at the end", fontsize=9)
        axes[0, 2].legend(fontsize=7)
    for ax, objective in zip(axes[1], ("revenue", "fairness", "alignment")):
        ax.set_ylabel(f"L_{objective} ({args.window}-step mean)")
        ax.set_xlabel("training step (after pretraining)")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("MovieLens-100k: click loss against the set point, q_acc and the sampler objectives")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def write_markdown(path: str, report: Mapping[str, Any]) -> None:
    args = report["settings"]
    lines = ["# PID-controlled multi-objective training (MoRec) on census and MovieLens-100k", "",
             f"Command: `{report['command']}`  ",
             f"Run: {report['date']}, {report['machine']}, total {report['wall_s']} s wall / "
             f"{report['cpu_s']} s CPU (shared, loaded machine)  ",
             "Code: `bench/pid_control.py` (its docstring states the protocol in full); usage: "
             "[docs/training.md](../../docs/training.md).", ""]
    c = report.get("census")
    if c:
        lines += ["## (a) Census: holding the income loss at its set point", "",
                  f"MMoE ({args['census_experts']} experts x {args['census_expert_units']} units, tower 8), "
                  f"train slice {c['rows']['train']} rows, validation {c['rows']['validation']} rows, batch "
                  f"{args['census_batch']}, Adam {args['census_lr']}. A single-objective income model trains "
                  f"{args['census_pretrain_steps']} steps (the checkpoint every method starts from), then "
                  f"{args['census_steps']} more; its training income loss over the last {args['tail']} steps is "
                  f"{_fmt(c['single_objective']['converged_train_loss_income'])}, so the set point is "
                  f"{_fmt(c['set_point'])} (+{args['relax']:.0%}). Each method continues from the checkpoint "
                  f"for {args['census_steps']} steps with both objectives. PID: q_income = "
                  f"controller(L_income), Kp {args['kp']} ({'sigmoid' if args['sigmoid_p'] else 'linear'} P), Ki "
                  f"{args['census_ki']}, offset (q_min) {args['q_offset']}, q in [{args['q_floor']}, {args['q_max']}], "
                  f"|S| <= {args['integral_clamp']}; q_never_married = 1.",
                  "",
                  f"Losses are {args['window']}-step moving means of the training mini-batch loss; "
                  "'peak dev' is the largest excess over the set point over all steps (the transient when "
                  f"never_married is added); the other 'dev' columns and 'in band' use the steps after the first "
                  f"{args['settle']:.0%}; band = set point "
                  f"\u00b1{args['band']:.0%}. q ratio = q_income / q_never_married over the last "
                  f"{args['tail']} steps.", "",
                  "| method | final L_income | vs set point | peak dev | mean dev | mean abs dev | in band | q ratio | "
                  "L_never_married | val L_income | val AUC income | val L_nm | val AUC nm |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        s = c["single_objective"]
        lines.append(f"| single-objective income (set-point source) | {_fmt(s['converged_train_loss_income'])} | "
                     f"{s['converged_train_loss_income'] / c['set_point'] - 1:+.1%} | | | | | | | "
                     f"{_fmt(s['val_loss_income'])} | {_fmt(s['val_auc_income'])} | | |")
        for name, r in c["methods"].items():
            q = r["final_q"]
            lines.append(
                f"| {name} | {_fmt(r['final_loss'])} | {r['final_rel_dev']:+.1%} | {r['peak_rel_dev']:+.1%} | "
                f"{r['mean_rel_dev']:+.1%} | "
                f"{r['mean_abs_rel_dev']:.1%} | {r['share_in_band']:.0%} | "
                f"{q['q_income'] / q['q_never_married']:.3g} | {_fmt(r['final_loss_never_married'])} | "
                f"{_fmt(r['val_loss_income'])} | {_fmt(r['val_auc_income'])} | "
                f"{_fmt(r['val_loss_never_married'])} | {_fmt(r['val_auc_never_married'])} |")
        lines += ["", "![census](pid_control_census.png)", ""]
    m = report.get("movielens")
    if m:
        sz = m["sizes"]
        lines += ["## (b) MovieLens-100k top-10: Static vs uncertainty weighting vs PID + adaptive sampler", "",
                  f"{sz['users']} users, {sz['items']} items; per user by time: last 3 ratings test "
                  f"({sz['test']} queries), 2 before validation ({sz['validation']}), {sz['train']} train pairs. "
                  f"Two-tower (dim {args['ml_dim']}), {args['negatives']} uniform negatives per pair, batch "
                  f"{args['ml_batch']} pairs, Adam {args['ml_lr']}; pretrain {args['ml_pretrain_epochs']} epochs "
                  f"on clicks, then {args['ml_epochs']} epochs per method. Fairness groups ({len(m['groups'])}): "
                  f"{', '.join(m['groups'])}. Popularity target Q (tail -> head bins): {m['pop_target']}. "
                  f"Price proxy range {m['price']['min']:.2f}-{m['price']['max']:.2f} "
                  f"(mean {m['price']['mean']:.2f}). Sampler alpha {args['alpha']}; PID aux scale "
                  f"{args['ml_auxiliary_scale']} (1/3 each), Ki {args['ml_ki']}; set point "
                  f"{_fmt(m['set_point'])} = base click loss {_fmt(m['base']['final_loss_accuracy'])} "
                  f"+{args['ml_relax']:.0%}.", "",
                  "Valid: Hit@10 >= 97% of the base's. Imp: mean relative improvement over the base on rHit@10, "
                  "min-Hit@10 and Pop-KL@10 (lower Pop-KL is better).", "",
                  "| method | Hit@10 | rHit@10 | min-Hit@10 | Pop-KL@10 | valid | Imp | L_acc vs set point | q_acc |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, r in (("pretrained checkpoint", m["pretrained"]), ("base (click only)", m["base"])):
            lines.append(f"| {name} | {_fmt(r['hit@10'])} | {_fmt(r['rhit@10'])} | {_fmt(r['min_hit@10'])} | "
                         f"{_fmt(r['pop_kl@10'])} | | | | |")
        for name, r in m["methods"].items():
            lines.append(f"| {name} | {_fmt(r['hit@10'])} | {_fmt(r['rhit@10'])} | {_fmt(r['min_hit@10'])} | "
                         f"{_fmt(r['pop_kl@10'])} | {'yes' if r['valid'] else 'no'} | {r['imp']:+.1%} | "
                         f"{r['final_rel_dev']:+.1%} | {r['final_q']['q_accuracy']:.3g} |")
        lines += ["", "![movielens](pid_control_movielens.png)", ""]
    _report.write_atomically(path, "\n".join(lines))


def write_json(path: str, report: Mapping[str, Any]) -> None:
    _report.write_json(path, report)


# ============================================================================ command line
QUICK = dict(census_rows=20000, census_val_rows=5000, census_pretrain_steps=300, census_steps=300,
             census_static=[1.0], ml_pretrain_epochs=2, ml_epochs=2, window=50, tail=50, stride=5)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["census", "movielens"], choices=["census", "movielens"])
    p.add_argument("--out", default=RESULTS, help="results folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help=f"smoke-run sizes: {QUICK}")
    # PID (both parts); gains are in loss units, Ki per part (the losses differ in scale).
    p.add_argument("--only", nargs="*", default=[], help="run only the methods whose names start so")
    p.add_argument("--kp", type=float, default=100.0)
    p.add_argument("--sigmoid-p", action="store_true", help="MoRec's sigmoid P term instead of the linear one")
    p.add_argument("--q-offset", type=float, default=1.0, help="PIDController q_min: q at the set point, S = 0")
    p.add_argument("--q-floor", type=float, default=0.05, help="PIDController output_min")
    p.add_argument("--q-max", type=float, default=10.0)
    p.add_argument("--integral-clamp", type=float, default=1.0)
    # tracking statistics
    p.add_argument("--window", type=int, default=100, help="moving-average steps of the loss curves")
    p.add_argument("--settle", type=float, default=0.3, help="share of steps left out of the 'dev' columns")
    p.add_argument("--band", type=float, default=0.02, help="relative band around the set point")
    p.add_argument("--tail", type=int, default=200, help="steps averaged for 'final' values")
    p.add_argument("--stride", type=int, default=10, help="subsampling of the stored curves")
    # (a) census
    p.add_argument("--census-rows", type=int, default=100_000)
    p.add_argument("--census-val-rows", type=int, default=20_000)
    p.add_argument("--census-batch", type=int, default=1024)
    p.add_argument("--census-lr", type=float, default=5e-3)
    p.add_argument("--census-experts", type=int, default=1)
    p.add_argument("--census-expert-units", type=int, default=4)
    p.add_argument("--census-pretrain-steps", type=int, default=800)
    p.add_argument("--census-steps", type=int, default=1000)
    p.add_argument("--census-static", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    p.add_argument("--census-ki", type=float, default=2.0)
    p.add_argument("--relax", type=float, default=0.04, help="set point = (1 + relax) x converged loss")
    # (b) MovieLens
    p.add_argument("--ml-dim", type=int, default=32)
    p.add_argument("--ml-l2", type=float, default=0.0)
    p.add_argument("--ml-batch", type=int, default=1024)
    p.add_argument("--ml-lr", type=float, default=5e-3)
    p.add_argument("--negatives", type=int, default=4)
    p.add_argument("--ml-pretrain-epochs", type=int, default=10)
    p.add_argument("--ml-epochs", type=int, default=8)
    p.add_argument("--ml-relax", type=float, default=0.02)
    p.add_argument("--ml-ki", type=float, default=1.0)
    p.add_argument("--ml-auxiliary-scale", type=float, default=0.2)
    p.add_argument("--alpha", type=float, default=0.1, help="sampler sign-step (MoRec: 0.1)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock()
    os.makedirs(args.out, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join([*(["nice", "-n", str(os.nice(0))] if os.nice(0) else []), ".venv/bin/python",
                             "bench/pid_control.py",
                             *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "settings": vars(args)}
    base = os.path.join(args.out, "pid_control")
    if "census" in args.parts:
        report["census"] = census_part(args)
        plot_census(report["census"], args, base + "_census.png")
    if "movielens" in args.parts:
        report["movielens"] = movielens_part(args)
        plot_movielens(report["movielens"], args, base + "_movielens.png")
    report.update(clock.read())
    write_json(base + ".json", report)
    write_markdown(base + ".md", report)
    print(f"wrote {base}.json/.md ({clock.read()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
