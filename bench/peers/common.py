"""Shared plumbing of the peer runners (run_deepctr.py, run_rechub.py).

Stand-alone (stdlib, numpy, scikit-learn): imported inside the peer
virtualenvs. ``pin_threads`` must run before tensorflow or torch is imported.

Measurement rules, the same for every library:

* threads: the process is pinned with ``sched_setaffinity`` to ``--cpus``
  (default ``0,1``), intra-op threads = ``--threads`` (default 2), inter-op
  threads = ``--inter-op-threads`` (default 1); the same numbers go to
  OMP/MKL env vars, TF's ``tf.config.threading`` and torch's
  ``set_num_threads``/``set_num_interop_threads``.
* one model per process (``--model all`` runs each model in a child process),
  so ``peak_rss_mib`` (``getrusage(RUSAGE_SELF).ru_maxrss``) is that model's
  own peak, data loading included.
* training examples/s: with 2+ epochs, training examples of epochs 2..n over
  the wall time of those epochs' training passes (validation excluded); with
  1 epoch, the steps after the first ``--warmup-steps`` of epoch 1.
* best epoch: highest mean validation AUC of the two tasks; its weights give
  the test AUCs (sklearn ``roc_auc_score``).
* inference examples/s at ``--infer-batch`` (1024) over the test split, after
  one warm-up pass: ``infer_examples_per_s`` through the library's own predict
  path, ``infer_examples_per_s_model_call`` calling the model on pre-built
  batches (no input pipeline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

MODELS = ("shared_bottom", "mmoe", "ple", "esmm")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # child runs start here (-m)


def parse_units(text: str) -> tuple[int, ...]:
    return tuple(int(u) for u in text.split(",") if u.strip())


def base_parser(description: str, data_args) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="all", help=f"one of {', '.join(MODELS)}, a comma list, or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embedding-dim", type=int, default=4)
    p.add_argument("--expert-units", type=parse_units, default=(512, 256),
                   help="units of the shared bottom / each expert / (ESMM) the first layers of each tower")
    p.add_argument("--tower-units", type=parse_units, default=(128,))
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True,
                   help="batch norm in the MLPs (torch-rechub's MLP always has it; DeepCTR: dnn_use_bn)")
    p.add_argument("--mmoe-experts", type=int, default=8)
    p.add_argument("--ple-levels", type=int, default=1)
    p.add_argument("--ple-specific", type=int, default=4, help="task-specific experts per task")
    p.add_argument("--ple-shared", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads")
    p.add_argument("--inter-op-threads", type=int, default=1)
    p.add_argument("--omp-wait-policy", choices=("ACTIVE", "PASSIVE"), default=None,
                   help="set OMP_WAIT_POLICY (torch's OpenMP pool; unset = library default). PASSIVE avoids "
                        "torch's collapse when other processes compete for the cores")
    p.add_argument("--cpus", default="0,1", help="CPU ids the process is pinned to ('' = no pinning)")
    p.add_argument("--infer-batch", type=int, default=1024)
    p.add_argument("--warmup-steps", type=int, default=50,
                   help="steps of epoch 1 left out of the training rate when --epochs 1")
    p.add_argument("--out", default=None, help="append each result as one JSON line to this file")
    data_args(p)
    return p


def selected_models(spec: str, available=MODELS) -> list[str]:
    names = list(available) if spec == "all" else [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {MODELS}")
    return names


def run_children(module: str, models: list[str]) -> int:
    """Re-runs ``python -m module`` from the repository root once per model (fresh process: own peak RSS, graph)."""
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--model":
            skip = True
            continue
        if a.startswith("--model="):
            continue
        argv.append(a)
    failed = []
    for m in models:
        rc = subprocess.call([sys.executable, "-m", module, *argv, "--model", m], cwd=REPO)
        if rc != 0:
            failed.append((m, rc))
    if failed:
        print(f"failed runs: {failed}", file=sys.stderr)
    return 1 if failed else 0


def pin_threads(args) -> dict:
    """Affinity + thread env vars; call before importing tensorflow / torch."""
    cpus = sorted(int(c) for c in args.cpus.split(",") if c.strip()) if args.cpus else []
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(args.inter_op_threads)
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    return {"intra_op": args.threads, "inter_op": args.inter_op_threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # ru_maxrss is KiB on Linux


def aucs(labels: np.ndarray, preds: dict[str, np.ndarray], tasks) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {t: round(float(roc_auc_score(labels[:, i], preds[t])), 6) for i, t in enumerate(tasks)}


class StepClock:
    """Timestamps of training steps: ``tick()`` after each step."""

    def __init__(self):
        self.epoch_steps: list[list[float]] = []

    def start_epoch(self):
        self.epoch_steps.append([time.perf_counter()])

    def tick(self):
        self.epoch_steps[-1].append(time.perf_counter())


class Phases:
    """Wall seconds per phase of a run: ``mark(name)`` adds the time since the previous mark to ``name``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 2)
        self._last = now


class BestEpoch:
    """Validation AUCs per epoch and a snapshot of the best epoch's weights (by mean AUC over the tasks)."""

    def __init__(self):
        self.history: list[dict[str, float]] = []
        self.score, self.epoch, self.weights = -1.0, None, None

    def record(self, val: dict[str, float], snapshot) -> None:
        """``val``: this epoch's AUCs; ``snapshot()`` copies the weights, called only when the epoch is best."""
        self.history.append(val)
        score = float(np.mean(list(val.values())))
        if score > self.score:
            self.score, self.epoch, self.weights = score, len(self.history), snapshot()


def keras_epoch_timer(keras, clock: StepClock, epoch_seconds: list[float], after_epoch=None):
    """A Keras callback: ``clock`` ticks every batch, each epoch's wall time goes to ``epoch_seconds``,
    then ``after_epoch(epoch, logs)`` runs (outside the timed span). ``keras`` is the caller's tf_keras
    module: this file imports no framework."""

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.start_epoch()
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            clock.tick()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.t0)
            if after_epoch is not None:
                after_epoch(epoch, logs or {})

    return EpochTimer()


def run_main(module: str, run_one, args) -> None:
    """Each selected model in its own child process, or the one model here; prints/appends its result."""
    models = selected_models(args.model)
    if len(models) > 1:
        sys.exit(run_children(module, models))
    threads = pin_threads(args)
    emit(run_one(models[0], args, threads), args.out)


def train_rate(epoch_seconds: list[float], n_train: int, clock: StepClock, batch_size: int,
               warmup_steps: int) -> tuple[float, str]:
    if len(epoch_seconds) >= 2:
        return n_train * (len(epoch_seconds) - 1) / sum(epoch_seconds[1:]), f"epochs 2..{len(epoch_seconds)}"
    ticks = clock.epoch_steps[0]
    steps = len(ticks) - 1
    skip = min(warmup_steps, steps // 2)
    # Every step after the warm-up is full except possibly the last one.
    examples = min(n_train - skip * batch_size, (steps - skip) * batch_size)
    return examples / (ticks[-1] - ticks[skip]), f"epoch 1 after {skip} warm-up steps"


def emit(result: dict, out: str | None) -> None:
    result.setdefault("python", platform.python_version())
    line = json.dumps(result, sort_keys=False)
    print("RESULT " + line, flush=True)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "a") as f:
            f.write(line + "\n")
