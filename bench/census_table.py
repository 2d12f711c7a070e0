"""FSMD Table II on census: every model, 3 seeds, our AUCs beside the paper's.

    python -m bench.census_table --config paper            # Table I settings
    python -m bench.census_table --config best --models mmoe fs
    python -m bench.census_table --rows 5000 --epochs 1 --seeds 0   # smoke run
    python -m bench.census_table --config paper --patience 3 --epochs 20 \
        --out bench/results/census_table_converged         # early stopping, paper FM

Each model trains for ``--epochs`` epochs, or with ``--patience P`` until the mean
validation AUC has not improved for P epochs (``--epochs`` is then the cap; a run whose
best epoch is the cap did not converge and says so); the epoch with the best mean
validation AUC is kept and scored on the test half (sklearn AUC). The FSMD family
(Base, FG, FS) uses the paper's FM, one DeepFM FM shared by the tasks (``--fm shared``);
``--fm per_task`` is tfmtl's variant. Training examples/s is measured on epochs after the
first (the first includes tracing). Writes ``bench/results/census_table[_<config>].{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from bench import _report
from tfmtl.compat import keras
from tfmtl.datasets import census
from tfmtl.models import build_model
from tfmtl.models.fsmd import PAPER_EXPERT_UNITS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TASKS = ["income_50k", "never_married"]
# FSMD paper, Table II: test AUC (income, marital).
PAPER = {
    "single_task": (0.9198, 0.9748), "shared_bottom": (0.9148, 0.9754), "mmoe": (0.9152, 0.9756),
    "ple": (0.9161, 0.9764), "base": (0.9134, 0.9706), "fg": (0.9146, 0.9693), "fs": (0.9216, 0.9756),
}
LABELS = {"single_task": "Single-Task", "shared_bottom": "Shared-Bottom", "mmoe": "MMoE", "ple": "PLE",
          "base": "Base", "fg": "FG", "fs": "FS", "deepfm": "DeepFM"}
DNN = list(PAPER_EXPERT_UNITS)
# Table I: embedding 4, DNN (512, 256), batch norm; experts use the DNN widths.
PAPER_MODELS = {
    "single_task": dict(units=DNN),
    "shared_bottom": dict(bottom_units=DNN, tower_units=[64]),
    "mmoe": dict(num_experts=8, expert_units=DNN, tower_units=[64], cross=None),  # the paper's: no DCN
    "ple": dict(num_levels=2, specific_experts=1, shared_experts=2, expert_units=DNN, tower_units=[64]),
    "base": dict(bottom_units=DNN, tower_units=[64]),
    "fg": dict(num_experts=8, expert_units=DNN, tower_units=[64]),
    "fs": dict(num_levels=2, specific_experts=1, shared_experts=2, expert_units=DNN, tower_units=[64]),
    "deepfm": dict(dnn_units=DNN),
}
# Both configs keep numerics as standardised scalars (DeepFM's inputs, and every published run of this
# table); the library's default numeric encoding is PLE.
CONFIGS = {
    "paper": dict(embedding_dim=4, numeric_buckets=0, numeric_encoding="scalar", batch_size=256,
                  learning_rate=1e-3, extra={}),
    # Ours: quantile buckets give numerics an embedding (tree-like splits), wider embeddings, gating MLPs.
    "best": dict(embedding_dim=8, numeric_buckets=16, numeric_encoding="scalar", batch_size=512, learning_rate=2e-3,
                 extra={"mmoe": dict(gate_units=[64]), "fg": dict(gate_units=[64]),
                        "ple": dict(gate_units=[64]), "fs": dict(gate_units=[64])}),
}


FSMD_FAMILY = ("base", "fg", "fs")


def train_one(name, tasks, splits, config, seed, epochs, patience=0, fm="shared"):
    keras.utils.set_random_seed(seed)
    kwargs = {**PAPER_MODELS[name], **config["extra"].get(name, {})}
    if name in FSMD_FAMILY:
        kwargs["fm"] = fm
    model = build_model(name, splits.spec, tasks, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    train = model.make_dataset(splits.train, batch_size=config["batch_size"], shuffle=True, seed=seed)
    val_x = model.make_dataset(splits.validation, with_labels=False, batch_size=4096)
    test_x = model.make_dataset(splits.test, with_labels=False, batch_size=4096)
    best, best_weights, epoch_times, best_epoch, curve = -1.0, None, [], 0, []
    for epoch in range(1, epochs + 1):
        if patience and epoch - best_epoch > patience:
            break
        start = time.perf_counter()
        model.fit(train, epochs=1, verbose=0)
        epoch_times.append(time.perf_counter() - start)
        val = model.predict(val_x, verbose=0)
        score = np.mean([roc_auc_score(splits.spec.label_array(splits.validation, t).ravel(), val[t].ravel())
                         for t in tasks])
        curve.append(float(score))
        if score > best:
            best, best_weights, best_epoch = score, model.get_weights(), epoch
    model.set_weights(best_weights)
    train_log = {"best_epoch": best_epoch, "epochs_run": len(curve), "val_auc_curve": curve,
                 "converged": bool(patience) and best_epoch < len(curve) and len(curve) - best_epoch >= patience}
    start = time.perf_counter()
    test = model.predict(test_x, verbose=0)
    infer_seconds = time.perf_counter() - start
    aucs = {t: float(roc_auc_score(splits.spec.label_array(splits.test, t).ravel(), test[t].ravel())) for t in tasks}
    steady = epoch_times[1:] or epoch_times
    return (aucs, len(splits.train) * len(steady) / sum(steady), len(splits.test) / infer_seconds,
            model.count_params(), train_log)


def run_model(name, splits, config, seed, epochs, patience=0, fm="shared"):
    if name != "single_task":
        return train_one(name, TASKS, splits, config, seed, epochs, patience, fm)
    # One independent model per task; throughput is for training both.
    aucs, seconds, infer_seconds, params, logs = {}, 0.0, 0.0, 0, {}
    for task in TASKS:
        task_aucs, train_eps, infer_eps, task_params, log = train_one(name, [task], splits, config, seed, epochs,
                                                                      patience, fm)
        aucs.update(task_aucs)
        seconds += len(splits.train) / train_eps
        infer_seconds += len(splits.test) / infer_eps
        params += task_params
        logs[task] = log
    log = {"per_task": logs, "converged": all(v["converged"] for v in logs.values()),
           "best_epoch": max(v["best_epoch"] for v in logs.values()),
           "epochs_run": max(v["epochs_run"] for v in logs.values())}
    return aucs, len(splits.train) / seconds, len(splits.test) / infer_seconds, params, log


def summarise(rows):
    summary = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == name]
        entry = {"seeds": [r["seed"] for r in runs], "params": runs[0]["params"]}
        for t in TASKS:
            values = [r["auc"][t] for r in runs]
            entry[f"{t}_mean"], entry[f"{t}_std"] = float(np.mean(values)), float(np.std(values))
        entry["train_examples_per_s"] = float(np.mean([r["train_examples_per_s"] for r in runs]))
        entry["infer_examples_per_s"] = float(np.mean([r["infer_examples_per_s"] for r in runs]))
        if all("train_log" in r for r in runs):
            entry["best_epochs"] = [r["train_log"]["best_epoch"] for r in runs]
            entry["converged"] = all(r["train_log"]["converged"] for r in runs)
        summary[name] = entry
    return summary


def write_markdown(path, summary, meta):
    lines = [f"# Census Table II ({meta['config']} settings)", "",
             f"Command: `{meta.get('commands', [meta['command']])[0]}`  ",
             *(["Runs added by: " + "; ".join(f"`{c}`" for c in meta["commands"][1:]) + "  "]
               if len(meta.get("commands", [])) > 1 else []),
             f"Rows: train {meta['rows']['train']}, validation {meta['rows']['validation']}, "
             f"test {meta['rows']['test']}; seeds {meta['seeds']}; epochs {meta['epochs']} (best by validation AUC"
             + (f"; early stopping, patience {meta['patience']}, cap {meta['epochs']}" if meta.get("patience") else "")
             + f"); settings {json.dumps(meta['settings'])}"
             + (f"; FSMD-family FM: {meta['fm']}" if meta.get("fm") else "") + ".  ",
             f"Machine: {meta['machine']}; shared with other jobs, so throughput is indicative.", "",
             "| model | seeds run | income AUC (mean ± std) | paper | Δ | marital AUC (mean ± std) | paper | Δ "
             "| train ex/s | infer ex/s | params | best epoch (converged) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in summary.items():
        paper = PAPER.get(name)
        cells = [LABELS.get(name, name), ",".join(str(seed) for seed in e["seeds"])]
        for i, t in enumerate(TASKS):
            cells.append(f"{e[f'{t}_mean']:.4f} ± {e[f'{t}_std']:.4f}")
            cells.append(f"{paper[i]:.4f}" if paper else "–")
            cells.append(f"{e[f'{t}_mean'] - paper[i]:+.4f}" if paper else "–")
        cells += [f"{e['train_examples_per_s']:,.0f}", f"{e['infer_examples_per_s']:,.0f}", f"{e['params']:,}"]
        cells.append(f"{','.join(map(str, e['best_epochs']))} ({'yes' if e['converged'] else 'no'})"
                     if "best_epochs" in e else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if "fs" in summary and len(summary) > 1:
        best = max(summary, key=lambda n: summary[n]["income_50k_mean"])
        others = [n for n in summary if n != "fs"]
        lines += ["", "Verdict (FSMD Table II: FS has the best income AUC): among the models run here ("
                  + ", ".join(LABELS.get(n, n) for n in summary) + f"), the best income AUC is "
                  f"{LABELS.get(best, best)}'s {summary[best]['income_50k_mean']:.4f}; FS "
                  f"{summary['fs']['income_50k_mean']:.4f}. The claim "
                  + ("holds against " if best == "fs" else "does NOT hold against ")
                  + ", ".join(LABELS.get(n, n) for n in others)
                  + (" (not all of Table II's models were run)" if len(summary) < len(PAPER) else "") + "."]
        if any(not e.get("converged", True) for e in summary.values()):
            lines.append("Some runs did NOT converge (best epoch at the cap): see the last column.")
    _report.write_atomically(path, "\n".join(lines) + "\n")


def write_chart(path, summary, config):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, task in zip(axes, TASKS):
        x = np.arange(len(names))
        ours = [summary[n][f"{task}_mean"] for n in names]
        errs = [summary[n][f"{task}_std"] for n in names]
        paper = [PAPER.get(n, (np.nan, np.nan))[TASKS.index(task)] for n in names]
        ax.bar(x - 0.2, ours, 0.4, yerr=errs, label="tfmtl")
        ax.bar(x + 0.2, paper, 0.4, label="FSMD paper")
        ax.set_xticks(x, [LABELS.get(n, n) for n in names], rotation=30)
        low = np.nanmin(ours + paper)
        ax.set_ylim(low - 0.01, min(1.0, max(ours) + 0.01))
        ax.set_title(f"{task} test AUC ({config} settings)")
        ax.legend()
    fig.tight_layout()
    _report.save_figure(fig, path, dpi=110)


def rewrite(out: str) -> None:
    """Redraws the Markdown and PNG from a (possibly partial) JSON result."""
    result = json.load(open(out + ".json"))
    write_markdown(out + ".md", result["summary"], result["meta"])
    write_chart(out + ".png", result["summary"], result["meta"]["config"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--models", nargs="+", default=list(PAPER_MODELS), choices=list(PAPER_MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2, help="epochs, or the cap with --patience")
    parser.add_argument("--patience", type=int, default=0,
                        help="stop after this many epochs without a better validation AUC (0: run all epochs)")
    parser.add_argument("--fm", choices=["shared", "per_task"], default="shared",
                        help="FM of Base/FG/FS: the paper's shared DeepFM FM, or tfmtl's per-task variant")
    parser.add_argument("--rows", type=int, default=None, help="read only the first rows of each file")
    parser.add_argument("--out", default=None, help="output prefix (default bench/results/census_table_<config>)")
    parser.add_argument("--rewrite", action="store_true", help="only redraw .md and .png from the .json")
    parser.add_argument("--append", action="store_true",
                        help="add these runs to those already in the .json (e.g. a missing seed of some rows)")
    args = parser.parse_args(argv)
    if args.rewrite:
        rewrite(args.out or os.path.join(RESULTS, f"census_table_{args.config}"))
        return
    config = CONFIGS[args.config]
    splits = census.load_census(nrows=args.rows, embedding_dim=config["embedding_dim"],
                                numeric_buckets=config["numeric_buckets"], numeric_encoding=config["numeric_encoding"])
    out = args.out or os.path.join(RESULTS, f"census_table_{args.config}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    rows, commands, seeds = [], [], list(args.seeds)
    if args.append and os.path.exists(out + ".json"):
        with open(out + ".json") as f:
            previous = json.load(f)
        rows, commands = previous["runs"], previous["meta"].get("commands", [previous["meta"]["command"]])
        seeds = sorted(set(seeds) | set(previous["meta"]["seeds"]))
    command = "python -m bench.census_table " + " ".join(argv or sys.argv[1:])
    for seed in args.seeds:
        for name in args.models:
            start = time.perf_counter()
            aucs, train_eps, infer_eps, params, log = run_model(name, splits, config, seed, args.epochs,
                                                                args.patience, args.fm)
            rows.append({"model": name, "seed": seed, "auc": aucs, "train_examples_per_s": train_eps,
                         "infer_examples_per_s": infer_eps, "params": params, "train_log": log,
                         "load": os.getloadavg()[0]})
            print(f"{name:14s} seed {seed}: " + " ".join(f"{t}={a:.4f}" for t, a in aucs.items())
                  + f" train {train_eps:,.0f} ex/s ({time.perf_counter() - start:.0f}s) best epoch "
                  f"{log['best_epoch']}/{log['epochs_run']}", flush=True)
            summary = summarise(rows)
            meta = {"config": args.config, "command": command, "commands": commands + [command],
                    "seeds": seeds, "epochs": args.epochs, "patience": args.patience, "fm": args.fm,
                    "settings": {k: v for k, v in config.items()},
                    "rows": {"train": len(splits.train), "validation": len(splits.validation),
                             "test": len(splits.test)},
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
            _report.write_json(out + ".json", {"meta": meta, "paper": PAPER, "summary": summary, "runs": rows})
            write_markdown(out + ".md", summary, meta)
    rewrite(out)


if __name__ == "__main__":
    main()
