"""How long each TFX pipeline component takes, and how much memory, as the census data grows.

For each scale k (default 1, 2 and 4) the census train and test files are replicated k
times and the whole pipeline runs once through the CLI (no cache, a fresh run
directory). Per component: wall time (from ML Metadata) and the peak resident memory of
the whole process tree (the CLI and its Beam workers) while it ran, sampled every
0.2 s. Results: ``bench/results/pipeline.{json,md}``.

Full run (the lead schedules it; hours on 2 cores):
    nice -n 5 .venv/bin/python -m bench.pipeline
Quick check on a slice:
    .venv/bin/python -m bench.pipeline --rows 500 --scales 1,2 --out /tmp/pipeline_bench
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from bench import _report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CENSUS = os.path.join(REPO, "tfmtl", "datasets", "data", "census")
RESULTS = os.path.join(REPO, "bench", "results", "pipeline")
_PROGRESS = re.compile(r"\[\s*([\d.]+) s\] (\S+)\s+(running|done|cached)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, help="first N rows of each census file (default: all)")
    parser.add_argument("--scales", default="1,2,4", help="replication factors, comma-separated")
    parser.add_argument("--model", default="mmoe")
    parser.add_argument("--model-kwargs", default="{}")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--beam-mode", default="multi_processing")
    parser.add_argument("--work-dir", help="where data and runs go (default: a temporary directory)")
    parser.add_argument("--out", default=RESULTS, help="results path without extension")
    args = parser.parse_args(argv)

    work = args.work_dir or tempfile.mkdtemp(prefix="tfmtl-pipeline-bench-")
    results = {"command": "python -m bench.pipeline " + shlex.join(sys.argv[1:] if argv is None else argv),
               "config": {**vars(args), "cpus": os.cpu_count(), "machine": platform.machine(),
                          "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}, "runs": []}
    for scale in [int(s) for s in args.scales.split(",")]:
        data = os.path.join(work, f"data-x{scale}")
        rows = replicate(data, scale, args.rows)
        run = run_pipeline(data, os.path.join(work, f"run-x{scale}"), args)
        run.update(scale=scale, train_rows=rows["train"], eval_rows=rows["test"])
        results["runs"].append(run)
        print(f"x{scale}: {run['total_seconds']:.1f} s, peak {run['peak_rss_mb']:.0f} MB", flush=True)
        write(results, args.out)  # after every scale: a long run leaves partial results
    return 0


def replicate(directory: str, scale: int, rows: int | None) -> dict[str, int]:
    """``train.csv`` and ``test.csv``: the census files (or their first ``rows``) ``scale`` times over."""
    os.makedirs(directory, exist_ok=True)
    counts = {}
    for name in ("train", "test"):
        with gzip.open(os.path.join(CENSUS, f"{name}.csv.gz"), "rt") as f:
            header = f.readline()
            body = [line for _, line in zip(range(rows), f)] if rows else f.readlines()
        with open(os.path.join(directory, f"{name}.csv"), "w") as f:
            f.write(header)
            for _ in range(scale):
                f.writelines(body)
        counts[name] = len(body) * scale
    return counts


def run_pipeline(data: str, run_dir: str, args) -> dict:
    summary_path = os.path.join(run_dir + "-summary.json")
    command = [sys.executable, "-m", "pipeline", "run", "--data", data, "--run-dir", run_dir, "--no-cache",
               "--model", args.model, "--model-kwargs", args.model_kwargs, "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--beam-mode", args.beam_mode, "--json", summary_path]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sampler = _MemorySampler(process.pid)
    sampler.start()
    lines = [line.rstrip() for line in process.stdout]
    process.wait()
    sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"pipeline failed ({process.returncode}):\n" + "\n".join(lines[-30:]))
    with open(summary_path) as f:
        summary = json.load(f)
    spans = _component_spans(lines, sampler.start_time)
    components = {}
    for component in summary["components"]:
        span = spans.get(component["component"])
        components[component["component"]] = {
            "seconds": round(component["seconds"], 2), "state": component["state"],
            "peak_rss_mb": round(sampler.peak(*span) / 2**20, 1) if span else None}
    return {"components": components, "total_seconds": round(sum(c["seconds"] for c in components.values()), 1),
            "wall_seconds": round(sampler.stop_time - sampler.start_time, 1),
            "peak_rss_mb": round(sampler.peak() / 2**20, 1),
            "auc": {k: round(v["auc"], 4) for k, v in summary["metrics"].items()}}


class _MemorySampler(threading.Thread):
    """Resident memory of a process and all its children, every 0.2 s."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self._root, self._interval = psutil.Process(pid), interval
        self._samples: list[tuple[float, int]] = []
        self._done = threading.Event()
        self.start_time = self.stop_time = time.monotonic()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                processes = [self._root, *self._root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in processes if p.is_running())
                self._samples.append((time.monotonic(), rss))
            except psutil.Error:
                pass
            self._done.wait(self._interval)

    def stop(self) -> None:
        self.stop_time = time.monotonic()
        self._done.set()
        self.join()

    def peak(self, start: float | None = None, end: float | None = None) -> int:
        values = [rss for t, rss in self._samples if (start is None or t >= start) and (end is None or t <= end)]
        return max(values, default=0)


def _component_spans(lines: list[str], start: float) -> dict[str, tuple[float, float]]:
    """Monotonic (start, end) of each component from the CLI's progress lines (offsets from its start)."""
    begun, spans = {}, {}
    for line in lines:
        match = _PROGRESS.search(line)
        if not match:
            continue
        offset, node, state = float(match[1]), match[2], match[3]
        if state == "running":
            begun[node] = offset
        elif node in begun:
            spans[node] = (start + begun[node], start + offset + 0.5)
    return spans


def write(results: dict, out: str) -> None:
    """``<out>.json`` and ``<out>.md``, each through a temporary file and a rename."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for path, text in ((out + ".json", json.dumps(results, indent=1)), (out + ".md", markdown(results))):
        _report.write_atomically(path, text)


def markdown(results: dict) -> str:
    config, runs = results["config"], results["runs"]
    names = list(dict.fromkeys(name for run in runs for name in run["components"]))
    header = "| component | " + " | ".join(f"x{r['scale']} s | x{r['scale']} peak MB" for r in runs) + " |"
    lines = [
        "# TFX pipeline: time and memory per component",
        "",
        f"Census data replicated x{', x'.join(str(r['scale']) for r in runs)}; model {config['model']}, "
        f"{config['epochs']} epoch(s), batch {config['batch_size']}; Beam DirectRunner {config['beam_mode']}; "
        f"{config['cpus']} CPUs, {config['memory_gb']} GB. Peak memory: the whole process tree "
        "(CLI and Beam workers) while the component ran.",
        "",
        f"Command: `{results.get('command', 'bench/pipeline.py')}`",
        *(["", results["note"]] if results.get("note") else []),
        "",
        "| scale | train rows | eval rows | total s | wall s | peak MB | AUC |",
        "|---|---|---|---|---|---|---|",
        *(f"| x{r['scale']} | {r['train_rows']} | {r['eval_rows']} | {r['total_seconds']} | {r['wall_seconds']} | "
          f"{r['peak_rss_mb']} | {', '.join(f'{k} {v}' for k, v in r['auc'].items())} |" for r in runs),
        "",
        header,
        "|---|" + "---|---|" * len(runs),
    ]
    for name in names:
        cells = []
        for run in runs:
            component = run["components"].get(name, {})
            cells += [str(component.get("seconds", "")), str(component.get("peak_rss_mb") or "")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
