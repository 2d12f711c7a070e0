"""Can the test sets tell tfmtl's default from LightGBM? DeLong's paired test on the same rows (issue 17).

    python -m bench.paired_auc                            # every data set, seed 0: ~12 min on 2 cores
    python -m bench.paired_auc --datasets census --lightgbm-seeds 0 1 2
    python -m bench.paired_auc --report-only              # rebuild the Markdown from the JSON

``bench.tabular`` reports mean test AUCs; this asks how much of a gap between them
the test set itself can resolve. For each data set it trains the default a user gets
(``FeatureSpec.from_dataframe`` + MMoE + ``fit`` with ``convergence_callbacks()``, the
runs of ``bench.tabular``) and LightGBM with the same settings as there, scores both
on the same test rows and reports per task each AUC with its standard error, the
difference tfmtl - LightGBM with its 95 % interval and two-sided p (DeLong's paired
test, ``bench/_stats.py``), and for census how far the issue's absolute bars lie from
tfmtl's AUC in standard errors. Data, splits and the LightGBM dependency are
``bench.tabular``'s.

Writes ``bench/results/paired_auc.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import tabular
from bench._report import save_report
from bench._stats import paired_auc_difference

OUT = "bench/results/paired_auc"


def compare(dataset: str, tfmtl_seed: int, lightgbm_seeds: list[int], max_epochs: int | None) -> list[dict]:
    """One row per (task, LightGBM seed): tfmtl's default against that LightGBM run on the same test rows."""
    from tfmtl.features.inference import DEFAULT_NUMERIC_ENCODING

    data = tabular.load(dataset)
    model = "mmoe"
    ours = tabular.run_tfmtl(data, tfmtl_seed, DEFAULT_NUMERIC_ENCODING, tabular.default_cross(model), max_epochs,
                             model, keep_predictions=True)
    rows = []
    for seed in lightgbm_seeds:
        theirs = tabular.run_lightgbm(data, seed, keep_predictions=True)
        for task, (labels, scores) in ours["test_predictions"].items():
            their_labels, their_scores = theirs["test_predictions"][task]
            if not (their_labels == labels).all():
                raise RuntimeError(f"{dataset}/{task}: the two runs saw different test labels")
            rows.append({"dataset": dataset, "task": task, "tfmtl_seed": tfmtl_seed, "lightgbm_seed": seed,
                         "test_rows": int(labels.size), "positives": int(labels.sum()),
                         "tfmtl_seconds": ours["seconds"], "lightgbm_seconds": theirs["seconds"],
                         "best_epoch": ours["best_epoch"], "epochs": ours["epochs"],
                         **paired_auc_difference(labels, scores, their_scores)})
    return rows


def _digits(row: dict) -> int:
    """Decimals that show a row's standard error: 4, or 5 where it is under 0.001 (census never married)."""
    return 5 if row["se_a"] < 0.001 else 4


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = ["# tfmtl's default vs LightGBM on the same test rows: DeLong's paired test", "",
             f"Command: `{meta['command']}` ({meta['started']} UTC, {meta['cpu_count']} cores, load "
             f"{meta['load_start']:.2f} at start).  ",
             "tfmtl: the default a user gets (`FeatureSpec.from_dataframe` + MMoE + `fit` with "
             "`convergence_callbacks()`), LightGBM with `bench.tabular`'s settings; data and splits as in "
             "[tabular.md](tabular.md). Each AUC ± its DeLong standard error (what a new test set of the same "
             "size would move it by, one sigma); Δ = tfmtl - LightGBM on the same rows with its 95 % interval "
             "and two-sided p. An interval that holds 0 means this test set cannot tell the two apart.", "",
             "| data set | task | test rows (positives) | tfmtl (seed) | LightGBM (seed) | Δ | 95 % interval | p |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        d = _digits(r)
        lines.append(f"| {r['dataset']} | {r['task']} | {r['test_rows']:,} ({r['positives']:,}) | "
                     f"{r['auc_a']:.{d}f} ± {r['se_a']:.{d}f} ({r['tfmtl_seed']}) | {r['auc_b']:.{d}f} ± "
                     f"{r['se_b']:.{d}f} ({r['lightgbm_seed']}) | {r['difference']:+.{d}f} | "
                     f"[{r['ci_low']:+.{d}f}, {r['ci_high']:+.{d}f}] | {r['p']:.2f} |")
    census = {r["task"]: r for r in results["rows"] if r["dataset"] == "census"}
    if census:
        lines += ["", "## The issue's census bars against the test set's resolution", ""]
        for task, bar in tabular.CENSUS_BARS.items():
            if task in census:
                r, d = census[task], _digits(census[task])
                lines.append(f"- {task}: bar {bar}, tfmtl {r['auc_a']:.{d}f} ± {r['se_a']:.{d}f}: the bar is "
                             f"{(bar - r['auc_a']) / r['se_a']:+.2f} standard errors away "
                             f"(95 % interval of tfmtl's AUC [{r['auc_a'] - 1.96 * r['se_a']:.{d}f}, "
                             f"{r['auc_a'] + 1.96 * r['se_a']:.{d}f}]).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(tabular.DATASETS), choices=tabular.DATASETS)
    parser.add_argument("--tfmtl-seed", type=int, default=0)
    parser.add_argument("--lightgbm-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-epochs", type=int, default=None, help="default: tfmtl.training.TrainingRun's cap")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(args.out + ".json") as f:
            results = json.load(f)
        save_report(args.out, results, markdown(results))
        return
    command = " ".join(["python -m bench.paired_auc", *(sys.argv[1:] if argv is None else argv)])
    results = {"meta": {"command": command, "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                        "cpu_count": os.cpu_count(), "load_start": os.getloadavg()[0]}, "rows": []}
    for dataset in args.datasets:
        results["rows"] += compare(dataset, args.tfmtl_seed, args.lightgbm_seeds, args.max_epochs)
        save_report(args.out, results, markdown(results))  # each finished data set is kept


if __name__ == "__main__":
    main()
