"""Merge the official M3oE runs (bench/official/m3oe_run.py) with tfmtl's into bench/results/official_m3oe.*.

    .venv/bin/python -m bench.official.m3oe_report --runs /work/official/out/m3oe_official_seed{0,1,2}.json

The metric is bench/multidomain.py's ``mean``: the mean of the six domain/task test AUCs at the best
validation epoch, mean +- std (population, as bench/multidomain.py's summary) over seeds. tfmtl's
numbers are read from bench/results/multidomain_converged.json (same rows, same split).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from bench import _report
from bench.multidomain import DOMAINS, LABELS, RESULTS, TASKS
from bench.official import seed_gap

OFFICIAL_REPO = "Applied-Machine-Learning-Lab/M3oE"
OFFICIAL_COMMIT = "1b30217477836cac8f9bb68329a91e1c805aa4f5"
TFMTL_SOURCE = "bench/results/multidomain_converged.json"
# the tfmtl model that reproduces the official code (M3oE.paper); the official repository has no baselines
SAME_MODEL = "m3oe_paper"
METRIC = "mean of the six domain/task test AUCs"


def mean_auc(run: dict) -> float:
    """bench/multidomain.py's ``mean`` column for one run."""
    return float(np.mean([run["auc"][d][t] for d in DOMAINS for t in TASKS]))


def summary(per_seed: list[float]) -> dict:
    return {"metric": METRIC, "per_seed": per_seed, "mean": float(np.mean(per_seed)), "std": float(np.std(per_seed))}


def build(official_runs: dict, tfmtl: dict, notes: list[str]) -> dict:
    """The issue-33 results object from ``{seed: run}`` of the official code and tfmtl's results JSON."""
    seeds = sorted(int(s) for s in official_runs)
    runs = [official_runs[str(s)] for s in seeds]
    official = dict(summary([mean_auc(r) for r in runs]), best_epoch=[r["best_epoch"] for r in runs],
                    epochs_run=[r["epochs_run"] for r in runs],
                    converged=[r["best_epoch"] < r["epochs_run"] - 1 and r["converged"] for r in runs],
                    structure=[r["structure"] for r in runs])
    models = {}
    for name, by_seed in tfmtl["runs"].items():
        if name == "single_domain":
            continue  # per-domain models: not a model of the official repository, nor one of its baselines
        entry = {"tfmtl": dict(summary([mean_auc(by_seed[str(s)]) for s in seeds]), source=TFMTL_SOURCE)}
        if name == SAME_MODEL:
            entry["official"] = official
        models[name] = entry
    tfmtl_order = sorted(models, key=lambda n: -models[n]["tfmtl"]["mean"])
    same = models[SAME_MODEL]
    return {"paper": "m3oe", "official_repo": OFFICIAL_REPO, "official_commit": OFFICIAL_COMMIT,
            "split": "bench/multidomain.py's rows (movielens.multidomain, split_frame 0.8/0.1/0.1 seed 0) exported by "
                     "bench/official/m3oe_export.py in examples/run_movielens.py's column layout",
            "protocol": "official CTRTrainer: Adam, early stopping on the mean validation AUC of the six domain/task "
                        "pairs (official EarlyStopper, patience 10, cap 50 epochs), best weights scored on the test "
                        "rows; tfmtl: bench/multidomain.py --patience 3 --epochs 30",
            "seeds": seeds, "models": models,
            "ordering": {"official": [SAME_MODEL], "tfmtl": tfmtl_order,
                         "official_m3oe_among_tfmtl": sorted(
                             ["official " + SAME_MODEL] + tfmtl_order,
                             key=lambda n: -(official["mean"] if n.startswith("official ") else
                                             models[n]["tfmtl"]["mean"]))},
            "gaps": [{"model": SAME_MODEL, **seed_gap(same["official"], same["tfmtl"]), "explained_by": ""}],
            "notes": notes}


def verdict(results: dict) -> str:
    """The issue-33 verdict, from the numbers: where the official M3oE falls among tfmtl's models."""
    models = results["models"]
    official = models[SAME_MODEL]["official"]
    best = results["ordering"]["tfmtl"][0]
    best_mean = models[best]["tfmtl"]["mean"]
    below = [n for n in results["ordering"]["tfmtl"] if models[n]["tfmtl"]["mean"] > official["mean"]]
    stands = official["mean"] < best_mean
    return (f"The official M3oE ({official['mean']:.4f} +- {official['std']:.4f}) scores below "
            f"{len(below)} of tfmtl's {len(models)} models on the same rows, {best_mean - official['mean']:.4f} "
            f"below the best ({LABELS.get(best, best)}); "
            + ("it does not make M3oE beat the baselines, so tfmtl's negative result stands. "
               if stands else "it beats tfmtl's best model, so tfmtl's negative result does not stand. ")
            + "The official repository has no STAR or MMoE baseline, so its own ordering cannot be read.")


def markdown(results: dict) -> str:
    lines = ["# M3oE: the official code on bench/multidomain.py's split", "",
             f"Official: {results['official_repo']} @ `{results['official_commit']}`. Metric: {METRIC}, "
             f"mean +- std over seeds {results['seeds']}. {results['protocol']}.", "",
             "| model | official | tfmtl | official - tfmtl |", "|---|---|---|---|"]
    for name, entry in results["models"].items():
        tfmtl = entry["tfmtl"]
        official = entry.get("official")
        left = f"{official['mean']:.4f} +- {official['std']:.4f}" if official else "not in the official repo"
        diff = f"{official['mean'] - tfmtl['mean']:+.4f}" if official else ""
        lines.append(f"| {LABELS.get(name, name)} | {left} | {tfmtl['mean']:.4f} +- {tfmtl['std']:.4f} | {diff} |")
    official = results["models"][SAME_MODEL]["official"]
    lines += ["", f"Official best epochs {official['best_epoch']} of {official['epochs_run']} run.", "",
              "Ordering, tfmtl: " + " > ".join(results["ordering"]["tfmtl"]),
              "", "The official M3oE among tfmtl's models: "
              + " > ".join(results["ordering"]["official_m3oe_among_tfmtl"]),
              "", "Gaps:"]
    for gap in results["gaps"]:
        lines.append(f"- {gap['model']}: official - tfmtl {gap['official_minus_tfmtl']:+.4f}, two seed spreads "
                     f"{gap['two_seed_spreads']:.4f}: {gap['explained_by']}")
    lines += ["", f"**Verdict:** {results['verdict']}", "", "Notes:"] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="JSON files written by m3oe_run.py")
    parser.add_argument("--notes", default=None, help="JSON file with a list of notes and the gap explanation")
    parser.add_argument("--out", default=os.path.join(RESULTS, "official_m3oe"))
    args = parser.parse_args(argv)
    official_runs = {}
    for path in args.runs:
        with open(path) as f:
            official_runs.update(json.load(f)["runs"])
    with open(os.path.join(RESULTS, "multidomain_converged.json")) as f:
        tfmtl = json.load(f)
    extra = {"notes": [], "explained_by": ""}
    if args.notes:
        with open(args.notes) as f:
            extra.update(json.load(f))
    results = build(official_runs, tfmtl, extra["notes"])
    results["gaps"][0]["explained_by"] = extra["explained_by"]
    results["verdict"] = verdict(results)
    _report.write_json(args.out + ".json", results)
    _report.write_atomically(args.out + ".md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
