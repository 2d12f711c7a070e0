"""Score the official MoRec runs (bench/official/morec_run.py) with bench.morec's metrics; compare with tfmtl.

    .venv/bin/python -m bench.official.morec_run --score /work/official/out/morec_official_seed0.json \\
        --tfmtl bench/results/morec_mf.json bench/results/morec_mf_official_settings.json \\
        --results bench/results/official_morec

Per seed: the base is the pretrained checkpoint (the lists every continuation starts from, epoch
0); per continuation the epoch with the best validation Imp among those valid on validation is kept
(else the last), as bench.morec keeps one; validity and Imp on test against the base, as
bench.morec. The official code's own choice (no early stopping in the MoRec phase: the last
validated epoch) is reported beside it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from bench._report import write_atomically
from bench.official import seed_gap

OFFICIAL_REPO = "microsoft/UniRec"
METHODS = ("morec", "static")
METRICS = ("hit@10", "rhit@10", "min_hit@10", "pop_kl@10")


def score_seed(paths: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """One official seed (its runs possibly split over several processes' JSON files, each with the
    same pretrained base): base and every continuation scored on validation and test."""
    from bench.morec import imp, report_lists
    from tfmtl.training import metrics as M

    seed_result = None
    for path in paths:
        with open(path) as f:
            part = json.load(f)
        if seed_result is None:
            seed_result = part
        elif part["base"]["model_file"] != seed_result["base"]["model_file"]:
            raise ValueError(f"{path}: another pretrained base than {paths[0]}'s")
        else:
            seed_result["runs"].update(part["runs"])
            seed_result["done"] = seed_result.get("done") and part.get("done")
    path = ", ".join(paths)
    runs, base_val, base = {}, None, None
    for key, run in seed_result["runs"].items():
        arrays = np.load(run["lists"])
        val_lists, test_lists = arrays[f"{run['arrays']}/val"], arrays[f"{run['arrays']}/test"]
        this_base_val, this_base = report_lists(val_lists[0], data, "val"), report_lists(test_lists[0], data, "test")
        if base is None:
            base_val, base = this_base_val, this_base
        elif this_base != base:
            raise ValueError(f"{path}: {key} did not start from the same pretrained model")
        epochs, chosen = [], None
        for epoch in range(1, len(val_lists)):
            val = report_lists(val_lists[epoch], data, "val")
            val_imp, valid = imp(val, base_val), M.is_valid(val["hit@10"], base_val["hit@10"])
            epochs.append({"epoch": epoch, "val": val, "val_imp": val_imp, "val_valid": valid})
            if valid and (chosen is None or val_imp > epochs[chosen - 1]["val_imp"]):
                chosen = epoch
        kept = chosen or len(val_lists) - 1
        test = report_lists(test_lists[kept], data, "test")
        last = report_lists(test_lists[-1], data, "test")
        runs[key] = {**{k: run[k] for k in ("method", "controller", "objective_weights", "beta_per_epoch",
                                            "seconds", "load")},
                     "chosen_epoch": chosen, "kept_epoch": kept, "epochs": epochs, "test": test,
                     "valid": M.is_valid(test["hit@10"], base["hit@10"]), "imp": imp(test, base),
                     "official_rule": {"epoch": len(val_lists) - 1, "test": last,
                                       "valid": M.is_valid(last["hit@10"], base["hit@10"]), "imp": imp(last, base)}}
    return {"seed": seed_result["seed"], "base": {"test": base, "validation": base_val, **seed_result["base"]},
            "settings": seed_result["settings"], "runs": runs, "done": bool(seed_result.get("done"))}


def best_valid(runs: dict[str, Any], method: str, preference: str | None = None) -> dict[str, Any] | None:
    """The valid (on test) solution of ``method`` with the best Imp, optionally at one preference key."""
    picks = [r for k, r in runs.items() if r["method"] == method and r["valid"]
             and (preference is None or k.split(" ", 1)[1] == preference)]
    return max(picks, key=lambda r: r["imp"]) if picks else None


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, np.float64)
    return {"per_seed": [float(v) for v in arr], "mean": float(arr.mean()) if len(arr) else None,
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}


def _fmt(entry: dict[str, Any] | None, scale: float = 1.0, fmt: str = ".4f") -> str:
    if not entry or entry["mean"] is None:
        return "n/a"
    n = len(entry["per_seed"])
    text = format(entry["mean"] * scale, fmt)
    return text + (f" ± {format(entry['std'] * scale, fmt.lstrip('+'))}" if n > 1 else "") + f" (n={n})"


def summarise(seeds: dict[str, dict[str, Any]], preference: str | None) -> dict[str, Any]:
    """Base Hit@10 and, per method, the best valid solution's Imp and Hit@10 over seeds."""
    out = {"base_hit@10": _stats([s["base"]["test"]["hit@10"] for s in seeds.values()])}
    for method in METHODS:
        picks = [best_valid(s["runs"], method, preference) for s in seeds.values()]
        out[method] = {"imp": _stats([p["imp"] for p in picks if p]),
                       "hit@10": _stats([p["test"]["hit@10"] for p in picks if p]),
                       "valid_seeds": sum(p is not None for p in picks)}
    paired = [(best_valid(s["runs"], "morec", preference), best_valid(s["runs"], "static", preference))
              for s in seeds.values()]
    out["morec_minus_static_imp"] = _stats([m["imp"] - st["imp"] for m, st in paired if m and st])
    return out


def report(paths: list[str], tfmtl_paths: list[str], results: str | None) -> dict[str, Any]:
    from bench.pid_control import movielens_data

    data = movielens_data()
    by_seed: dict[str, list[str]] = {}
    for path in paths:
        with open(path) as f:
            by_seed.setdefault(str(json.load(f)["seed"]), []).append(path)
    official = {seed: score_seed(group, data) for seed, group in sorted(by_seed.items())}
    preference = None
    keys = {k.split(" ", 1)[1] for s in official.values() for k in s["runs"]}
    if len(keys) == 1:
        preference = keys.pop()  # the official runs used one vector: compare tfmtl at it too
    tfmtl = {}
    for path in tfmtl_paths:
        with open(path) as f:
            res = json.load(f)
        seeds = {k: v for k, v in res["seeds"].items() if v.get("best")}
        name = os.path.splitext(os.path.basename(path))[0]
        tfmtl[name] = {"source": path, "settings": res["settings"], "best_of_all": summarise(seeds, None),
                       "at_official_preference": summarise(seeds, preference) if preference else None}
    off_summary = {"best_of_all": summarise(official, None)}
    models, ordering, gaps = compare(official, off_summary["best_of_all"], tfmtl, preference)
    out = {"paper": "morec", "official_repo": OFFICIAL_REPO, "official_commit": OFFICIAL_COMMIT,
           "split": "bench.pid_control.movielens_data (bench.morec's), written by bench/official/morec_export.py as "
                    "UniRec feather/CSV files (ids + 1); test lists built from the official model's embeddings with "
                    "bench.morec's exclusions",
           "protocol": "official MF-BPR pretrain (UniRec early stopping on validation NDCG@10), MoRec continuation "
                       "with PID and Static; scored with bench.morec.report_lists; per solution the epoch with the "
                       "best validation Imp among validation-valid epochs; valid = test Hit@10 >= 97% of the base's",
           "seeds": sorted(int(s) for s in official), "preference": preference,
           "models": models, "ordering": ordering, "gaps": gaps, "notes": NOTES,
           "official": {"summary": off_summary, "seeds": official},
           "tfmtl": tfmtl}
    out["verdict"] = verdict(out)
    if results:
        write_atomically(results + ".json", json.dumps(out, indent=1))
        write_atomically(results + ".md", markdown(out))
    print(markdown(out))
    return out


def compare(official: dict[str, Any], off: dict[str, Any], tfmtl: dict[str, Any], preference: str | None):
    """``models`` / ``ordering`` / ``gaps`` in the shape of the issue-33 results (see official_common)."""
    scope = "at_official_preference" if preference else "best_of_all"
    seeds = list(official.values())
    models: dict[str, Any] = {
        "MF-BPR base": {"official": {"metric": "test Hit@10", **off["base_hit@10"],
                                     "best_epoch": [s["base"]["best_epoch"] for s in seeds],
                                     "epochs_run": [s["base"]["epochs_run"] for s in seeds]}}}
    for method, label in (("morec", "MoRec PID"), ("static", "static weights")):
        picks = [best_valid(s["runs"], method) for s in seeds]
        models[label] = {"official": {"metric": f"best valid test Imp (preference {preference or 'any'})",
                                      **off[method]["imp"],
                                      "best_epoch": [p["kept_epoch"] if p else None for p in picks],
                                      "epochs_run": [len(p["epochs"]) if p else None for p in picks]}}
    for name, t in tfmtl.items():
        summary = t[scope] or t["best_of_all"]
        models["MF-BPR base"][name] = {"metric": "test Hit@10", **summary["base_hit@10"], "source": t["source"]}
        for method, label in (("morec", "MoRec PID"), ("static", "static weights")):
            models[label][name] = {"metric": models[label]["official"]["metric"], **summary[method]["imp"],
                                   "source": t["source"]}

    def order(get) -> list[str]:
        means = {m: get(m) for m in ("MoRec PID", "static weights")}
        return sorted((m for m in means if means[m] is not None), key=lambda m: -means[m])

    ordering = {"official": order(lambda m: models[m]["official"]["mean"])}
    for name in tfmtl:
        ordering[name] = order(lambda m, n=name: models[m][n]["mean"])
    gaps = []
    for model, entry in models.items():
        for name in tfmtl:
            o, t = entry["official"], entry[name]
            if o["mean"] is None or t["mean"] is None:
                continue
            # with one official seed its spread is unknown: tfmtl's seed spread is used alone
            gap = seed_gap(o, t)
            gaps.append({"model": model, "against": name, **gap,
                         "explained_by": EXPLAINED.get((model, name), "") if gap["exceeds"] else ""})
    return models, ordering, gaps


# Causes of the gaps larger than two seed spreads (read from the official code; see NOTES).
EXPLAINED: dict[tuple[str, str], str] = {}
NOTES: list[str] = [
    "Run size (session 41, shared 2-core machine, load 7-12): official seeds 0 and 1 only, pretraining capped at 8 "
    "epochs (best epoch = the cap in both: NOT converged; validation NDCG@10 still rising), MoRec phase 2 epochs, one "
    "preference vector (rev/fair/align 0.8/0.1/0.1 = the official script's [0.1, 0.1, 0.8] in UniRec's "
    "fairness/alignment/revenue order). One MoRec epoch cost 3-7 min here (four 512-row batches per step, per-row "
    "negative sampling in Python, a backward pass per objective).",
    "Official settings (examples/more-examples/morec/run_pipeline.sh): MF without biases, BPR with 10 "
    "popularity-sampled negatives (neg_by_pop_alpha 1.0), lr 1e-3, batch 512, dim 64, weight decay 1e-6; "
    "morec_alpha 0.01, morec_lambda 0.2, beta_min 0.1, beta_max 1.5, K_p 0.05, K_i 0.001, morec_ngroup 10; set point "
    "= the base's training loss at its best epoch (morec_objective_controller.py:248); scheduler None (the notebook's; "
    "base.yaml's ReduceLROnPlateau fails on torch 2.13, trainer.py:158).",
    "Differences that decide PID vs static (official file:line at 13aa7049): (1) clip: beta clamped to "
    "[beta_min, beta_max] (morec_objective_controller.py:284-288), scripts 0.1/1.5, base.yaml 0.6/1.3 "
    "(base.yaml:78-79); tfmtl's paper preset alpha_min 1.0, no max; (2) lambda: loss = morec_lambda * sum w L_obj + "
    "beta * L_acc (trainer.py:527), 0.2; tfmtl's preset 1.0; (3) Kp 0.05 in the scripts, 0.01 in base.yaml:80 and "
    "the paper; Ki 0.001 everywhere; (4) set point: scripts hard-code 0.25/0.20, the code comment (line 248) and "
    "tfmtl use the base's training loss; (5) sampler step morec_alpha 0.01 (scripts) vs 0.1 (base.yaml:75, notebook, "
    "tfmtl); (6) static: StaticWeightSolver (morec_objective_controller.py:9-19, main.py:351-353) takes a 4-vector "
    "(last = accuracy) and applies no lambda (trainer.py:478-500); run here as [0.2 p, 1], tfmtl's static is q_acc 1, "
    "q_obj = objective_scale * p.",
    "With the official clip and lambda the PID weight sits at beta_min + Kp/2 = 0.125 at the set point and falls to "
    "the floor 0.1 once the accuracy loss drops below it (official beta per epoch 0.122, 0.111; tfmtl's q_acc "
    "0.100-0.124): both implementations then train a constant accuracy weight about 8x lower than static's 1, "
    "i.e. the PID arm is a different static weighting, not a controller at work.",
    "Other differences (not PID vs static): the official sampler draws one batch per objective by group-stratified "
    "sampling plus a uniform accuracy batch (morec_data_sampler.py:395-419); tfmtl weights one batch; fairness signal "
    "= group with the largest validation loss (MoRecDS fairness_metric default 'loss', line 92) vs tfmtl's lowest "
    "Hit; alignment from top-100 lists (topk=100, line 91) vs top-10; revenue by 10 price groups with fixed weights "
    "(lines 136-160) vs per-item price. Backbone: the official base has Pop-KL@10 26 (popularity-sampled negatives) "
    "against tfmtl's 130 (uniform negatives, item bias), so Imp is measured from a different starting point.",
    "Scoring: official top-10 lists from the model's embeddings at every validation pass, scored with "
    "bench.morec.report_lists; kept epoch = best validation Imp among validation-valid epochs (bench.morec's rule); "
    "the official rule (last validated epoch) gives the same Imp except seed 0 PID (+67.0% at epoch 2 vs +61.8% kept).",
    "two_seed_spreads = 2 x the larger std (n-1) of the two sides; no gap exceeds it (official n=2).",
]

# microsoft/UniRec at the commit exported into /work/official/UniRec.
OFFICIAL_COMMIT = "13aa7049b216f1f390ea04766c91480d97aa6daa"


def verdict(out: dict[str, Any]) -> str:
    """The issue-33 verdict from the paired PID - static differences: does the official code agree with tfmtl?"""
    def within(d: dict[str, Any]) -> bool:  # the paired difference is within two standard errors of 0
        return d["mean"] is None or abs(d["mean"]) <= 2 * (d["std"] or 0) / max(len(d["per_seed"]), 1) ** 0.5

    official = out["official"]["summary"]["best_of_all"]["morec_minus_static_imp"]
    ours = {name: (t["at_official_preference"] or t["best_of_all"])["morec_minus_static_imp"]
            for name, t in out["tfmtl"].items()}
    agree = all(within(d) for d in ours.values())
    text = (f"Official PID - static {official['mean'] * 100:+.1f} +- {official['std'] * 100:.1f} points of Imp "
            f"({len(official['per_seed'])} seeds, paired); tfmtl "
            + ", ".join(f"`{n}` {d['mean'] * 100:+.1f} +- {d['std'] * 100:.1f}" for n, d in ours.items())
            + ". ")
    if official["mean"] <= 0 or within(official):
        text += ("The official code's PID does not beat its static weights either" + ("" if agree else
                 " (tfmtl's own difference is not within noise everywhere)")
                 + ", so the negative result is the method's at these settings, not tfmtl's. ")
    else:
        text += "The official code's PID beats its static weights where tfmtl's does not: a tfmtl difference to find. "
    return text + ("Provisional: the official side has fewer than 3 seeds, one preference vector and a pretraining "
                   "capped before convergence." if len(official["per_seed"]) < 3 else "")


def markdown(out: dict[str, Any]) -> str:
    pref = out["preference"]
    lines = [f"# MoRec: official code (microsoft/UniRec@{OFFICIAL_COMMIT[:8]}) vs tfmtl on bench.morec's split", "",
             f"Official seeds: {', '.join(map(str, out['seeds']))}; preference vector(s) run officially: "
             f"{pref or 'several'} (rev/fair/align). Imp in %, mean ± std (n-1) over seeds; "
             "per method the best valid solution.", "",
             "| implementation (settings) | solutions | base Hit@10 | PID best valid Imp | static best valid Imp | "
             "PID - static (paired) | PID Hit@10 | static Hit@10 |",
             "|---|---|---|---|---|---|---|---|"]

    def row(label: str, scope: str, s: dict[str, Any]) -> str:
        return (f"| {label} | {scope} | {_fmt(s['base_hit@10'])} | {_fmt(s['morec']['imp'], 100, '+.1f')} | "
                f"{_fmt(s['static']['imp'], 100, '+.1f')} | {_fmt(s['morec_minus_static_imp'], 100, '+.2f')} | "
                f"{_fmt(s['morec']['hit@10'])} | {_fmt(s['static']['hit@10'])} |")

    lines.append(row("official UniRec (run_pipeline.sh settings)", pref or "all", out["official"]["summary"]
                     ["best_of_all"]))
    for name, t in out["tfmtl"].items():
        label = f"tfmtl `{name}` (alpha_min {t['settings']['alpha_min']}, x{t['settings'].get('objective_scale', 1.0)})"
        if t["at_official_preference"]:
            lines.append(row(label, pref, t["at_official_preference"]))
        lines.append(row(label, "best of 6", t["best_of_all"]))
    lines += ["", "Per official seed and solution (test; kept epoch by bench.morec's rule; the official rule keeps "
              "the last epoch):", "",
              "| seed | run | Hit@10 | rHit@10 | min-Hit@10 | Pop-KL@10 | valid | Imp | kept epoch | "
              "official rule: Imp (valid) | PID beta per epoch |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed, s in out["official"]["seeds"].items():
        b = s["base"]["test"]
        lines.append(f"| {seed} | base (best epoch {s['base']['best_epoch']} of {s['base']['epochs_run']}, set point "
                     f"{s['base']['set_point']:.4f}) | {b['hit@10']:.4f} | {b['rhit@10']:.4f} | {b['min_hit@10']:.4f} "
                     f"| {b['pop_kl@10']:.2f} | | | | | |")
        for key, r in s["runs"].items():
            t, o = r["test"], r["official_rule"]
            beta = ", ".join(f"{e['mean']:.3f}" for e in r["beta_per_epoch"]) or "-"
            lines.append(f"| {seed} | {key} | {t['hit@10']:.4f} | {t['rhit@10']:.4f} | {t['min_hit@10']:.4f} | "
                         f"{t['pop_kl@10']:.2f} | {'yes' if r['valid'] else 'no'} | {r['imp']:+.1%} | "
                         f"{r['chosen_epoch'] or str(r['kept_epoch']) + ' (none valid on validation)'} | "
                         f"{o['imp']:+.1%} ({'yes' if o['valid'] else 'no'}) | {beta} |")
    lines += ["", "Gaps (official - tfmtl, means; two seed spreads):", ""]
    lines += [f"- {g['model']} vs `{g['against']}`: {g['official_minus_tfmtl']:+.4f} (two spreads "
              f"{g['two_seed_spreads']:.4f}){'; EXCEEDS: ' + g['explained_by'] if g['exceeds'] else ''}"
              for g in out["gaps"]]
    lines += ["", "Ordering by mean best valid Imp: " + "; ".join(f"{k}: {' > '.join(v)}" for k, v in
                                                              out["ordering"].items()), "", "Notes:", ""]
    lines += [f"- {n}" for n in out["notes"]]
    if out.get("verdict"):
        lines += ["", f"**Verdict:** {out['verdict']}"]
    return "\n".join(lines) + "\n"
