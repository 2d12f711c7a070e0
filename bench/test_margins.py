"""How much do the quality tests' numbers move with the seed and the CPU's numerics?

A quality test with a fixed bound must hold on any x86 CPU. This script re-runs the training
of each threshold test in ``tests/`` exactly as the test does it, over several seeds and with
oneDNN on and off (a different kernel path, the largest numerics change one machine can show),
each run in a fresh process because oneDNN is chosen when TensorFlow is imported. The table gives
each quantity's min / mean / max beside the bound the test uses, so a bound can be set below the
spread with a visible margin.

    python -m bench.test_margins --seeds 0 1 2 3 4 5
    python -m bench.test_margins --report-only

Results: ``bench/results/test_margins.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
JSON_PATH = os.path.join(RESULTS, "test_margins.json")

# test id -> (quantity, bound, direction): the assertion each test makes.
BOUNDS = {
    "census_slice_auc": {"income_50k_auc": (0.90, ">"), "never_married_auc": (0.97, ">")},
    "census_slice_converged": {"income_50k_auc": (0.92, ">"), "never_married_auc": (0.985, ">")},
}


def census_slice_auc(seed: int) -> dict:
    """The census slice test as it was until this table: 2 epochs, no validation (kept for comparison)."""
    from sklearn.metrics import roc_auc_score

    from tfmtl._keras import keras
    from tfmtl.datasets import census
    from tfmtl.models import MMoE

    splits = census.load_census(nrows=20_000)
    keras.utils.set_random_seed(seed)
    model = MMoE(splits.spec, num_experts=4, expert_units=[64, 32], tower_units=[16], cross=None)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(splits.train, epochs=2, batch_size=256, verbose=0)
    predictions = model.predict(splits.test, verbose=0)
    return {task + "_auc": float(roc_auc_score(splits.spec.label_array(splits.test, task).ravel(),
                                               predictions[task].ravel()))
            for task in ("income_50k", "never_married")}


def census_slice_converged(seed: int) -> dict:
    """tests/models/test_models.py::test_census_slice_beats_fixed_auc (its own training function)."""
    from tests.models.test_models import converged_census_aucs
    from tfmtl._keras import keras
    from tfmtl.datasets import census

    splits = census.load_census(nrows=20_000)
    keras.utils.set_random_seed(seed)
    income, married = converged_census_aucs(splits)
    return {"income_50k_auc": income, "never_married_auc": married}


RUNS = {"census_slice_auc": census_slice_auc, "census_slice_converged": census_slice_converged}


def _child(test: str, seed: int) -> None:
    result = RUNS[test](seed)
    print("RESULT " + json.dumps(result))


def _run_one(test: str, seed: int, onednn: bool) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0", TF_CPP_MIN_LOG_LEVEL="2")
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "bench.test_margins", "--child", test, str(seed)], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return {"test": test, "seed": seed, "onednn": onednn, "seconds": round(time.time() - started, 1),
            **json.loads(line[len("RESULT "):])}


def _table(runs: list[dict]) -> str:
    import numpy as np

    lines = ["# Spread of the quality tests' numbers over seeds and oneDNN on/off", "",
             "Each quality test's training re-run as the test runs it (fresh process per run);",
             "`python -m bench.test_margins` regenerates this table.", "",
             "| test | quantity | bound | runs | min | mean | max | std | margin (min - bound) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for test, quantities in BOUNDS.items():
        for quantity, (bound, direction) in quantities.items():
            values = np.array([r[quantity] for r in runs if r["test"] == test])
            if not len(values):
                continue
            margin = values.min() - bound if direction == ">" else bound - values.max()
            lines.append(f"| {test} | {quantity} | {direction} {bound} | {len(values)} | {values.min():.4f} | "
                         f"{values.mean():.4f} | {values.max():.4f} | {values.std():.4f} | {margin:+.4f} |")
    lines += ["", "| test | seed | oneDNN | " + " | ".join(q for qs in BOUNDS.values() for q in qs) + " | s |",
              "|---|---|---|" + "---|" * (sum(len(q) for q in BOUNDS.values()) + 1)]
    for r in runs:
        cells = [f"{r[q]:.4f}" if q in r else "" for qs in BOUNDS.values() for q in qs]
        lines.append(f"| {r['test']} | {r['seed']} | {'on' if r['onednn'] else 'off'} | {' | '.join(cells)} | "
                     f"{r['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--tests", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    from bench._report import write_atomically

    runs = json.load(open(JSON_PATH)) if os.path.exists(JSON_PATH) else []
    if not args.report_only:
        runs = [r for r in runs if not (r["test"] in args.tests and r["seed"] in args.seeds)]
        for test in args.tests:
            for seed in args.seeds:
                for onednn in (True, False):
                    runs.append(_run_one(test, seed, onednn))
                    print(runs[-1], flush=True)
                    write_atomically(JSON_PATH, json.dumps(runs, indent=1))
    write_atomically(os.path.join(RESULTS, "test_margins.md"), _table(runs))


if __name__ == "__main__":
    main()
