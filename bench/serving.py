"""REST serving overhead: the ``serving/`` server vs an in-process SavedModel call (issue #5, part 4).

    nice -n 5 .venv/bin/python bench/serving.py                                  # the real run (~20 min)
    nice -n 5 .venv/bin/python bench/serving.py --soak-seconds 30 --cell-seconds 2 --rows 3000   # smoke run

Trains a census MMoE briefly (8 experts of [512, 256]; latency depends on the
architecture, not on how well it is trained), exports it with
``tfmtl.export.export_saved_model`` and starts two servers on 127.0.0.1 (free
ports, ``python -m serving ... --rest_api_port 0``): one plain, one with
``--enable_batching``. For every batch size x concurrency cell it then runs, in
alternating short slices so all three see the same background load:

- ``in_process``: ``tf.saved_model.load`` + ``serving_default`` called from
  ``concurrency`` threads (numpy in, numpy out, as the server's own call);
- ``rest`` / ``rest_batching``: ``concurrency`` threads POSTing the same rows as a
  pre-encoded ``:predict`` body over keep-alive httpx connections.

Each slice stops after ``--cell-requests / --rounds`` requests or
``--cell-seconds / --rounds`` seconds, whichever comes first. The overhead ratio
of a cell is server p50 / in-process p50 (and in-process req/s / server req/s).
Then a soak (``--soak-seconds``, default 600) loads both servers with mixed batch
sizes while sampling their RSS. Client, servers and in-process calls share the
machine's CPUs. Writes ``bench/results/serving.{json,md,png}`` (temp file, then rename).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RESULTS = os.path.join(ROOT, "bench", "results")
MODEL_NAME = "census"
MODES = ("in_process", "rest", "rest_batching")
SERVER_MODES = ("rest", "rest_batching")
LABELS = {"in_process": "in-process", "rest": "REST", "rest_batching": "REST + batching"}
BATCHING_TEMPLATE = """max_batch_size {{ value: {max_batch_size} }}
batch_timeout_micros {{ value: {batch_timeout_micros} }}
max_enqueued_batches {{ value: {max_enqueued_batches} }}
num_batch_threads {{ value: {num_batch_threads} }}
"""
PORT_LINE = re.compile(r"REST API at http://([^/\s]+):(\d+)/")
BATCH_METRIC = re.compile(r'^tfmtl_serving_batch_size_(sum|count)\{model="' + MODEL_NAME + r'"\} (\S+)$', re.M)

Call = Callable[[], "str | None"]  # one request; None on success, else an error label


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=20000, help="census rows to load and train 1 epoch on")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--cell-seconds", type=float, default=8.0, help="time bound per mode per cell (all rounds)")
    p.add_argument("--cell-requests", type=int, default=2000, help="request bound per mode per cell (all rounds)")
    p.add_argument("--rounds", type=int, default=2, help="alternating slices per mode per cell")
    p.add_argument("--format", choices=["row", "columnar"], default="row",
                   help="predict body: row ('instances') or columnar ('inputs')")
    p.add_argument("--max-batch-size", type=int, default=512, help="server batching max_batch_size")
    p.add_argument("--batch-timeout-micros", type=int, default=2000, help="server batching batch_timeout_micros")
    p.add_argument("--num-batch-threads", type=int, default=2, help="server batching num_batch_threads")
    p.add_argument("--max-enqueued-batches", type=int, default=100, help="server batching max_enqueued_batches")
    p.add_argument("--soak-seconds", type=float, default=600.0, help="soak duration (the issue asks for 10 min)")
    p.add_argument("--soak-concurrency", type=int, default=8, help="client threads during the soak")
    p.add_argument("--soak-requests", type=int, default=1_000_000, help="request bound of the soak")
    p.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for a server to serve")
    p.add_argument("--request-timeout", type=float, default=120.0, help="httpx timeout per request")
    p.add_argument("--out", default=os.path.join(RESULTS, "serving"), help="output path without extension")
    p.add_argument("--keep-export", action="store_true", help="keep the temporary export directory")
    return p.parse_args(argv)


def command_line() -> str:
    """The command as typed from the repository root (with ``nice -n`` when the process is niced)."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    return prefix + shlex.join([python, script, *sys.argv[1:]])


# --------------------------------------------------------------------------- model


def train_and_export(rows: int, export_base: str) -> tuple[str, dict[str, np.ndarray], dict]:
    """Train the census MMoE for one epoch, export it; returns (version dir, test feature arrays, info)."""
    from tfmtl.compat import keras
    from tfmtl.datasets import census
    from tfmtl.export import export_saved_model
    from tfmtl.models import MMoE

    keras.utils.set_random_seed(0)
    splits = census.load_census(nrows=rows)
    model = MMoE(splits.spec, num_experts=8, expert_units=[512, 256])
    model.compile()
    started = time.perf_counter()
    model.fit(splits.train, epochs=1, verbose=0)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    path = export_saved_model(model, export_base, MODEL_NAME)
    export_s = time.perf_counter() - started
    info = {"architecture": "MMoE(num_experts=8, expert_units=[512, 256])", "train_rows": len(splits.train),
            "epochs": 1, "parameters": int(model.count_params()), "features": len(splits.spec.features),
            "fit_s": round(fit_s, 1), "export_s": round(export_s, 1), "saved_model_mb": round(_du(path) / 2**20, 2)}
    arrays = splits.spec.feature_arrays(splits.test.head(max(256, 1)))
    return path, arrays, info


def _du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def batch_arrays(arrays: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` rows (the test head repeated if it is shorter)."""
    reps = math.ceil(batch / len(next(iter(arrays.values()))))
    return {k: np.tile(v, reps)[:batch] for k, v in arrays.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else 0.0  # the JSON API refuses NaN
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def request_body(arrays: dict[str, np.ndarray], body_format: str) -> bytes:
    """A ``:predict`` body for these rows, encoded once (the client does not re-encode per request)."""
    if body_format == "columnar":
        payload: dict[str, Any] = {"inputs": {k: [_jsonable(x) for x in v] for k, v in arrays.items()}}
    else:
        size = len(next(iter(arrays.values())))
        payload = {"instances": [{k: _jsonable(v[i]) for k, v in arrays.items()} for i in range(size)]}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A ``python -m serving`` subprocess and an httpx client for it."""

    mode: str
    process: subprocess.Popen
    log_path: str
    url: str = ""
    client: httpx.Client | None = None
    stats: dict = field(default_factory=dict)

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def write_batching_file(path: str, args: argparse.Namespace) -> str:
    text = BATCHING_TEMPLATE.format(max_batch_size=args.max_batch_size,
                                    batch_timeout_micros=args.batch_timeout_micros,
                                    max_enqueued_batches=args.max_enqueued_batches,
                                    num_batch_threads=args.num_batch_threads)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


def start_server(mode: str, model_dir: str, workdir: str, batching_file: str | None) -> Server:
    """Launch a server on 127.0.0.1, port 0 (it logs the port it got); does not wait for the model."""
    cmd = [sys.executable, "-m", "serving", "--model_name", MODEL_NAME, "--model_base_path", model_dir,
           "--rest_api_host", "127.0.0.1", "--rest_api_port", "0"]
    if batching_file:
        cmd += ["--enable_batching", "--batching_parameters_file", batching_file]
    log_path = os.path.join(workdir, f"{mode}.log")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(mode, process, log_path, stats={"command": shlex.join(cmd[1:])})


def wait_until_serving(server: Server, timeout: float, request_timeout: float) -> None:
    """Find the port in the log, then poll the status API until the model is AVAILABLE."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while not server.url:
        _check_alive(server, deadline)
        with open(server.log_path, encoding="utf-8", errors="replace") as f:
            match = PORT_LINE.search(f.read())
        if match:
            server.url = f"http://{match.group(1)}:{match.group(2)}"
        else:
            time.sleep(0.5)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    server.client = httpx.Client(base_url=server.url, timeout=request_timeout, limits=limits)
    while not _available(server):
        _check_alive(server, deadline)
        time.sleep(0.5)
    server.stats["startup_s"] = round(time.monotonic() - started, 1)
    server.stats["rss_mb_started"] = round(server.rss_mb(), 1)


def _check_alive(server: Server, deadline: float) -> None:
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.mode} server exited with {server.process.returncode}:\n{server.log_tail()}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"{server.mode} server did not serve in time:\n{server.log_tail()}")


def _available(server: Server) -> bool:
    try:
        response = server.client.get(f"/v1/models/{MODEL_NAME}", timeout=5.0)
    except httpx.TransportError:
        return False
    states = [v.get("state") for v in response.json().get("model_version_status", [])] if response.is_success else []
    return "AVAILABLE" in states


def batch_metric(server: Server) -> tuple[float, float]:
    """(rows, model calls) the server's batcher has run so far, from its Prometheus metrics."""
    text = server.client.get("/monitoring/prometheus/metrics", timeout=10.0).text
    values = {kind: float(value) for kind, value in BATCH_METRIC.findall(text)}
    return values.get("sum", 0.0), values.get("count", 0.0)


def stop_server(server: Server, timeout: float = 90.0) -> None:
    """SIGTERM, wait for the graceful shutdown (SIGKILL past ``timeout``); record how it went."""
    if server.client is not None:
        server.client.close()
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.stats["exit_code"] = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.stats["exit_code"] = f"killed after {timeout:.0f}s: {server.process.wait(10)}"
    server.stats["shutdown_s"] = round(time.monotonic() - started, 1)
    with open(server.log_path, encoding="utf-8", errors="replace") as f:
        notable = [line.rstrip() for line in f if re.search(r"WARNING|ERROR|Traceback|Exception", line)]
    server.stats["log_notable"] = notable[:40]
    server.stats["log_notable_total"] = len(notable)
    server.stats["log_tail"] = server.log_tail(6).splitlines()


# --------------------------------------------------------------------------- load generation


@dataclass
class LoadResult:
    """Latencies of the successful requests (seconds, with their finish offset), errors by label."""

    samples: list[tuple[float, float]]
    elapsed: float
    errors: dict[str, int]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def latencies(self) -> np.ndarray:
        return np.array([s[1] for s in self.samples])


class _Budget:
    """Hands out at most ``count`` request tickets until ``deadline`` (perf_counter)."""

    def __init__(self, count: int, deadline: float):
        self._left = count
        self._deadline = deadline
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0 or time.perf_counter() >= self._deadline:
                return False
            self._left -= 1
            return True


def run_load(call: Call, concurrency: int, max_requests: int, max_seconds: float) -> LoadResult:
    """``concurrency`` threads issue ``call`` back to back until either bound is reached."""
    start = time.perf_counter()
    budget = _Budget(max_requests, start + max_seconds)
    samples: list[tuple[float, float]] = []
    errors: Counter = Counter()
    lock = threading.Lock()

    def worker() -> None:
        while budget.take():
            t0 = time.perf_counter()
            error = call()
            t1 = time.perf_counter()
            with lock:
                if error is None:
                    samples.append((t1 - start, t1 - t0))
                else:
                    errors[error] += 1

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return LoadResult(samples, time.perf_counter() - start, dict(errors))


def in_process_call(fn: Any, arrays: dict[str, np.ndarray]) -> Call:
    """The signature called as the server calls it: numpy -> tensors -> signature -> numpy."""
    def call() -> str | None:
        return None if call_signature(fn, arrays) else "empty"

    return call


def call_signature(fn: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convert to the signature's dtypes, call it, return numpy outputs (what ``Signature.run`` does)."""
    import tensorflow as tf

    dtypes = fn.structured_input_signature[1]
    feeds = {k: tf.convert_to_tensor(v, dtype=dtypes[k].dtype) for k, v in arrays.items()}
    return {k: v.numpy() for k, v in fn(**feeds).items()}


def http_call(client: httpx.Client, body: bytes) -> Call:
    """One POST of a pre-encoded ``:predict`` body; no retries (a 429 counts as an error)."""
    path = f"/v1/models/{MODEL_NAME}:predict"
    headers = {"Content-Type": "application/json"}

    def call() -> str | None:
        try:
            response = client.post(path, content=body, headers=headers)
        except httpx.HTTPError as e:
            return type(e).__name__
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    return call


@contextlib.contextmanager
def cpu_meter(result_cpu: dict[str, float], processes: dict[str, psutil.Process]) -> Iterator[None]:
    """Adds each process's user+system CPU seconds spent inside the block to ``result_cpu``."""
    def seconds(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    before = {name: seconds(p) for name, p in processes.items()}
    yield
    for name, p in processes.items():
        result_cpu[name] = result_cpu.get(name, 0.0) + seconds(p) - before[name]


# --------------------------------------------------------------------------- the matrix


@dataclass
class ModeWork:
    """What one mode runs in a cell and whose CPU time counts for it."""

    call: Call
    processes: dict[str, psutil.Process]
    server: Server | None = None


def merge(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult([], 0.0, {})
    offset = 0.0
    for r in results:
        merged.samples += [(t + offset, dt) for t, dt in r.samples]
        offset += r.elapsed
        merged.elapsed += r.elapsed
        merged.errors = dict(Counter(merged.errors) + Counter(r.errors))
        for k, v in r.cpu.items():
            merged.cpu[k] = merged.cpu.get(k, 0.0) + v
    return merged


def summarize(result: LoadResult, batch: int, batch_rows: tuple[float, float] | None = None) -> dict:
    """Latency percentiles (ms), throughput and CPU per request of one mode in one cell."""
    lat = result.latencies * 1000
    n = len(lat)
    out: dict[str, Any] = {"n": n, "errors": result.errors, "elapsed_s": round(result.elapsed, 2)}
    if n:
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        out.update(p50_ms=round(float(p50), 3), p90_ms=round(float(p90), 3), p99_ms=round(float(p99), 3),
                   mean_ms=round(float(lat.mean()), 3), max_ms=round(float(lat.max()), 3),
                   rps=round(n / result.elapsed, 2), rows_per_s=round(n * batch / result.elapsed, 1))
        out["cpu_ms_per_request"] = {k: round(v * 1000 / n, 3) for k, v in result.cpu.items()}
    if batch_rows is not None and batch_rows[1] > 0:
        out["server_model_calls"] = int(batch_rows[1])
        out["mean_rows_per_model_call"] = round(batch_rows[0] / batch_rows[1], 1)
    return out


def ratios(in_process: dict, server: dict) -> dict:
    """Server vs in-process: latency ratios (>1: slower), throughput ratio (>1: fewer req/s), added ms."""
    if not in_process.get("n") or not server.get("n"):
        return {}
    return {"p50": round(server["p50_ms"] / in_process["p50_ms"], 2),
            "p99": round(server["p99_ms"] / in_process["p99_ms"], 2),
            "throughput": round(in_process["rps"] / server["rps"], 2),
            "added_p50_ms": round(server["p50_ms"] - in_process["p50_ms"], 2)}


def warm(works: dict[str, ModeWork], requests: int = 3) -> None:
    """A few untimed calls per mode (a new batch size; first connections)."""
    for work in works.values():
        run_load(work.call, 1, requests, 60.0)


def bench_cell(works: dict[str, ModeWork], batch: int, concurrency: int, args: argparse.Namespace) -> dict:
    """One (batch, concurrency) cell: every mode in ``args.rounds`` alternating slices."""
    per_slice_requests = max(1, args.cell_requests // args.rounds)
    per_slice_seconds = args.cell_seconds / args.rounds
    parts: dict[str, list[LoadResult]] = {mode: [] for mode in works}
    rows: dict[str, list[float]] = {mode: [0.0, 0.0] for mode in works}
    for _ in range(args.rounds):
        for mode, work in works.items():
            before = batch_metric(work.server) if work.server else (0.0, 0.0)
            cpu: dict[str, float] = {}
            with cpu_meter(cpu, work.processes):
                result = run_load(work.call, concurrency, per_slice_requests, per_slice_seconds)
            result.cpu = cpu
            parts[mode].append(result)
            after = batch_metric(work.server) if work.server else (0.0, 0.0)
            rows[mode] = [rows[mode][0] + after[0] - before[0], rows[mode][1] + after[1] - before[1]]
    modes = {mode: summarize(merge(parts[mode]), batch, tuple(rows[mode]) if works[mode].server else None)
             for mode in works}
    cell = {"batch": batch, "concurrency": concurrency, "modes": modes,
            "ratios": {m: ratios(modes["in_process"], modes[m]) for m in SERVER_MODES if m in modes}}
    _print_cell(cell)
    return cell


def _print_cell(cell: dict) -> None:
    text = "  ".join(f"{m}: p50 {s.get('p50_ms', float('nan')):.1f} p99 {s.get('p99_ms', float('nan')):.1f} ms "
                     f"{s.get('rps', 0):.1f}/s n={s['n']}" + (f" err={s['errors']}" if s["errors"] else "")
                     for m, s in cell["modes"].items())
    print(f"[cell] batch={cell['batch']:>3} conc={cell['concurrency']:>2}  {text}", flush=True)


def run_matrix(servers: dict[str, Server], fn: Any, arrays: dict[str, np.ndarray],
               args: argparse.Namespace) -> list[dict]:
    me = psutil.Process()
    cells = []
    for batch in args.batches:
        rows = batch_arrays(arrays, batch)
        body = request_body(rows, args.format)
        works = {"in_process": ModeWork(in_process_call(fn, rows), {"self": me})}
        for mode, server in servers.items():
            works[mode] = ModeWork(http_call(server.client, body), {"server": server.ps, "client": me}, server)
        warm(works)
        for concurrency in args.concurrency:
            cells.append(bench_cell(works, batch, concurrency, args))
    return cells


def check_outputs(servers: dict[str, Server], fn: Any, arrays: dict[str, np.ndarray]) -> dict:
    """Max |server - in-process| per output for one 32-row request, via serving.client."""
    from serving.client import ServingClient

    rows = batch_arrays(arrays, 32)
    instances = json.loads(request_body(rows, "row"))["instances"]
    local = call_signature(fn, rows)
    out = {}
    for mode, server in servers.items():
        with ServingClient(server.url, timeout=60.0, max_retries=0) as client:
            predictions = client.predict(MODEL_NAME, instances)
        out[mode] = {k: float(np.max(np.abs(np.array([p[k] for p in predictions]) - local[k]))) for k in local}
    return out


# --------------------------------------------------------------------------- soak


def soak(servers: dict[str, Server], arrays: dict[str, np.ndarray], args: argparse.Namespace) -> dict:
    """Both servers under mixed-batch load for ``--soak-seconds``, RSS sampled along the way."""
    bodies = [request_body(batch_arrays(arrays, b), args.format) for b in args.batches]
    targets = [(mode, http_call(server.client, body)) for mode, server in servers.items() for body in bodies]
    ticket = itertools.count()
    per_mode: dict[str, Counter] = {mode: Counter() for mode in servers}
    lock = threading.Lock()

    def call() -> str | None:
        with lock:
            mode, request = targets[next(ticket) % len(targets)]
        error = request()
        with lock:
            per_mode[mode]["errors" if error else "ok"] += 1
        return error

    gc.collect()
    before = {mode: round(s.rss_mb(), 1) for mode, s in servers.items()}
    holder: dict[str, LoadResult] = {}
    worker = threading.Thread(target=lambda: holder.update(r=run_load(
        call, args.soak_concurrency, args.soak_requests, args.soak_seconds)))
    started = time.perf_counter()
    worker.start()
    samples = sample_rss(servers, worker, started, interval=max(1.0, args.soak_seconds / 30))
    worker.join()
    time.sleep(2.0)
    after = {mode: round(s.rss_mb(), 1) for mode, s in servers.items()}
    result = holder["r"]
    return {"seconds": args.soak_seconds, "elapsed_s": round(result.elapsed, 1), "concurrency": args.soak_concurrency,
            "mix": f"round robin over servers x batch {args.batches}", "requests": dict(per_mode),
            "errors": result.errors, "rss_mb_before": before, "rss_mb_after": after,
            "rss_mb_max": {m: max(s[m] for s in samples) for m in servers} if samples else {},
            "rss_samples": samples, "latency_drift": latency_drift(result)}


def sample_rss(servers: dict[str, Server], worker: threading.Thread, started: float, interval: float) -> list[dict]:
    samples = []
    while worker.is_alive():
        samples.append({"t_s": round(time.perf_counter() - started, 1),
                        **{mode: round(s.rss_mb(), 1) for mode, s in servers.items()}})
        worker.join(interval)
    return samples


def latency_drift(result: LoadResult) -> dict:
    """p50 of the soak's first and last tenth (all requests mixed): does it slow down over time?"""
    if len(result.samples) < 20:
        return {}
    ordered = sorted(result.samples)
    tenth = len(ordered) // 10
    first = np.median([dt for _, dt in ordered[:tenth]]) * 1000
    last = np.median([dt for _, dt in ordered[-tenth:]]) * 1000
    return {"first_tenth_p50_ms": round(float(first), 2), "last_tenth_p50_ms": round(float(last), 2)}


# --------------------------------------------------------------------------- output


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` next to ``path``, then rename over it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_text(text: str) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write


def _fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    meta, soak_result = report["meta"], report["soak"]
    lines = [
        "# Serving benchmark: REST server vs in-process SavedModel call",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"{meta['started']} to {meta['finished']} ({meta['duration_s'] / 60:.1f} min) on {meta['cpu_count']} CPUs "
        f"shared with other jobs (load average {meta['loadavg_start'][0]:.1f} at start, "
        f"{meta['loadavg_end'][0]:.1f} at end; niceness {meta['niceness']}). TF {meta['tensorflow']}, "
        f"Python {meta['python']}. Model: {meta['model']['architecture']}, {meta['model']['parameters']:,} "
        f"parameters, trained 1 epoch on {meta['model']['train_rows']:,} rows. Body format: {meta['format']}. "
        f"Per mode and cell: at most {meta['cell_requests']} requests or {meta['cell_seconds']:g} s, in "
        f"{meta['rounds']} alternating slices. Batching: `{meta['batching_parameters'].strip()}`.",
        "",
        "Latency in ms (p50 / p99), req/s; ratio = server p50 / in-process p50 (throughput ratio = in-process "
        "req/s / server req/s). Client, servers and in-process calls share the CPUs.",
        "",
        "| batch | conc | in-process p50 / p99 | req/s | REST p50 / p99 | req/s | p50 ratio | thr ratio "
        "| +batching p50 / p99 | req/s | p50 ratio | thr ratio | rows/call | n (ip/rest/batch) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cell in report["cells"]:
        lines.append(_table_row(cell))
    lines += ["", "Server CPU ms per request (REST / +batching) vs in-process CPU ms per call:", "",
              "| batch | conc | in-process | REST server | REST client | +batching server | +batching client |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in report["cells"]:
        lines.append(_cpu_row(cell))
    lines += ["", f"## Soak ({soak_result['seconds']:g} s, {soak_result['concurrency']} client threads, "
              f"{soak_result['mix']})", "",
              "| server | RSS after start MB | RSS before soak MB | RSS after soak MB | max MB | requests ok "
              "| errors |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for mode in SERVER_MODES:
        counts = soak_result["requests"].get(mode, {})
        lines.append(f"| {LABELS[mode]} | {report['servers'][mode]['rss_mb_started']} | "
                     f"{soak_result['rss_mb_before'][mode]} | {soak_result['rss_mb_after'][mode]} | "
                     f"{soak_result['rss_mb_max'].get(mode, '–')} | {counts.get('ok', 0)} "
                     f"| {counts.get('errors', 0)} |")
    drift = soak_result.get("latency_drift", {})
    if drift:
        lines += ["", f"Soak p50 (all requests mixed): first tenth {drift['first_tenth_p50_ms']} ms, "
                      f"last tenth {drift['last_tenth_p50_ms']} ms. Errors: {soak_result['errors'] or 'none'}."]
    lines += ["", f"Outputs, max |server - in-process| on 32 rows: {json.dumps(report['correctness'])}.",
              "", "Servers: " + "; ".join(f"{LABELS[m]}: started in {s['startup_s']} s, SIGTERM exit "
                                          f"{s['exit_code']} after {s['shutdown_s']} s, {s['log_notable_total']} "
                                          f"warning/error log lines" for m, s in report["servers"].items()), ""]
    return "\n".join(lines)


def _table_row(cell: dict) -> str:
    m, r = cell["modes"], cell["ratios"]

    def lat(s: dict) -> str:
        return f"{_fmt(s.get('p50_ms'), 2)} / {_fmt(s.get('p99_ms'), 2)}"

    rb = r.get("rest_batching", {})
    return (f"| {cell['batch']} | {cell['concurrency']} | {lat(m['in_process'])} | {_fmt(m['in_process'].get('rps'))} "
            f"| {lat(m['rest'])} | {_fmt(m['rest'].get('rps'))} | {_fmt(r['rest'].get('p50'), 2)} "
            f"| {_fmt(r['rest'].get('throughput'), 2)} | {lat(m['rest_batching'])} "
            f"| {_fmt(m['rest_batching'].get('rps'))} | {_fmt(rb.get('p50'), 2)} | {_fmt(rb.get('throughput'), 2)} "
            f"| {_fmt(m['rest_batching'].get('mean_rows_per_model_call'))} "
            f"| {m['in_process']['n']}/{m['rest']['n']}/{m['rest_batching']['n']} |")


def _cpu_row(cell: dict) -> str:
    m = cell["modes"]

    def cpu(mode: str, who: str) -> str:
        return _fmt(m[mode].get("cpu_ms_per_request", {}).get(who), 2)

    return (f"| {cell['batch']} | {cell['concurrency']} | {cpu('in_process', 'self')} | {cpu('rest', 'server')} "
            f"| {cpu('rest', 'client')} | {cpu('rest_batching', 'server')} | {cpu('rest_batching', 'client')} |")


def plot(report: dict, path: str) -> None:
    """p50 and p99 latency vs batch per concurrency and mode; p50 and throughput overhead ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cells = report["cells"]
    batches = sorted({c["batch"] for c in cells})
    concs = sorted({c["concurrency"] for c in cells})
    colors = dict(zip(concs, plt.cm.viridis(np.linspace(0.0, 0.85, len(concs)))))
    styles = {"in_process": "-", "rest": "--", "rest_batching": ":"}
    markers = {"in_process": "o", "rest": "s", "rest_batching": "^"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for conc in concs:
        row = {c["batch"]: c for c in cells if c["concurrency"] == conc}
        for ax, key in ((axes[0, 0], "p50_ms"), (axes[0, 1], "p99_ms")):
            for mode in MODES:
                ax.plot(batches, [row[b]["modes"][mode].get(key, np.nan) for b in batches], styles[mode],
                        marker=markers[mode], color=colors[conc], label=f"{LABELS[mode]}, conc {conc}")
        for ax, key in ((axes[1, 0], "p50"), (axes[1, 1], "throughput")):
            for mode in SERVER_MODES:
                ax.plot(batches, [row[b]["ratios"][mode].get(key, np.nan) for b in batches], styles[mode],
                        marker=markers[mode], color=colors[conc], label=f"{LABELS[mode]}, conc {conc}")
    titles = {(0, 0): "p50 latency (ms)", (0, 1): "p99 latency (ms)",
              (1, 0): "p50 ratio: server / in-process", (1, 1): "throughput ratio: in-process / server req/s"}
    for (i, j), title in titles.items():
        ax = axes[i, j]
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size (rows per request)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if i == 1:
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[0, 0].legend(fontsize=7, ncol=1)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"tfmtl serving: census MMoE, REST vs in-process ({report['meta']['cpu_count']} shared CPUs, "
                 f"load avg {report['meta']['loadavg_start'][0]:.0f})")
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def write_results(report: dict, out: str) -> None:
    write_atomically(out + ".json", _write_text(json.dumps(report, indent=2) + "\n"))
    write_atomically(out + ".md", _write_text(markdown(report)))
    plot(report, out + ".png")


# --------------------------------------------------------------------------- main


def start_servers(model_dir: str, workdir: str, args: argparse.Namespace) -> tuple[dict[str, Server], str]:
    batching_file = os.path.join(workdir, "batching.config")
    batching_text = write_batching_file(batching_file, args)
    servers = {"rest": start_server("rest", model_dir, workdir, None),
               "rest_batching": start_server("rest_batching", model_dir, workdir, batching_file)}
    return servers, batching_text


def run(args: argparse.Namespace, workdir: str, meta: dict) -> dict:
    import tensorflow as tf

    print("[train] census MMoE, 1 epoch ...", flush=True)
    version_dir, arrays, meta["model"] = train_and_export(args.rows, os.path.join(workdir, "export"))
    gc.collect()
    print(f"[export] {version_dir} {meta['model']}", flush=True)
    servers, meta["batching_parameters"] = start_servers(os.path.dirname(version_dir), workdir, args)
    try:
        fn = tf.saved_model.load(version_dir).signatures["serving_default"]
        for server in servers.values():
            wait_until_serving(server, args.startup_timeout, args.request_timeout)
            print(f"[server] {server.mode} at {server.url}: {server.stats}", flush=True)
        correctness = check_outputs(servers, fn, arrays)
        cells = run_matrix(servers, fn, arrays, args)
        print(f"[soak] {args.soak_seconds:g} s ...", flush=True)
        soak_result = soak(servers, arrays, args)
        print(f"[soak] RSS before {soak_result['rss_mb_before']} after {soak_result['rss_mb_after']}", flush=True)
    finally:
        for server in servers.values():
            stop_server(server)
    return {"meta": meta, "correctness": correctness, "cells": cells, "soak": soak_result,
            "servers": {m: s.stats for m, s in servers.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    meta = {"command": command_line(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()], "niceness": os.nice(0),
            "tensorflow": tf.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "format": args.format, "cell_seconds": args.cell_seconds, "cell_requests": args.cell_requests,
            "rounds": args.rounds, "batches": args.batches, "concurrency": args.concurrency}
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="tfmtl-serving-bench-")
    try:
        report = run(args, workdir, meta)
    finally:
        if args.keep_export:
            print(f"[keep] {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), duration_s=round(time.perf_counter() - started, 1),
                loadavg_end=[round(x, 2) for x in os.getloadavg()])
    write_results(report, args.out)
    print(f"[done] {args.out}.{{json,md,png}} in {meta['duration_s'] / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
