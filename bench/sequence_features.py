"""What genres as a list feature, the user's rating history and DIN target attention add on the MovieLens funnel.

    python -m tfmtl.datasets.movielens fetch          # once
    python -m bench.sequence_features                  # seeds 0 1 2, early stopping
    python -m bench.sequence_features --seeds 0 --epochs 1 --out /tmp/seq   # smoke run

The funnel of ``bench/funnel_table.py`` (exposures = the 100k rated pairs + as many sampled unrated
pairs per user; click = rated, conversion = rating >= 4; random 80/10/10 split; CTR AUC on all test
exposures, CVR AUC on clicked test exposures, CTCVR AUC on all) with four feature sets:

- ``base``: user/item ids, gender, occupation, zip prefix, age, release year and the 19 genre
  indicator columns as numerics (``funnel_table``'s features), no history.
- ``lists``: the same ids and scalars; genres as a mean-pooled **list feature** (the names of the
  movie's genres) instead of the indicators; no history (separates the genre encoding from the history).
- ``pooled``: ``lists`` plus ``history``, the user's rated movies strictly before the
  exposure's time (the last ``--history`` of them, in time order), sharing ``movie_id``'s embedding
  table and mean-pooled.
- ``din``: as ``pooled`` but ``history`` is kept as a sequence and read by DIN target attention
  against the candidate ``movie_id`` (``history_attention={"history": "movie_id"}``).

**History without leakage.** A rated exposure's time is its rating's timestamp. A sampled unrated
exposure gets the timestamp of one of the same user's ratings drawn at random (uniformly, with the
frame's seed), so clicks and non-clicks have the same distribution of times (and of history
lengths) within a user, and the history length says nothing about the label. The history of an
exposure at time ``t`` is the user's rated movies with timestamp ``< t`` (strictly: ratings in the
same second, the exposure's own included, are left out). ``tests/bench/test_sequence_features.py``
checks it.

Writes ``bench/results/sequence_features.{json,md,png}`` after every finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bench import _report
from tfmtl.compat import keras
from tfmtl.datasets import movielens
from tfmtl.features import FeatureSpec, Label
from tfmtl.models import AITM, ESMM, FSMD

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
UNITS = [256, 128]
METRICS = ("ctr_auc", "cvr_auc_clicked", "ctcvr_auc")
FEATURE_SETS = ("base", "lists", "pooled", "din")
SCALARS = ("age", "release_year")
CATEGORICAL = movielens.USER_CATEGORICAL + movielens.ITEM_CATEGORICAL


# --------------------------------------------------------------------------- data
def exposures_with_time(ratings: pd.DataFrame, items: np.ndarray, negatives_per_positive: float,
                        rng: np.random.Generator) -> pd.DataFrame:
    """Rated pairs (``rating`` 1-5, their own ``timestamp``) plus sampled unrated pairs (``rating`` 0).

    Each unrated pair takes the timestamp of a rating of the same user drawn uniformly at random
    (the leakage rule of the module docstring). Rows are shuffled.
    """
    negatives = movielens._sample_unrated(ratings, items, negatives_per_positive, rng)
    negatives["rating"] = 0
    if len(negatives):
        # A random rating time of the same user per unrated pair: users sorted, each user's times a block.
        by_user = ratings.sort_values(["user_id", "timestamp"], kind="stable")
        users, starts, counts = np.unique(by_user["user_id"].to_numpy(), return_index=True, return_counts=True)
        position = np.searchsorted(users, negatives["user_id"].to_numpy())
        pick = starts[position] + np.floor(rng.random(len(negatives)) * counts[position]).astype(np.int64)
        negatives["timestamp"] = by_user["timestamp"].to_numpy()[pick]
    else:
        negatives["timestamp"] = np.array([], np.int64)
    pairs = pd.concat([ratings[["user_id", "movie_id", "rating", "timestamp"]], negatives], ignore_index=True)
    return pairs.iloc[rng.permutation(len(pairs))].reset_index(drop=True)


def history_before(ratings: pd.DataFrame, users: np.ndarray, times: np.ndarray, max_length: int) -> list:
    """For each (user, time): the user's rated movie ids (strings) with timestamp strictly ``< time``.

    Oldest first, at most the ``max_length`` most recent; ties in time are ordered by movie id, so
    the result does not depend on the row order of ``ratings``.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    ordered = ratings.sort_values(["user_id", "timestamp", "movie_id"], kind="stable")
    rated_users = ordered["user_id"].to_numpy()
    rated_times = ordered["timestamp"].to_numpy()
    rated_items = ordered["movie_id"].astype(str).to_numpy(dtype=object)
    first = np.searchsorted(rated_users, users, side="left")
    last = np.searchsorted(rated_users, users, side="right")
    # Per row: index of the first rating of its user at or after its time = end of the strict past.
    # A search on (user, time) pairs: times offset by the user's block, done per user group below.
    end = np.empty(len(users), np.int64)
    for user in np.unique(users):
        rows = np.flatnonzero(users == user)
        lo, hi = first[rows[0]], last[rows[0]]
        end[rows] = lo + np.searchsorted(rated_times[lo:hi], times[rows], side="left")
    start = np.maximum(first, end - max_length)
    return [list(rated_items[s:e]) for s, e in zip(start, end)]


def genre_lists(genres) -> list[list[str]]:
    """MovieLens' ``|``-joined genre names as lists (an empty string: no genre)."""
    return [g.split("|") if g else [] for g in genres]


def funnel_frame(seed: int = 0, max_history: int = 20, negatives_per_positive: float = 1.0,
                 data_dir: str | None = None) -> pd.DataFrame:
    """The funnel exposures with ``timestamp``, ``genres`` (list of names) and ``history`` (list of movie ids)."""
    rng = np.random.default_rng(seed)
    ratings = movielens.load_ratings(data_dir)
    items = movielens.load_items(data_dir)
    pairs = exposures_with_time(ratings, items["movie_id"].to_numpy(), negatives_per_positive, rng)
    pairs["history"] = history_before(ratings, pairs["user_id"].to_numpy(), pairs["timestamp"].to_numpy(),
                                      max_history)
    df = movielens._joined(pairs, data_dir)
    df["genres"] = genre_lists(df["genres"])
    df["click"] = (df["rating"] > 0).astype(np.int64)
    df["conversion"] = (df["rating"] >= 4).astype(np.int64)
    return df


def feature_spec(df: pd.DataFrame, feature_set: str, max_history: int = 20, embedding_dim: int = 8,
                 labels: tuple[str, ...] = ("click", "conversion")) -> FeatureSpec:
    """The spec of one feature set (``base``, ``pooled`` or ``din``) with these label columns, fitted on ``df``."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
    label_columns, labels = set(labels), [Label(name) for name in labels]
    if feature_set == "base":
        used = set(CATEGORICAL) | set(SCALARS) | set(movielens.GENRE_COLUMNS) | label_columns
        return FeatureSpec.from_dataframe(df, labels, categorical=CATEGORICAL,
                                          numeric=SCALARS + movielens.GENRE_COLUMNS,
                                          exclude=[c for c in df.columns if c not in used],
                                          embedding_dim=embedding_dim, numeric_encoding="scalar")
    history = {"history": "movie_id"} if feature_set != "lists" else {}
    used = set(CATEGORICAL) | set(SCALARS) | {"genres"} | set(history) | label_columns
    spec = FeatureSpec.from_dataframe(df, labels, categorical=CATEGORICAL, numeric=SCALARS,
                                      exclude=[c for c in df.columns if c not in used], embedding_dim=embedding_dim,
                                      max_list_length=max_history, list_pooling="mean", shared_embeddings=history,
                                      numeric_encoding="scalar")  # as every published run of this table
    # Every genre of a movie (at most 6; the inferred 95% length quantile would cut some), and for DIN the
    # history as a sequence.
    most_genres = int(df["genres"].map(len).max())
    changes = {"genres": dict(max_length=most_genres), "history": dict(pooling=None) if feature_set == "din" else {}}
    return dataclasses.replace(spec, features=tuple(dataclasses.replace(f, **changes.get(f.name, {}))
                                                    for f in spec.features))


# --------------------------------------------------------------------------- training
def fit(model, train, validation, max_epochs, patience, seed, batch_size=512):
    """Adam 1e-3; keeps the weights of the best validation loss; stops after ``patience`` epochs without one."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    best, best_weights, best_epoch, epoch = np.inf, None, 0, 0
    validation_data = model.make_dataset(validation, batch_size=2048)
    for epoch in range(1, max_epochs + 1):
        model.fit(model.make_dataset(train, shuffle=True, seed=seed, batch_size=batch_size), epochs=1, verbose=0)
        loss = model.evaluate(validation_data, verbose=0, return_dict=True)["loss"]
        if loss < best:
            best, best_weights, best_epoch = loss, model.get_weights(), epoch
        elif epoch - best_epoch >= patience:
            break
    model.set_weights(best_weights)
    return model, best_epoch, epoch


def build_model(name: str, spec: FeatureSpec, feature_set: str):
    extra = {"history_attention": {"history": "movie_id"}} if feature_set == "din" else {}
    if name == "esmm":
        return ESMM(spec, ["click", "conversion"], tower_units=UNITS, **extra)
    if name == "aitm":
        return AITM(spec, ["click", "conversion"], tower_units=UNITS + [32], **extra)
    if name == "fsmd":
        return FSMD(spec, ["click", "conversion"], num_levels=1, specific_experts=2, shared_experts=2,
                    expert_units=UNITS, tower_units=[64], **extra)
    raise ValueError(f"unknown model {name!r}")


def score(test, out):
    click, conversion = test["click"].to_numpy(), test["conversion"].to_numpy()
    clicked = click == 1
    p_ctr, p_cvr, p_ctcvr = (out[k].ravel() for k in ("ctr", "cvr", "ctcvr"))
    return {"ctr_auc": float(roc_auc_score(click, p_ctr)),
            "cvr_auc_clicked": float(roc_auc_score(conversion[clicked], p_cvr[clicked])),
            "ctcvr_auc": float(roc_auc_score(conversion, p_ctcvr))}


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --------------------------------------------------------------------------- report
def summarise(rows):
    models = list(dict.fromkeys(r["model"] for r in rows))
    keys = sorted(set((r["model"], r["features"]) for r in rows),
                  key=lambda k: (models.index(k[0]), FEATURE_SETS.index(k[1])))
    summary = {}
    for model, features in keys:
        runs = [r for r in rows if r["model"] == model and r["features"] == features]
        summary[f"{model}/{features}"] = {
            "seeds": [r["seed"] for r in runs],
            **{m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs]))) for m in METRICS}}
    return summary


def markdown(meta, rows, summary, analysis=""):
    lines = ["# MovieLens-100k funnel with list and sequence features (genres, rating history, DIN)", "",
             "Commands: " + "; then ".join(f"`{c.strip('`')}`" for c in meta["command"].split("; then ")) + "  ",
             meta["note"], "",
             "Feature sets: **base** = ids + scalars + 19 genre indicators (as `funnel_table`), no history; "
             "**lists** = ids + scalars + genres as a mean-pooled list, no history; "
             "**pooled** = genres list + the last "
             f"{meta['max_history']} rated movies strictly before the exposure, sharing `movie_id`'s table, "
             "mean-pooled; **din** = genres list + the history read by DIN target attention against the "
             "candidate movie. Unrated exposures take the time of a random rating of the same user.", "",
             "| model / features | seeds | CTR AUC | CVR AUC (clicked) | CTCVR AUC | best epoch / epochs run |",
             "|---|---|---|---|---|---|"]
    for key, s in summary.items():
        model, features = key.split("/")
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in rows
                           if r["model"] == model and r["features"] == features)
        lines.append(f"| {key} | {','.join(map(str, s['seeds']))} | "
                     + " | ".join(f"{s[m][0]:.4f} ± {s[m][1]:.4f}" if len(s["seeds"]) > 1 else f"{s[m][0]:.4f}"
                                  for m in METRICS) + f" | {epochs} |")
    loads = "; ".join(f"{r['model']}/{r['features']} s{r['seed']}: {r['load'].split('load average:')[-1].strip()}"
                      for r in rows)
    lines += ["", "± is the standard deviation over the seeds run (none shown where only one seed ran).", "",
              "Load averages (`uptime`) at the end of each run; the machine (2 cores) was shared with another "
              f"engineer's benchmarks, so the seconds in the JSON are not clean timings: {loads}.", ""]
    if analysis:
        lines += [analysis, ""]
    return "\n".join(lines)


def plot(summary, path):
    """One panel per metric: models along x, one bar per feature set (same colour in every panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(key.split("/")[0] for key in summary))
    sets = [f for f in FEATURE_SETS if any(key.endswith("/" + f) for key in summary)]
    titles = {"ctr_auc": "CTR", "cvr_auc_clicked": "CVR (clicked)", "ctcvr_auc": "CTCVR"}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 3.6))
    width = 0.8 / max(len(sets), 1)
    for ax, metric in zip(axes, METRICS):
        values = []
        for j, features in enumerate(sets):
            cells = [summary.get(f"{m}/{features}", {}).get(metric, (np.nan, 0.0)) for m in models]
            values += [c[0] for c in cells]
            ax.bar(np.arange(len(models)) + (j - (len(sets) - 1) / 2) * width, [c[0] for c in cells], width,
                   yerr=[c[1] for c in cells], capsize=2, label=features, color=f"C{j}")
        low, high = np.nanmin(values), np.nanmax(values)
        ax.set_ylim(low - 0.3 * (high - low) - 0.002, high + 0.15 * (high - low) + 0.002)
        ax.set_xticks(range(len(models)), models)
        ax.set_title(f"{titles[metric]} test AUC")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8, title="features")
    fig.suptitle("MovieLens-100k funnel: genres list, rating history, DIN (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    _report.save_figure(fig, path, dpi=110)
    plt.close(fig)


def write(out, meta, rows, analysis=""):
    summary = summarise(rows)
    _report.write_json(out + ".json", {"meta": meta, "summary": summary, "runs": rows})
    _report.write_atomically(out + ".md", markdown(meta, rows, summary, analysis))
    plot(summary, out + ".png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["esmm", "aitm"])
    parser.add_argument("--features", nargs="+", default=list(FEATURE_SETS), choices=FEATURE_SETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15, help="cap on epochs")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--history", type=int, default=20, help="most recent rated movies kept per exposure")
    parser.add_argument("--append", action="store_true", help="keep the runs already in <out>.json")
    parser.add_argument("--analysis", default="", help="a paragraph appended to the Markdown (with --report-only)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown/PNG from <out>.json")
    parser.add_argument("--out", default=os.path.join(RESULTS, "sequence_features"))
    args = parser.parse_args(argv)
    command = "python -m bench.sequence_features " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.report_only:
        with open(args.out + ".json") as f:
            saved = json.load(f)
        write(args.out, saved["meta"], saved["runs"], args.analysis)
        return
    if not movielens.is_available():
        sys.exit(f"MovieLens-100k is not available: run `{movielens.FETCH_COMMAND}` first")
    df = funnel_frame(seed=0, max_history=args.history)
    train, validation, test = movielens.split_frame(df, (0.8, 0.1, 0.1), seed=0)
    specs = {f: feature_spec(df, f, args.history) for f in args.features}
    lengths = df["history"].map(len)
    meta = {"command": command, "max_history": args.history,
            "note": (f"{len(df):,} exposures ({int(df['click'].sum()):,} clicks, {int(df['conversion'].sum()):,} "
                     f"conversions); random split 80/10/10 (seed 0); spec fitted on the whole frame as "
                     f"`movielens.funnel`; history length mean {lengths.mean():.1f}, empty for "
                     f"{(lengths == 0).mean():.1%} of exposures; Adam 1e-3, batch 512, up to {args.epochs} epochs, "
                     f"early stopping with patience {args.patience} on the validation loss, best weights kept; "
                     f"DNN widths {UNITS}, embeddings 8, DIN attention MLP (80, 40); mean ± std over seeds.")}
    rows = []
    if args.append and os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            previous = json.load(f)
        rows = previous["runs"]
        meta = {**previous["meta"], "command": previous["meta"]["command"] + f"; then `{command}`"}
    done = {(r["model"], r["features"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for name in args.models:
            for features in args.features:
                if (name, features, seed) in done:
                    continue
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                model, best_epoch, epochs_run = fit(build_model(name, specs[features], features), train, validation,
                                                    args.epochs, args.patience, seed)
                metrics = score(test, model.predict(model.make_dataset(test, batch_size=2048), verbose=0))
                seconds = round(time.perf_counter() - start, 1)
                rows.append({"model": name, "features": features, "seed": seed, **metrics, "best_epoch": best_epoch,
                             "epochs_run": epochs_run, "seconds": seconds, "load": load()})
                print(f"{name}/{features} seed {seed}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                      + f" best {best_epoch}/{epochs_run} epochs ({seconds:.0f}s) [{rows[-1]['load']}]", flush=True)
                write(args.out, meta, rows)


if __name__ == "__main__":
    main()
