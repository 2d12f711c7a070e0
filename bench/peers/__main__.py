"""tfmtl vs. peer libraries (DeepCTR, torch-rechub) on the census task (issue #8).

Runs every (model, seed, library) as its own subprocess in that library's venv
(bench/peers/run_*.py, protocol in bench/peers/common.py), interleaving the
libraries (for each model and seed the libraries run back to back, in an order
that rotates from one (model, seed) to the next) so that machine noise hits
all of them alike. After every run it rewrites, atomically:

* ``bench/results/peers.json``: every run's JSON result (and the failures), the invocations;
* ``bench/results/peers.md``: reproduce commands, what was run, one table per model
  (test AUC per task mean ± std, training and inference examples/s, peak RSS) and tfmtl/peer ratios;
* ``bench/results/peers.png``: bars of training examples/s and test AUC per library and model.

Defaults = the full protocol (4 models x 3 seeds x 2 epochs x {tfmtl, deepctr, torch-rechub}, full data;
2 epochs: epoch 1 includes graph building, epoch 2 gives the steady-state rate; a third epoch would
cost half as much machine time again):

    bash bench/peers/setup_env.sh
    .venv/bin/python -m bench.peers

Reduced runs: ``--models mmoe --seeds 0 --epochs 1``; ``--append`` keeps the runs already in
peers.json (a later invocation adds to them); ``--deadline HH:MM`` starts no run after that
machine-clock time; ``--libs`` adds ``tfmtl-xla`` (tfmtl with ``jit_compile=True``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

from bench import _report

PEERS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(PEERS))
RESULTS = os.path.join(REPO, "bench", "results")
MODELS = ("shared_bottom", "mmoe", "ple", "esmm")
LIBS = {  # name -> (python, module under bench.peers, extra args)
    "tfmtl": (os.path.join(REPO, ".venv", "bin", "python"), "run_tfmtl", []),
    "tfmtl-xla": (os.path.join(REPO, ".venv", "bin", "python"), "run_tfmtl", ["--jit-compile"]),
    "deepctr": (os.path.join(PEERS, ".venv-deepctr", "bin", "python"), "run_deepctr", []),
    "torch-rechub": (os.path.join(PEERS, ".venv-rechub", "bin", "python"), "run_rechub", []),
}
LIB_ALIASES = {"rechub": "torch-rechub"}
PEER_LIBS = ("deepctr", "torch-rechub")
TASKS = ("income_50k", "never_married")
FULL = dict(models=",".join(MODELS), seeds="0,1,2", epochs=2, rows=None)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=FULL["models"], help="comma list of " + ", ".join(MODELS))
    p.add_argument("--seeds", default=FULL["seeds"], help="comma list of seeds")
    p.add_argument("--epochs", type=int, default=FULL["epochs"])
    p.add_argument("--rows", type=int, default=FULL["rows"], help="first N rows of each file (smoke tests)")
    p.add_argument("--libs", default="tfmtl,deepctr,torch-rechub",
                   help="comma list of tfmtl, tfmtl-xla, deepctr, torch-rechub (alias rechub)")
    p.add_argument("--torch-omp-wait-policy", default="PASSIVE", choices=("ACTIVE", "PASSIVE", "default"),
                   help="--omp-wait-policy for torch-rechub (PASSIVE: torch's pool collapses on a busy machine)")
    p.add_argument("--cpus", default="0,1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--append", action="store_true", help="keep the runs already in peers.json")
    p.add_argument("--deadline", default=None, help="HH:MM machine clock: start no run after it")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per run")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite peers.md/.png from peers.json (and peers.profile.json) without running")
    p.add_argument("--out-prefix", default=os.path.join(RESULTS, "peers"))
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.libs = [LIB_ALIASES.get(x.strip(), x.strip()) for x in args.libs.split(",") if x.strip()]
    bad = [m for m in args.models if m not in MODELS] + [x for x in args.libs if x not in LIBS]
    if bad:
        p.error(f"unknown model(s)/library(ies): {bad}")
    return args


def plan(models, seeds, libs):
    """(model, seed, lib) in run order: libraries interleaved, their order rotated per (model, seed).

    Seed-major, so that a run stopped by ``--deadline`` has every model for the seeds it finished.
    """
    out, k = [], 0
    for seed in seeds:
        for model in models:
            order = libs[k % len(libs):] + libs[:k % len(libs)]
            out.extend((model, seed, lib) for lib in order)
            k += 1
    return out


def command(args, model, seed, lib):
    py, module, extra = LIBS[lib]
    cmd = [py, "-m", f"bench.peers.{module}", "--model", model, "--seed", str(seed), "--epochs", str(args.epochs),
           "--cpus", args.cpus, "--threads", str(args.threads), *extra]
    if args.rows:
        cmd += ["--rows", str(args.rows)]
    if lib == "torch-rechub" and args.torch_omp_wait_policy != "default":
        cmd += ["--omp-wait-policy", args.torch_omp_wait_policy]
    return cmd


def rel(cmd):
    return " ".join(shlex.quote(os.path.relpath(c, REPO) if c.startswith(REPO) else c) for c in cmd)


# ------------------------------------------------------------------ report
def _ms(values, digits=4):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summarize(runs):
    """{model: {lib: {figure: [values]}}}."""
    table = {}
    for r in runs:
        if "error" in r:
            continue
        t = table.setdefault(r["model"], {}).setdefault(r["library"], {})
        for task in TASKS + ("ctcvr",):
            if task in r["test_auc"]:
                t.setdefault(f"auc_{task}", []).append(r["test_auc"][task])
        for key in ("train_examples_per_s", "infer_examples_per_s", "infer_examples_per_s_model_call",
                    "peak_rss_mib"):
            t.setdefault(key, []).append(r[key])
        t.setdefault("seeds", []).append(r["seed"])
        t.setdefault("epochs", []).append(r["epochs"])
        t.setdefault("rows_train", []).append(r["rows"]["train"])
    return table


def _lib_order(libs):
    order = ["tfmtl", "tfmtl-xla", "deepctr", "torch-rechub"]
    return [x for x in order if x in libs] + sorted(set(libs) - set(order))


def markdown(doc):
    runs, table = doc["runs"], summarize(doc["runs"])
    lines = ["# tfmtl vs. peer libraries on Census-Income (issue #8)", "",
             f"Written {doc['written']} (machine clock). Raw results: `bench/results/peers.json`; "
             "protocol: `bench/peers/common.py`, configs: docstrings of `bench/peers/run_*.py`.", "",
             "## Reproduce", "", "```bash",
             "bash bench/peers/setup_env.sh                # peer venvs: .venv-deepctr, .venv-rechub",
             "# full protocol (4 models x 3 seeds x 2 epochs x 3 libraries, full data):",
             ".venv/bin/python -m bench.peers",
             "# what produced the numbers below (in this order):"]
    lines += [inv["command"] for inv in doc["invocations"]]
    lines += ["```", "", "## What was run", ""]
    done = {}
    for r in runs:
        if "error" not in r:
            done.setdefault((r["model"], r["epochs"], r["rows"]["train"]), {}).setdefault(r["library"], []).append(
                r["seed"])
    for (model, epochs, rows), libs in done.items():
        lines.append(f"* {model}: {epochs} epochs, {rows:,} training rows; "
                     + "; ".join(f"{lib} seeds {sorted(s)}" for lib, s in libs.items()))
    fails = [r for r in runs if "error" in r]
    for r in fails:
        lines.append(f"* FAILED {r['library']}/{r['model']} seed {r['seed']}: {r['error']}")
    full = (set(r["model"] for r in runs if "error" not in r) == set(MODELS)
            and all(r["epochs"] == FULL["epochs"] for r in runs)
            and len({r["seed"] for r in runs}) >= 3 and all(r.get("rows", {}).get("train") == 199523
                                                                for r in runs if "error" not in r))
    if not full:
        lines += ["", "**Reduced protocol.** These numbers are NOT the full protocol (4 models x 3 seeds x 2 "
                  "epochs); see above for exactly what ran. With one seed the ± columns are absent, and with 1 "
                  "epoch the training rate is taken after 50 warm-up steps."]
    lines += ["", "Each run: one process, pinned to the CPUs and thread counts in the JSON `threads` field. "
              "train ex/s = training examples/s of epochs 2..n (1 epoch: after 50 warm-up steps); infer "
              "ex/s = test split at batch 1024 through the library's predict API / calling the model on "
              "pre-built batches; peak RSS = the process's max RSS. tfmtl's model call takes raw columns "
              "(vocabulary lookup inside the model); the peers' take pre-encoded ids. Wall s by phase: setup "
              "(imports, data, model), train (every epoch, graph building included), validation, test "
              "(predictions and AUCs), inference (the warm-up and timed inference passes).", "",
              f"Machine: {doc['machine']}", ""]
    for model in [m for m in MODELS if m in table]:
        libs = table[model]
        lines += [f"## {model}", "",
                  "| library | runs | AUC income_50k | AUC never_married | train ex/s | infer ex/s (predict) | "
                  "infer ex/s (model call) | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
        for lib in _lib_order(libs):
            t = libs[lib]
            lines.append(f"| {lib} | {len(t['seeds'])} | {_ms(t.get('auc_income_50k', []))} | "
                         f"{_ms(t.get('auc_never_married', []))} | {_ms(t['train_examples_per_s'], 0)} | "
                         f"{_ms(t['infer_examples_per_s'], 0)} | {_ms(t['infer_examples_per_s_model_call'], 0)} | "
                         f"{_ms(t['peak_rss_mib'], 0)} |")
        if any("auc_ctcvr" in t for t in libs.values()):
            lines.append("")
            lines.append("ctcvr AUC: " + ", ".join(f"{lib} {_ms(libs[lib].get('auc_ctcvr', []))}"
                                                  for lib in _lib_order(libs)))
        ratio_rows = []
        for ours in [x for x in ("tfmtl", "tfmtl-xla") if x in libs]:
            for peer in [p for p in PEER_LIBS if p in libs]:
                a, b = libs[ours], libs[peer]

                def ratio(key, digits=2, a=a, b=b):
                    if not a.get(key) or not b.get(key):
                        return "–"
                    return f"{np.mean(a[key]) / np.mean(b[key]):.{digits}f}"

                ratio_rows.append(f"| {ours} / {peer} | {ratio('auc_income_50k', 3)} | "
                                  f"{ratio('auc_never_married', 3)} | **{ratio('train_examples_per_s')}** | "
                                  f"{ratio('infer_examples_per_s')} | {ratio('infer_examples_per_s_model_call')} | "
                                  f"{ratio('peak_rss_mib')} |")
        if ratio_rows:
            lines += ["", "Ratios (mean / mean; > 1 = tfmtl higher; for RSS lower is better):", "",
                      "| ratio | AUC income_50k | AUC never_married | train ex/s | infer ex/s (predict) | "
                      "infer ex/s (model call) | peak RSS |", "|---|---|---|---|---|---|---|", *ratio_rows]
        lines.append("")
    notes_path = doc.get("notes_path")
    if notes_path and os.path.exists(notes_path):
        with open(notes_path) as f:
            lines += [f.read().rstrip(), ""]
    profile = doc.get("profile")
    if profile:
        lines += ["## Profile of tfmtl's MMoE training step", "",
                  f"`{profile.get('command', 'bench/peers/profile_tfmtl.py')}`: one process, "
                  f"{profile['rounds']} interleaved rounds x {profile['steps_per_round']} steps per variant, "
                  "median step time of `model.fit` (batch 256). vs base > 1 = faster than base.", "",
                  "| variant | median step ms | examples/s | vs base |", "|---|---|---|---|"]
        for name, v in profile["variants"].items():
            lines.append(f"| {name} | {v['median_step_ms']} | {v['examples_per_s_median']} | {v.get('vs_base', '')} |")
        for name, err in profile.get("errors", {}).items():
            lines.append(f"| {name} | failed: {err} | | |")
        lines += ["", "Outside fit (per batch of 256, ms per round): " + "; ".join(
            f"{k} {v['ms']}" for k, v in profile.get("outside_fit", {}).items()), ""]
        breakdown = profile.get("op_breakdown")
        if breakdown:
            by_kind = breakdown["ms_per_step_by_kind"]
            total = sum(by_kind.values())
            lines += [f"Op by op (TensorFlow profiler, {breakdown['steps']} steps of `base`; the ops' own times, "
                      "ms per step, profiler overhead included):", "",
                      "| kind | ms per step | share |", "|---|---|---|"]
            lines += [f"| {k} | {v:.1f} | {v / total:.0%} |" for k, v in by_kind.items()]
            lines += ["", "Top ops: " + "; ".join(f"`{k}` {v}" for k, v in
                                                  list(breakdown["top_ops_ms_per_step"].items())[:8]), ""]
    lines += ["## Per run", "", "| model | library | seed | epochs | best epoch | test AUC | epoch seconds | "
              "train ex/s | wall s | wall s by phase |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['library']} | {r['seed']} | | | FAILED | | | | |")
        else:
            phases = ", ".join(f"{k} {v:.0f}" for k, v in r.get("phase_seconds", {}).items())
            lines.append(f"| {r['model']} | {r['library']} | {r['seed']} | {r['epochs']} | {r['best_epoch']} | "
                         f"{r['test_auc']} | {r['epoch_seconds']} | {r['train_examples_per_s']} | {r['wall_s']} | "
                         f"{phases} |")
    return "\n".join(lines) + "\n"


def plot(doc, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarize(doc["runs"])
    models = [m for m in MODELS if m in table]
    if not models:
        return
    libs = _lib_order({lib for m in models for lib in table[m]})
    colors = {"tfmtl": "#1f77b4", "tfmtl-xla": "#6baed6", "deepctr": "#ff7f0e", "torch-rechub": "#2ca02c"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [("train_examples_per_s", "training examples/s (steady state)"),
              ("auc_income_50k", "test AUC income_50k"), ("auc_never_married", "test AUC never_married")]
    width = 0.8 / len(libs)
    x = np.arange(len(models))
    for ax, (key, title) in zip(axes, panels):
        lo = []
        for i, lib in enumerate(libs):
            vals = [table[m].get(lib, {}).get(key, []) for m in models]
            means = [np.mean(v) if v else np.nan for v in vals]
            errs = [np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals]
            lo += [m for m in means if not np.isnan(m)]
            ax.bar(x + (i - (len(libs) - 1) / 2) * width, means, width, yerr=errs, label=lib,
                   color=colors.get(lib))
        ax.set_xticks(x, models)
        ax.set_title(title)
        if key.startswith("auc") and lo:
            ax.set_ylim(min(lo) - 0.01, min(1.0, max(lo) + 0.005))
    axes[0].legend()
    fig.suptitle("Census-Income: tfmtl vs DeepCTR vs torch-rechub (see peers.md for what was run)", fontsize=10)
    fig.tight_layout()
    _report.save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_all(doc, prefix):
    doc["notes_path"] = prefix + ".notes.md"
    doc["written"] = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    _report.write_atomically(prefix + ".json", json.dumps(doc, indent=1) + "\n")
    _report.write_atomically(prefix + ".md", markdown(doc))
    try:
        plot(doc, prefix + ".png")
    except Exception as e:  # the JSON and the table matter more than the figure
        print(f"plot failed: {e!r}", file=sys.stderr)


def machine():
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return (f"{os.cpu_count()} CPUs, load average at start {tuple(round(x, 1) for x in load) if load else '?'} "
            "(shared with other jobs; absolute rates are low and noisy, ratios from interleaved runs are the "
            "figure to read)")


def main(argv=None):
    args = parse_args(argv)
    prefix = args.out_prefix
    doc = {"runs": [], "invocations": []}
    if (args.append or args.report_only) and os.path.exists(prefix + ".json"):
        with open(prefix + ".json") as f:
            old = json.load(f)
        doc["runs"], doc["invocations"] = old.get("runs", []), old.get("invocations", [])
        doc["machine"] = old.get("machine", "")
    if args.report_only:
        if os.path.exists(prefix + ".profile.json"):
            with open(prefix + ".profile.json") as f:
                doc["profile"] = json.load(f)
        write_all(doc, prefix)
        return 0
    argv_shown = sys.argv[1:] if argv is None else argv
    doc["invocations"].append({"command": rel([os.path.join(REPO, ".venv", "bin", "python"),
                                               "-m", "bench.peers", *argv_shown]),
                               "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")})
    doc["machine"] = machine()
    if os.path.exists(prefix + ".profile.json"):
        with open(prefix + ".profile.json") as f:
            doc["profile"] = json.load(f)
    deadline = None
    if args.deadline:
        h, m = (int(x) for x in args.deadline.split(":"))
        deadline = dt.datetime.now().replace(hour=h, minute=m, second=0, microsecond=0)
    log_path = prefix + ".log"
    todo = plan(args.models, args.seeds, args.libs)
    print(f"{len(todo)} runs: {todo}", flush=True)
    for i, (model, seed, lib) in enumerate(todo):
        if deadline and dt.datetime.now() >= deadline:
            print(f"deadline {args.deadline} reached: {len(todo) - i} runs not started", flush=True)
            doc["invocations"][-1]["skipped_after_deadline"] = [list(t) for t in todo[i:]]
            break
        cmd = command(args, model, seed, lib)
        print(f"[{i + 1}/{len(todo)}] {dt.datetime.now():%H:%M:%S} {rel(cmd)}", flush=True)
        t0 = time.perf_counter()
        result, out = None, ""
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout)
            out, rc = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
        for line in out.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        with open(log_path, "a") as f:
            f.write(f"===== {dt.datetime.now():%H:%M:%S} rc={rc} {rel(cmd)}\n")
            f.write("\n".join(line for line in out.splitlines()
                              if "WARNING" not in line and "cuda" not in line.lower()) + "\n")
        if result is None:
            tail = " | ".join(out.strip().splitlines()[-3:])[-400:]
            result = {"library": lib, "model": model, "seed": seed, "epochs": args.epochs,
                      "error": f"rc={rc}: {tail}"}
        else:
            result["library"] = lib  # tfmtl-xla etc.
        result["command"] = rel(cmd)
        doc["runs"].append(result)
        write_all(doc, prefix)
        msg = result.get("error") or (f"train {result['train_examples_per_s']} ex/s, AUC {result['test_auc']}, "
                                      f"infer {result['infer_examples_per_s']} ex/s")
        print(f"    {time.perf_counter() - t0:.0f} s: {msg}", flush=True)
    write_all(doc, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
