"""The production loop on MovieLens-100k: time-ordered spans trained one after another, three ways.

    python -m tfmtl.datasets.movielens fetch          # once
    python -m bench.spans                              # 5 spans, all 100k ratings
    python -m bench.spans --rows 8000 --epochs 1 --seeds 0 --out /tmp/spans   # smoke run

The ratings, sorted by time, are cut into ``--spans`` equal spans. The task is ``like``
(rating >= 4) on the rated pairs; features: user id, movie id, gender, occupation (vocabularies),
the user's age and the movie's release year (scalars). Every strategy trains the same first model
on span 0; then, for span k = 1, 2, ...:

- ``carry``: a model on the spec grown with span k's new users and movies
  (:func:`tfmtl.training.grown_spec`), warm-started from the last one
  (:func:`tfmtl.training.warm_start`: known rows moved to their new ids), trained on span k;
- ``fixed``: the last model trained on on span k, the vocabulary of span 0 kept (new users and
  movies fall into the out-of-vocabulary row);
- ``scratch``: a new model, spec inferred from spans 0..k, trained from random weights on all of them.

Each model is scored on the next span (k + 1): AUC and GAUC by user (impression-weighted;
:func:`tfmtl.training.group_auc`), with the training seconds of span k. Writes
``bench/results/spans.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bench import _report
from tfmtl.compat import keras
from tfmtl.datasets import movielens
from tfmtl.features import FeatureSpec, Label
from tfmtl.models import SingleTask
from tfmtl.training import TrainingRun, group_auc, grown_spec, warm_start

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
STRATEGIES = ("carry", "fixed", "scratch")
CATEGORICAL = ("user_id", "movie_id", "gender", "occupation")
NUMERIC = ("age", "release_year")
UNITS = (64, 32)
BATCH_SIZE = 256
EPOCHS = 2  # per span, fixed: no validation split inside a span, so no early stopping


@dataclasses.dataclass(frozen=True)
class Setting:
    spans: int = 5
    epochs: int = EPOCHS
    rows: int | None = None  # the first rows in time order (None: all)
    seeds: tuple = (0, 1, 2)
    embedding_dim: int = 8


def rating_frame(rows: int | None = None) -> pd.DataFrame:
    """Ratings in time order joined with user and movie features; ids as strings; ``like`` = rating >= 4."""
    ratings = movielens.load_ratings().sort_values(["timestamp", "user_id", "movie_id"], kind="stable")
    if rows is not None:
        ratings = ratings.iloc[:rows]
    users = movielens.load_users()[["user_id", "age", "gender", "occupation"]]
    items = movielens.load_items()[["movie_id", "release_year"]]
    df = ratings.merge(users, on="user_id", how="left").merge(items, on="movie_id", how="left")
    df["user_id"], df["movie_id"] = df["user_id"].astype(str), df["movie_id"].astype(str)
    df["like"] = (df["rating"] >= 4).astype(np.int64)
    return df.reset_index(drop=True)


def cut_spans(df: pd.DataFrame, spans: int) -> list[pd.DataFrame]:
    """``spans`` consecutive, (nearly) equal slices of the time-ordered rows."""
    if spans < 2 or spans > len(df):
        raise ValueError(f"spans must be in [2, {len(df)}] to train on one and score the next, got {spans}")
    edges = np.linspace(0, len(df), spans + 1).round().astype(int)
    return [df.iloc[a:b].reset_index(drop=True) for a, b in zip(edges[:-1], edges[1:])]


def infer_spec(df: pd.DataFrame, embedding_dim: int) -> FeatureSpec:
    return FeatureSpec.from_dataframe(df, labels=[Label("like")], categorical=list(CATEGORICAL), numeric=list(NUMERIC),
                                      exclude=[c for c in df.columns if c not in (*CATEGORICAL, *NUMERIC)],
                                      embedding_dim=embedding_dim, numeric_encoding="scalar")


def training_run(setting: Setting) -> TrainingRun:
    """The library's one training run (as ``tfmtl train`` and the TFX Trainer), with this benchmark's protocol:
    ``setting.epochs`` epochs per span at a fixed rate, the last weights kept."""
    return TrainingRun("single_task", {"units": list(UNITS)}, tasks=["like"], epochs=setting.epochs, patience=0,
                       lr_patience=0, weight_averaging=0, batch_size=BATCH_SIZE, learning_rate=1e-3)


def new_model(spec: FeatureSpec, setting: Setting) -> SingleTask:
    return training_run(setting).build(spec, seed=False)  # seeded once per seed, in run_seed


def train(model, df: pd.DataFrame, setting: Setting) -> float:
    return training_run(setting).fit(model, df, None, verbose=0, evaluate=False).seconds


def score(model, df: pd.DataFrame) -> dict[str, float]:
    predictions = model.predict(df, verbose=0)["like"].ravel()
    return {"auc": float(roc_auc_score(df["like"], predictions)),
            "gauc": group_auc(df["like"].to_numpy(), predictions, df["user_id"].to_numpy())}


def unknown_share(spec: FeatureSpec, df: pd.DataFrame, feature: str) -> float:
    """Share of ``df``'s rows whose ``feature`` value is outside the spec's vocabulary (the OOV row)."""
    return float((~df[feature].isin(set(spec.feature(feature).vocabulary))).mean())


def run(setting: Setting) -> dict:
    """Every seed's rounds (see :func:`run_seed`) and the summary over seeds."""
    spans = cut_spans(rating_frame(setting.rows), setting.spans)
    rows = [row for seed in setting.seeds for row in run_seed(spans, setting, seed)]
    return {"setting": dataclasses.asdict(setting), "span_rows": [len(s) for s in spans],
            "span_start_times": [int(s["timestamp"].iloc[0]) for s in spans], "rows": rows,
            "summary": summarise(rows)}


def run_seed(spans: list[pd.DataFrame], setting: Setting, seed: int) -> list[dict]:
    """Rounds r = 0..spans-2: each strategy's model, trained through span r, scored on span r + 1."""
    keras.utils.set_random_seed(seed)
    first = new_model(infer_spec(spans[0], setting.embedding_dim), setting)
    first_seconds = train(first, spans[0], setting)
    models = dict.fromkeys(STRATEGIES, first)  # round 0: one model, trained on span 0
    seconds = dict.fromkeys(STRATEGIES, first_seconds)
    rows = []
    for r in range(len(spans) - 1):
        if r > 0:
            for strategy in STRATEGIES:  # carry first: it copies the last model before fixed trains it on
                start = time.perf_counter()
                if strategy == "carry":
                    model = new_model(grown_spec(models["carry"].spec, spans[r]), setting)
                    warm_start(model, models["carry"])
                    train(model, spans[r], setting)
                elif strategy == "fixed":
                    model = models["fixed"]
                    train(model, spans[r], setting)
                else:
                    seen = pd.concat(spans[:r + 1], ignore_index=True)
                    model = new_model(infer_spec(seen, setting.embedding_dim), setting)
                    train(model, seen, setting)
                models[strategy], seconds[strategy] = model, time.perf_counter() - start
        scored = {}
        for strategy in STRATEGIES:
            model = models[strategy]
            if id(model) not in scored:
                scored[id(model)] = score(model, spans[r + 1])
            rows.append({"seed": seed, "strategy": strategy, "trained_through_span": r, "scored_span": r + 1,
                         **scored[id(model)],
                         "train_seconds": round(seconds[strategy], 2),
                         "unknown_users": unknown_share(model.spec, spans[r + 1], "user_id"),
                         "unknown_movies": unknown_share(model.spec, spans[r + 1], "movie_id"),
                         "vocabulary": {f: len(model.spec.feature(f).vocabulary) for f in ("user_id", "movie_id")}})
            last = rows[-1]
            print(f"seed {seed} span {r} -> {r + 1} {strategy:8s} AUC {last['auc']:.4f} GAUC {last['gauc']:.4f} "
                  f"{last['train_seconds']:6.1f}s unknown users {last['unknown_users']:.1%}", flush=True)
    return rows


KEYS = ("auc", "gauc", "train_seconds")


def summarise(rows: list[dict]) -> dict:
    """Per strategy: the mean over the rounds after the first (where the strategies differ), then the mean and
    std of those per-seed means."""
    later = [r for r in rows if r["trained_through_span"] > 0] or rows
    seeds = sorted({r["seed"] for r in later})
    summary = {}
    for strategy in STRATEGIES:
        per_seed = {key: [np.mean([r[key] for r in later if r["strategy"] == strategy and r["seed"] == seed])
                          for seed in seeds] for key in KEYS}
        summary[strategy] = {key: (float(np.mean(v)), float(np.std(v))) for key, v in per_seed.items()}
    return summary


def by_round(rows: list[dict]) -> list[dict]:
    """The rows averaged over seeds, per (round, strategy)."""
    out = []
    for r in sorted({row["trained_through_span"] for row in rows}):
        for strategy in STRATEGIES:
            mine = [row for row in rows if row["trained_through_span"] == r and row["strategy"] == strategy]
            out.append({**mine[0], **{key: float(np.mean([m[key] for m in mine]))
                                      for key in (*KEYS, "unknown_users", "unknown_movies")}})
    return out


def markdown(results: dict, command: str) -> str:
    setting = results["setting"]
    lines = ["# Training span after span: vocabulary carry-over, a fixed vocabulary, or from scratch", "",
             f"Command: `{command}`  ",
             f"MovieLens-100k ratings in time order ({sum(results['span_rows']):,} rows) cut into {setting['spans']} "
             f"spans of {results['span_rows']} rows; task like = rating >= 4; SingleTask DNN {list(UNITS)}, "
             f"embedding width {setting['embedding_dim']}, {setting['epochs']} epoch(s) per training, batch "
             f"{BATCH_SIZE}, Adam 1e-3 at a fixed rate (`tfmtl.training.TrainingRun`, patience 0: no validation "
             f"split inside a span), seeds {list(setting['seeds'])} (rows: means over seeds). Each model is scored on "
             "the next span; GAUC is the impression-weighted per-user AUC (users with one class skipped). Seconds: "
             "training of that span (carry: with the spec growth and the warm start). Unknown: the share of the "
             "scored span's rows whose user / movie is outside the model's vocabulary.", "",
             "| trained through | scored on | strategy | AUC | GAUC | seconds | unknown users | unknown movies |",
             "|---|---|---|---|---|---|---|---|"]
    for r in by_round(results["rows"]):
        lines.append(f"| span {r['trained_through_span']} | span {r['scored_span']} | {r['strategy']} | "
                     f"{r['auc']:.4f} | {r['gauc']:.4f} | {r['train_seconds']:.1f} | {r['unknown_users']:.1%} | "
                     f"{r['unknown_movies']:.1%} |")
    lines += ["", "Means over the rounds after the first (round 0 is one shared model), mean +- std over seeds:", "",
              "| strategy | AUC | GAUC | seconds per span |", "|---|---|---|---|"]
    for strategy, values in results["summary"].items():
        lines.append(f"| {strategy} | " + " | ".join(f"{values[k][0]:.{2 if k == 'train_seconds' else 4}f} +- "
                                                     f"{values[k][1]:.{2 if k == 'train_seconds' else 4}f}"
                                                     for k in KEYS) + " |")
    lines += ["", "Reading the seconds: carry and scratch build a new model every span, so their seconds include "
              "tracing its graph; fixed reuses its traced model; scratch trains on every span so far. The unknown "
              "shares are those of the strategy's own vocabulary: in MovieLens most of a span's ratings come from "
              "users who rate for the first time, so no strategy knows them (GAUC still ranks within each user)."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for strategy in STRATEGIES:
        mine = [r for r in by_round(results["rows"]) if r["strategy"] == strategy]
        x = [r["scored_span"] for r in mine]
        for ax, key in zip(axes, ("auc", "gauc", "train_seconds")):
            ax.plot(x, [r[key] for r in mine], marker="o", label=strategy)
    for ax, title in zip(axes, ("next-span AUC", "next-span GAUC (by user)", "training seconds per span")):
        ax.set_title(title)
        ax.set_xlabel("scored span")
        ax.set_xticks(sorted({r["scored_span"] for r in results["rows"]}))
    axes[0].legend()
    fig.tight_layout()
    _report.save_figure(fig, path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Setting()
    parser.add_argument("--spans", type=int, default=defaults.spans)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--rows", type=int, default=defaults.rows, help="the first rows in time order (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    parser.add_argument("--out", default=os.path.join(RESULTS, "spans"))
    args = parser.parse_args(argv)
    if not movielens.is_available():
        sys.exit("MovieLens-100k is missing: run `python -m tfmtl.datasets.movielens fetch` first")
    setting = Setting(spans=args.spans, epochs=args.epochs, rows=args.rows, seeds=tuple(args.seeds))
    command = " ".join(["python -m bench.spans", *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    results = run(setting)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    _report.save_report(args.out, results, markdown(results, command), lambda path: plot(results, path))


if __name__ == "__main__":
    main()
