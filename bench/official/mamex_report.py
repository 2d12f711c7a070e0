"""Merge the official MAMEX runs (bench/official/mamex_run.py) with tfmtl's into bench/results/official_mamex.*.

    .venv/bin/python -m bench.official.mamex_report --notes /work/official/out/mamex_notes.json \
        --runs /work/official/out/mamex_official_seed0.json /work/official/out/mamex_official_seed1.json \
               /work/official/out/mamex_official_seed2.json

The headline metric is bench/coldstart.py's Recall@10 of ranking all 336 cold items for its 300 sampled
users (relevant = the cold items they rated) at the best warm-validation epoch; NDCG@10, Recall@20,
NDCG@20 and the click AUC on the cold exposures are reported beside it. Mean +- std (population, as
bench/coldstart.py's tables) over seeds. tfmtl's numbers are read from
bench/results/coldstart_converged.json: the same split, the same users and the same metric code.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from bench import _report
from bench.coldstart import LABELS, RESULTS

OFFICIAL_REPO = "Rec4Fun/MAMEX"
OFFICIAL_COMMIT = "928b614bbcdf6994ae82b71c4d8bd0f4c53ae2f5"
TFMTL_SOURCE = "bench/results/coldstart_converged.json"
# the tfmtl model that reproduces the official code (MAMEX.paper: content-only modality gate)
SAME_MODEL = "mamex_paper"
HEADLINE = "recall@10"
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "cold_click_auc")


def official_values(run: dict) -> dict:
    return dict(run["ranking"], cold_click_auc=run["cold_auc"]["click"])


def tfmtl_values(run: dict) -> dict:
    return dict(run["ranking"], cold_click_auc=run["cold"]["all"]["click"])


def summary(per_seed: list[dict]) -> dict:
    """``{metric: {per_seed, mean, std}}`` plus the headline metric's at the top level."""
    by_metric = {m: {"per_seed": [v[m] for v in per_seed], "mean": float(np.mean([v[m] for v in per_seed])),
                     "std": float(np.std([v[m] for v in per_seed]))} for m in METRICS}
    return dict(by_metric[HEADLINE], metric=f"{HEADLINE} over all cold items, bench/coldstart.py's 300 users",
                metrics=by_metric)


def build(official_runs: dict, tfmtl: dict, notes: list[str], explained_by: dict[str, str], settings: dict) -> dict:
    """The issue-33 results object from ``{seed: run}`` of the official code and tfmtl's results JSON."""
    seeds = sorted(int(s) for s in official_runs)
    runs = [official_runs[str(s)] for s in seeds]
    official = dict(summary([official_values(r) for r in runs]), best_epoch=[r["best_epoch"] for r in runs],
                    epochs_run=[r["epochs_run"] for r in runs],
                    converged=[r["converged"] and r["best_epoch"] < r["epochs_run"] - 1 for r in runs],
                    official_metric=[r["official_metric"] for r in runs],
                    seconds_per_epoch=[r["seconds_per_epoch"] for r in runs])
    models = {}
    for name, by_seed in tfmtl["runs"].items():
        entry = {"tfmtl": dict(summary([tfmtl_values(by_seed[str(s)]) for s in seeds]), source=TFMTL_SOURCE,
                               best_epoch=[by_seed[str(s)]["best_epoch"] for s in seeds])}
        if name == SAME_MODEL:
            entry["official"] = official
        models[name] = entry
    same = models[SAME_MODEL]
    gaps = []
    for metric in METRICS:
        mine, theirs = same["tfmtl"]["metrics"][metric], same["official"]["metrics"][metric]
        gap, spreads = theirs["mean"] - mine["mean"], 2 * max(theirs["std"], mine["std"])
        gaps.append({"model": SAME_MODEL, "metric": metric, "official_minus_tfmtl": gap, "two_seed_spreads": spreads,
                     "exceeds": abs(gap) > spreads, "explained_by": explained_by.get(metric, "")})

    def order(metric):
        return sorted(models, key=lambda n: -models[n]["tfmtl"]["metrics"][metric]["mean"])

    def among(metric):
        value = {n: models[n]["tfmtl"]["metrics"][metric]["mean"] for n in models}
        value["official " + SAME_MODEL] = official["metrics"][metric]["mean"]
        return sorted(value, key=lambda n: -value[n])

    return {"paper": "mamex", "official_repo": OFFICIAL_REPO, "official_commit": OFFICIAL_COMMIT,
            "split": "bench/coldstart.py's rows (movielens.coldstart_split 0.2, seed 0, cf_dim 16) exported by "
                     "bench/official/mamex_export.py as Loader4MM's train/val/test.txt (rated pairs), "
                     "cold_item_index.npy (our 336 cold items), text_feat.npy (title tf-idf SVD 128) and "
                     "image_feat.npy (19 genres + year_z)",
            "protocol": "official Session.train (Adam, BPR with one uniform negative + align + balance losses, "
                        f"evaluation every {settings['eva_interval']} epochs, stop {settings['early_stop']} epochs "
                        f"without improvement (official default 200), cap {settings['epoch']}), selecting on "
                        "tfmtl's warm-validation click/conversion AUC (our split has no cold validation set), "
                        "test scored at the best evaluation; tfmtl: bench/coldstart.py --patience 3 --epochs 30",
            "seeds": seeds, "official_settings": settings, "models": models,
            "ordering": {"official": [SAME_MODEL], "tfmtl": order(HEADLINE),
                         "tfmtl_by_metric": {m: order(m) for m in METRICS},
                         "official_mamex_among_tfmtl": among(HEADLINE),
                         "official_mamex_among_tfmtl_by_metric": {m: among(m) for m in METRICS}},
            "gaps": gaps, "notes": notes}


def _cell(entry: dict | None, metric: str) -> str:
    if entry is None:
        return "not in the official repo"
    values = entry["metrics"][metric]
    return f"{values['mean']:.4f} +- {values['std']:.4f}"


def markdown(results: dict) -> str:
    lines = ["# MAMEX: the official code on bench/coldstart.py's split", "",
             f"Official: {results['official_repo']} @ `{results['official_commit']}`. Ranking: all 336 cold items "
             f"for bench/coldstart.py's 300 users; mean +- std over seeds {results['seeds']}. "
             f"{results['protocol']}.", "",
             "| model | implementation | " + " | ".join(METRICS) + " |", "|---" * (2 + len(METRICS)) + "|"]
    for name, entry in results["models"].items():
        for side in ("official", "tfmtl"):
            if side in entry:
                lines.append(f"| {LABELS.get(name, name)} | {side} | "
                             + " | ".join(_cell(entry[side], m) for m in METRICS) + " |")
    official = results["models"][SAME_MODEL]["official"]
    lines += ["", f"Official best epochs {official['best_epoch']} of {official['epochs_run']} run "
              "(0-based; evaluated every 10).", "",
              "Official code's own metric (num_faiss_evaluate, all test users, its `hr` = our recall): "
              + "; ".join(f"seed {s}: hr@10 {m['hr']['10']:.4f}, recall@10 {m['recall']['10']:.4f}, "
                          f"ndcg@10 {m['ndcg']['10']:.4f}"
                          for s, m in zip(results["seeds"], official["official_metric"])), "",
              "Ordering, tfmtl (" + HEADLINE + "): " + " > ".join(results["ordering"]["tfmtl"]), "",
              "The official MAMEX among tfmtl's models:"]
    for metric, names in results["ordering"]["official_mamex_among_tfmtl_by_metric"].items():
        lines.append(f"- {metric}: " + " > ".join(names))
    lines += ["", "Gaps (official - tfmtl, MAMEX paper preset):"]
    for gap in results["gaps"]:
        flag = "exceeds" if gap["exceeds"] else "within"
        lines.append(f"- {gap['metric']}: {gap['official_minus_tfmtl']:+.4f}, two seed spreads "
                     f"{gap['two_seed_spreads']:.4f} ({flag})" + (f": {gap['explained_by']}" if gap["explained_by"]
                                                                 else ""))
    lines += ["", "Notes:"] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="JSON files written by mamex_run.py")
    parser.add_argument("--notes", default=None,
                        help='JSON file {"notes": [...], "explained_by": {metric: why}} copied into the results')
    parser.add_argument("--out", default=os.path.join(RESULTS, "official_mamex"))
    args = parser.parse_args(argv)
    official_runs, settings = {}, []
    for path in args.runs:
        with open(path) as f:
            loaded = json.load(f)
        official_runs.update(loaded["runs"])
        settings.append(loaded["settings"])
    if any(s != settings[0] for s in settings):
        parser.error("--runs: the files were run with different settings")
    with open(os.path.join(RESULTS, "coldstart_converged.json")) as f:
        tfmtl = json.load(f)
    extra = {"notes": [], "explained_by": {}}
    if args.notes:
        with open(args.notes) as f:
            extra.update(json.load(f))
    results = build(official_runs, tfmtl, extra["notes"], extra["explained_by"], settings[0])
    _report.write_json(args.out + ".json", results)
    _report.write_atomically(args.out + ".md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
