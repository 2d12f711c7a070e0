"""Merge the official MAMEX runs (bench/official/mamex_run.py) with tfmtl's into bench/results/official_mamex.*.

    .venv/bin/python -m bench.official.mamex_report --notes /work/official/out/mamex_notes.json \
        --runs /work/official/out/mamex_official_seed0.json /work/official/out/mamex_official_seed1.json \
               /work/official/out/mamex_official_seed2.json \
        --diagnostic-runs /work/official/out/mamex_official_warmneg_es50_seed0.json ...

``--diagnostic-runs`` (optional): runs of ``mamex_run.py --negatives warm`` (BPR negatives from the training
items only instead of loader.py line 223's draw from all items), reported as a separate row
(:data:`DIAGNOSTIC_LABEL`), with its own gaps to tfmtl; the gaps' ``explained_by`` then starts with the
measured effect of the negative draw, and the top-level ``verdict`` says what the official code can and
cannot tell about the paper's claim (MAMEX vs concatenation / averaging on cold items).

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
from bench.official import seed_gap

OFFICIAL_REPO = "Rec4Fun/MAMEX"
OFFICIAL_COMMIT = "928b614bbcdf6994ae82b71c4d8bd0f4c53ae2f5"
TFMTL_SOURCE = "bench/results/coldstart_converged.json"
# the tfmtl model that reproduces the official code (MAMEX.paper: content-only modality gate)
SAME_MODEL = "mamex_paper"
HEADLINE = "recall@10"
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "cold_click_auc")
DIAGNOSTIC = "official_warm_negatives"  # key of the diagnostic beside "official" / "tfmtl" in models[SAME_MODEL]
DIAGNOSTIC_LABEL = "mamex_paper, official code, warm-only negatives (diagnostic)"
SAMPLER_LINE = "loader.py:223 (PairSample: negitem = np.random.randint(0, dataset.m_item))"
BASELINES = ("concat", "mean")


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


def official_summary(by_seed: dict) -> dict:
    """Mean / std / per-seed values of ``{seed: mamex_run.py run}`` plus the stopping and timing record."""
    seeds = sorted(int(s) for s in by_seed)
    runs = [by_seed[str(s)] for s in seeds]
    return dict(summary([official_values(r) for r in runs]), seeds=seeds, best_epoch=[r["best_epoch"] for r in runs],
                epochs_run=[r["epochs_run"] for r in runs],
                converged=[r["converged"] and r["best_epoch"] < r["epochs_run"] - 1 for r in runs],
                official_metric=[r["official_metric"] for r in runs],
                train_seconds=[r["train_seconds"] for r in runs],
                seconds_per_epoch=[r["seconds_per_epoch"] for r in runs])


def gap(theirs: dict, mine: dict, metric: str) -> dict:
    return {"model": SAME_MODEL, "metric": metric, **seed_gap(theirs["metrics"][metric], mine["metrics"][metric])}


def measured_effect(metric: str, official: dict, diagnostic: dict, tfmtl: dict) -> str:
    """One sentence: what drawing the negatives from the warm items only did to the official code's gap."""
    def show(entry):
        values = entry["metrics"][metric]
        return f"{values['mean']:.4f} +- {values['std']:.4f}"

    before, after = gap(official, tfmtl, metric), gap(diagnostic, tfmtl, metric)
    closed = 1 - after["official_minus_tfmtl"] / before["official_minus_tfmtl"] if before["official_minus_tfmtl"] \
        else float("nan")
    if not after["exceeds"]:
        outcome = "closes the gap (within two seed spreads of tfmtl): the negative draw is the cause"
    elif after["official_minus_tfmtl"] * before["official_minus_tfmtl"] < 0:
        outcome = ("more than closes the gap (it reverses it, beyond two seed spreads): the negative draw is the "
                   "cause of the official code's deficit; its lead over tfmtl then has another cause")
    elif closed >= 0.5:
        outcome = f"closes {closed:.0%} of the gap: the negative draw is the main cause, not the whole of it"
    elif closed > 0.1:
        outcome = f"closes {closed:.0%} of the gap: the negative draw is a part of the cause only"
    else:
        outcome = f"does not close the gap ({closed:.0%} of it): the negative draw is not the cause"
    single = " (one seed: the spreads are tfmtl's alone)" if len(diagnostic["seeds"]) < 2 else ""
    return (f"Measured (seeds {diagnostic['seeds']}{single}): with the BPR negatives drawn from the warm (training) "
            f"items only instead of {SAMPLER_LINE}, which draws them from all items, cold ones included, the official "
            f"code's {metric} is {show(diagnostic)} (official sampler {show(official)}, tfmtl {show(tfmtl)}; gap "
            f"{after['official_minus_tfmtl']:+.4f} vs {before['official_minus_tfmtl']:+.4f}, two seed spreads "
            f"{after['two_seed_spreads']:.4f}): this {outcome}.")


def verdict(models: dict) -> str:
    """Does the official code agree with tfmtl's negative result on the paper's claim? What it can tell."""
    same = models[SAME_MODEL]
    value = {name: models[name]["tfmtl"]["metrics"][HEADLINE] for name in (SAME_MODEL, *BASELINES) if name in models}
    best_baseline = max((n for n in value if n != SAME_MODEL), key=lambda n: value[n]["mean"])
    official = {"official sampler": same["official"]}
    if DIAGNOSTIC in same:
        official["warm-only negatives"] = same[DIAGNOSTIC]
    base = value[best_baseline]
    shown = "; ".join(f"{k} {v['metrics'][HEADLINE]['mean']:.4f} +- {v['metrics'][HEADLINE]['std']:.4f}"
                      for k, v in official.items())
    few = "".join(f" ({k}: {len(v['seeds'])} seed, no spread of its own)" for k, v in official.items()
                  if len(v.get("seeds", [0, 0])) < 2)
    ahead = [k for k, v in official.items()
             if (lead := seed_gap(v["metrics"][HEADLINE], base))["exceeds"] and lead["official_minus_tfmtl"] > 0]
    head = (f"The official code cannot test the claim itself: it has no concatenation / averaging fusion (model.py "
            f"hard-codes the gate), so it gives no MAMEX-vs-baseline ordering of its own. Its MAMEX on our split "
            f"(cold {HEADLINE}: {shown}) ")
    if ahead:
        return head + (f"is ahead of tfmtl's best baseline ({best_baseline} {base['mean']:.4f} +- {base['std']:.4f}) "
                       f"with the {', '.join(ahead)}, by more than two seed spreads{few}; but that compares a "
                       "different model and training (the official BPR over free user embeddings) with tfmtl's "
                       "baseline, so it says tfmtl's preset is not the best a MAMEX does here, and neither confirms "
                       "nor refutes the paper's claim, which needs the same code with concatenation / averaging.")
    return head + (f"is not ahead of tfmtl's {' / '.join(BASELINES)} ({best_baseline} {base['mean']:.4f} +- "
                   f"{base['std']:.4f}), so nothing in it contradicts tfmtl's negative result (MAMEX does not beat "
                   "concatenation / averaging on cold items), but it cannot confirm it either.")


def build(official_runs: dict, tfmtl: dict, notes: list[str], explained_by: dict[str, str], settings: dict,
          diagnostic_runs: dict | None = None) -> dict:
    """The issue-33 results object from ``{seed: run}`` of the official code and tfmtl's results JSON.

    ``diagnostic_runs``: ``{seed: run}`` of ``mamex_run.py --negatives warm`` (a separate row, not the official).
    """
    seeds = sorted(int(s) for s in official_runs)
    official = official_summary(official_runs)
    models = {}
    for name, by_seed in tfmtl["runs"].items():
        entry = {"tfmtl": dict(summary([tfmtl_values(by_seed[str(s)]) for s in seeds]), source=TFMTL_SOURCE,
                               best_epoch=[by_seed[str(s)]["best_epoch"] for s in seeds])}
        if name == SAME_MODEL:
            entry["official"] = official
            if diagnostic_runs:
                entry[DIAGNOSTIC] = dict(official_summary(diagnostic_runs), label=DIAGNOSTIC_LABEL,
                                         negatives="warm: mamex_run.py --negatives warm (warm_pair_sample)")
        models[name] = entry
    same = models[SAME_MODEL]
    gaps, diagnostic_gaps = [], []
    for metric in METRICS:
        why = explained_by.get(metric, "")
        if DIAGNOSTIC in same:
            why = (measured_effect(metric, same["official"], same[DIAGNOSTIC], same["tfmtl"]) + " " + why).strip()
            diagnostic_gaps.append(gap(same[DIAGNOSTIC], same["tfmtl"], metric))
        gaps.append(dict(gap(same["official"], same["tfmtl"], metric), explained_by=why))

    def order(metric):
        return sorted(models, key=lambda n: -models[n]["tfmtl"]["metrics"][metric]["mean"])

    def among(metric):
        value = {n: models[n]["tfmtl"]["metrics"][metric]["mean"] for n in models}
        value["official " + SAME_MODEL] = official["metrics"][metric]["mean"]
        if DIAGNOSTIC in same:
            value["official " + SAME_MODEL + " warm-only negatives"] = same[DIAGNOSTIC]["metrics"][metric]["mean"]
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
            "gaps": gaps, "diagnostic_gaps": diagnostic_gaps, "verdict": verdict(models), "notes": notes}


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
        for side in ("official", DIAGNOSTIC, "tfmtl"):
            if side in entry:
                label, implementation = LABELS.get(name, name), side
                if side == DIAGNOSTIC:
                    label, implementation = DIAGNOSTIC_LABEL, f"official, seeds {entry[side]['seeds']}"
                lines.append(f"| {label} | {implementation} | "
                             + " | ".join(_cell(entry[side], m) for m in METRICS) + " |")
    same = results["models"][SAME_MODEL]
    official = same["official"]
    lines += ["", f"Verdict: {results['verdict']}", "",
              f"Official best epochs {official['best_epoch']} of {official['epochs_run']} run "
              "(0-based; evaluated every 10).", ""]
    if DIAGNOSTIC in same:
        diagnostic = same[DIAGNOSTIC]
        lines += [f"{DIAGNOSTIC_LABEL}, per seed (not an official setting: mamex_run.py --negatives warm replaces "
                  f"{SAMPLER_LINE}):", "",
                  "| seed | " + " | ".join(METRICS) + " | best epoch / epochs run | train seconds |",
                  "|---" * (3 + len(METRICS)) + "|"]
        for i, seed in enumerate(diagnostic["seeds"]):
            lines.append(f"| {seed} | " + " | ".join(f"{diagnostic['metrics'][m]['per_seed'][i]:.4f}" for m in METRICS)
                         + f" | {diagnostic['best_epoch'][i]} / {diagnostic['epochs_run'][i]} | "
                         f"{diagnostic['train_seconds'][i]:.0f} |")
        lines += ["", "Diagnostic gaps (warm-only negatives - tfmtl, MAMEX paper preset): " + "; ".join(
            f"{g['metric']} {g['official_minus_tfmtl']:+.4f} (two seed spreads {g['two_seed_spreads']:.4f}, "
            f"{'exceeds' if g['exceeds'] else 'within'})" for g in results["diagnostic_gaps"]), ""]
    lines += ["Official code's own metric (num_faiss_evaluate, all test users, its `hr` = our recall): "
              + "; ".join(f"seed {s}: hr@10 {m['hr']['10']:.4f}, recall@10 {m['recall']['10']:.4f}, "
                          f"ndcg@10 {m['ndcg']['10']:.4f}"
                          for s, m in zip(results["seeds"], official["official_metric"])), "",
              "Ordering, tfmtl (" + HEADLINE + "): " + " > ".join(results["ordering"]["tfmtl"]), "",
              "The official MAMEX among tfmtl's models:"]
    for metric, names in results["ordering"]["official_mamex_among_tfmtl_by_metric"].items():
        lines.append(f"- {metric}: " + " > ".join(names))
    lines += ["", "Gaps (official - tfmtl, MAMEX paper preset):"]
    for entry in results["gaps"]:
        flag = "exceeds" if entry["exceeds"] else "within"
        lines.append(f"- {entry['metric']}: {entry['official_minus_tfmtl']:+.4f}, two seed spreads "
                     f"{entry['two_seed_spreads']:.4f} ({flag})"
                     + (f": {entry['explained_by']}" if entry["explained_by"] else ""))
    lines += ["", "Notes:"] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="JSON files written by mamex_run.py")
    parser.add_argument("--notes", default=None,
                        help='JSON file {"notes": [...], "explained_by": {metric: why}} copied into the results')
    parser.add_argument("--diagnostic-runs", nargs="*", default=[],
                        help="JSON files written by mamex_run.py --negatives warm (a separate, diagnostic row)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "official_mamex"))
    args = parser.parse_args(argv)

    def load(paths, option, negatives):
        runs, settings = {}, []
        for path in paths:
            with open(path) as f:
                loaded = json.load(f)
            if loaded["settings"].get("negatives", "all") != negatives:
                parser.error(f"{option}: {path} was run with --negatives {loaded['settings'].get('negatives', 'all')}")
            # a run stopped before the official loop ended (finished false) is left out
            runs.update({seed: run for seed, run in loaded["runs"].items() if run.get("finished", True)})
            settings.append({k: v for k, v in loaded["settings"].items() if k != "negatives"})
        if any(s != settings[0] for s in settings):
            parser.error(f"{option}: the files were run with different settings")
        return runs, settings

    official_runs, settings = load(args.runs, "--runs", "all")
    diagnostic_runs, diagnostic_settings = load(args.diagnostic_runs, "--diagnostic-runs", "warm")
    if diagnostic_settings and diagnostic_settings[0] != settings[0]:
        parser.error("--diagnostic-runs: run with other settings than --runs (besides --negatives)")
    with open(os.path.join(RESULTS, "coldstart_converged.json")) as f:
        tfmtl = json.load(f)
    extra = {"notes": [], "explained_by": {}}
    if args.notes:
        with open(args.notes) as f:
            extra.update(json.load(f))
    results = build(official_runs, tfmtl, extra["notes"], extra["explained_by"], settings[0], diagnostic_runs or None)
    _report.write_json(args.out + ".json", results)
    _report.write_atomically(args.out + ".md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
