"""Serving latency: keep-alive REST clients and gRPC against the in-process signature call (issue 15).

    nice -n 5 /work/main/.venv/bin/python -m bench.serving                       # ~15 min (10 of them the soak)
    nice -n 5 /work/main/.venv/bin/python -m bench.serving --cell-seconds 0.5 --soak-seconds 10   # smoke

Serves two models from one ``python -m serving`` process (127.0.0.1, free ports,
REST and gRPC): TF Serving's own ``half_plus_two`` test model (TF1 graph,
committed under tests/serving/testdata) and a census MMoE (8 experts of
[512, 256]) trained one epoch on a few thousand rows and exported with
``tfmtl.export`` (latency depends on the architecture, not on training). For
every model x batch (1/32/256) x concurrency (1/8/32) it runs, one after the
other, for ``--cell-seconds`` each:

- ``in_process`` (census only): the SavedModel's ``serving_default`` called from
  ``concurrency`` threads in this process (numpy in, numpy out) as users call it;
- ``in_process_servable`` (census only): the server's own call path
  (``serving.servable.Signature.run``) in this process;
- ``http_client``: ``http.client.HTTPConnection`` per thread, kept alive, the
  pre-encoded JSON body POSTed to ``:predict`` (what requests/urllib3 do);
- ``single_write``: a raw socket per thread, kept alive, each request written
  with one ``sendall`` and the answer read by Content-Length;
- ``grpc``: ``PredictionService/Predict`` through tensorflow_serving.apis stubs
  on one channel.

Server CPU per request is the server process's CPU time over the cell divided
by its requests. Then ``--rounds`` interleaved rounds at batch 1, one client: each
round runs every client once (``--cell-seconds`` each) in turn, so the hypervisor's
steal and any other disturbance fall on all clients alike; the medians over rounds of
each client's p50 and p99, and of the per-round differences, decide the batch-1
targets (a difference between two cells taken a minute apart is mostly noise here).
Then a soak (``--soak-seconds``) sends census requests from 8
threads while a new version is copied into the model's base path halfway
through (hot swap): errors, versions seen and the server's RSS are recorded.
The machine may be shared: the load average is recorded beside every cell.
First, in this process, what writing the Predict outputs costs in TF Serving's typed fields against
``tensor_content`` at batch 256 and 1024 (:func:`encoding_cost`).
Writes ``bench/results/serving.{json,md}`` (each finished cell is saved at once).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import psutil

from bench._report import write_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
TESTDATA = os.path.join(ROOT, "tests", "serving", "testdata", "tf_serving", "saved_model_half_plus_two_cpu")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=3000, help="census rows to train the MMoE one epoch on")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--cell-seconds", type=float, default=1.5, help="time per client per cell")
    p.add_argument("--rounds", type=int, default=7, help="interleaved batch-1 rounds of every client (0: none)")
    p.add_argument("--soak-seconds", type=float, default=600.0, help="soak with a hot swap halfway")
    p.add_argument("--out", default=os.path.join(RESULTS, "serving"), help="output path without extension")
    return p.parse_args(argv)


def load() -> float:
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------- models and server


def census_export(rows: int, base: str) -> tuple[str, dict[str, np.ndarray], dict]:
    """Train and export the census MMoE; returns (version dir, test feature arrays, info)."""
    from tfmtl._keras import keras
    from tfmtl.datasets import census
    from tfmtl.export import export_saved_model
    from tfmtl.models import MMoE

    keras.utils.set_random_seed(0)
    splits = census.load_census(nrows=rows)
    model = MMoE(splits.spec, num_experts=8, expert_units=[512, 256], cross=None)  # as the published runs
    model.compile()
    model.fit(splits.train, epochs=1, verbose=0)
    path = export_saved_model(model, base, "census")
    info = {"architecture": "MMoE(num_experts=8, expert_units=[512, 256], cross=None)",
            "parameters": int(model.count_params())}
    return path, splits.spec.feature_arrays(splits.test.head(256)), info


def start_server(config: str, workdir: str) -> tuple[subprocess.Popen, str, str]:
    """``python -m serving`` on ``config`` and free ports; returns (process, REST URL host:port, gRPC target)."""
    return start_serving_process([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                                  "--max_concurrent_requests=0"], workdir)


def start_serving_process(flags: list[str], workdir: str) -> tuple[subprocess.Popen, str, str]:
    """``python -m serving`` with ``flags`` on free ports, its log in ``workdir/server.log``; returns
    (process, REST host:port, gRPC target) once both ports serve."""
    log = open(os.path.join(workdir, "server.log"), "w+")
    process = subprocess.Popen([sys.executable, "-m", "serving", "--rest_api_port=0", "--port=0", *flags],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        log.seek(0)
        text = log.read()
        rest = re.search(r"REST API at http://(\S+?)/v1", text)
        grpc_at = re.search(r"gRPC API at (\S+) ", text)
        if rest and grpc_at and "Application startup complete" in text:
            return process, rest.group(1), grpc_at.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{text}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def wait_available(hostport: str, name: str, version: int | None = None) -> None:
    host, port = hostport.split(":")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", f"/v1/models/{name}")
        status = json.loads(conn.getresponse().read())
        conn.close()
        states = {int(s["version"]): s["state"] for s in status.get("model_version_status", [])}
        if (version is None and "AVAILABLE" in states.values()) or states.get(version) == "AVAILABLE":
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not available")


# --------------------------------------------------------------------------- clients


def http_client_call(hostport: str, path: str, body: bytes) -> Callable[[], Callable[[], None]]:
    host, port = hostport.split(":")

    def make():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json"}

        def call():
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(data[:200])
        return call
    return make


def single_write_call(hostport: str, path: str, body: bytes) -> Callable[[], Callable[[], None]]:
    host, port = hostport.split(":")
    request = (f"POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def make():
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")

        def call():
            sock.sendall(request)
            status = reader.readline()
            length = 0
            while True:
                line = reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = reader.read(length)
            if b" 200 " not in status:
                raise RuntimeError(data[:200])
        return call
    return make


def grpc_call(target: str, request) -> Callable[[], Callable[[], None]]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def make():
        def call():
            stub.Predict(request, timeout=60)
        return call
    return make


def servable_call(signature, arrays: dict[str, np.ndarray]) -> Callable[[], Callable[[], None]]:
    """The server's own call path (``serving.servable.Signature.run``: numpy in, numpy out) in this process."""

    def make():
        def call():
            signature.run(arrays)
        return call
    return make


def in_process_call(fn, arrays: dict[str, np.ndarray]) -> Callable[[], Callable[[], None]]:
    import tensorflow as tf

    def make():
        def call():
            out = fn(**{k: tf.convert_to_tensor(v) for k, v in arrays.items()})
            {k: v.numpy() for k, v in out.items()}
        return call
    return make


class Contention:
    """What else took the CPUs between ``start()`` and ``stop()``: other processes and the hypervisor.

    ``other_pct``: CPU time of every process but this benchmark and its server, as a share
    of all CPUs' time; ``steal_pct``: time the hypervisor gave the VM's CPUs to someone else
    (a "quiet" VM can still lose a fifth of its CPU this way, and latency with it).
    """

    def __init__(self, ours: Sequence[psutil.Process]):
        self._ours = list(ours)

    def _sample(self) -> tuple[float, float, float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        ours = sum(sum(p.cpu_times()[:2]) for p in self._ours)  # user + system, one read per process
        return time.monotonic(), busy, getattr(t, "steal", 0.0), ours

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict:
        end = self._sample()
        capacity = max(end[0] - self._start[0], 1e-9) * (os.cpu_count() or 1)
        other = max(0.0, (end[1] - self._start[1]) - (end[3] - self._start[3]))
        return {"other_pct": round(100 * other / capacity, 1), "steal_pct": round(100 * (end[2] - self._start[2])
                                                                                 / capacity, 1)}


def run_cell(make: Callable[[], Callable[[], None]], concurrency: int, seconds: float,
             server: psutil.Process | None, contention: Contention | None = None) -> dict:
    calls = [make() for _ in range(concurrency)]
    for call in calls:  # warm each connection
        call()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        call, out = calls[i], latencies[i]
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                call()
            except Exception:  # noqa: BLE001 - counted, reported
                errors[i] += 1
                continue
            out.append(time.perf_counter() - t)

    cpu0 = server.cpu_times() if server else None
    if contention is not None:
        contention.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    values = np.array([x for per in latencies for x in per]) * 1e3
    result = {"n": int(values.size), "errors": sum(errors), "p50_ms": round(float(np.percentile(values, 50)), 3),
              "p99_ms": round(float(np.percentile(values, 99)), 3), "req_s": round(values.size / wall, 1),
              "load": load(), **(contention.stop() if contention is not None else {})}
    if cpu0 is not None:
        cpu1 = server.cpu_times()
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        result["server_cpu_ms_per_req"] = round(1e3 * used / max(values.size, 1), 3)
    return result


def interleaved_rounds(makers: dict[str, Callable[[], Callable[[], None]]], rounds: int, seconds: float,
                       server: psutil.Process, contention: Contention) -> dict:
    """Every client once per round, in turn; per client the per-round results and their medians.

    ``vs``: per-round differences of p50 against the other clients, whose median is robust to a
    disturbance that hits one round (all clients of that round are hit alike).
    """
    per_round: dict[str, list[dict]] = {name: [] for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            per_round[name].append(run_cell(make, 1, seconds, None if name.startswith("in_process") else server,
                                            contention))
    summary = {}
    for name, results in per_round.items():
        summary[name] = {"p50_ms": round(float(np.median([r["p50_ms"] for r in results])), 3),
                         "p99_ms": round(float(np.median([r["p99_ms"] for r in results])), 3),
                         "p99_ms_max": max(r["p99_ms"] for r in results),
                         "steal_pct": [r.get("steal_pct") for r in results],
                         "other_pct_max": max(r.get("other_pct", 0.0) for r in results), "rounds": results}
    for name in makers:
        summary[name]["vs"] = {other: round(float(np.median([a["p50_ms"] - b["p50_ms"] for a, b in
                                                             zip(per_round[name], per_round[other])])), 3)
                               for other in makers if other != name}
    return summary


# --------------------------------------------------------------------------- bodies


def _rows(arrays: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    n = len(next(iter(arrays.values())))
    index = np.arange(batch) % n
    return {k: v[index] for k, v in arrays.items()}


def _json_value(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, float) and not np.isfinite(v):
        return 0.0
    return v


def rest_body(arrays: dict[str, np.ndarray]) -> bytes:
    keys = list(arrays)
    columns = {k: arrays[k].tolist() for k in keys}
    rows = [{k: _json_value(columns[k][i]) for k in keys} for i in range(len(columns[keys[0]]))]
    return json.dumps({"instances": rows}).encode()


def grpc_request(name: str, arrays: dict[str, np.ndarray]):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in arrays.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


# --------------------------------------------------------------------------- soak


def soak(hostport: str, server: psutil.Process, base: str, version_dir: str, body: bytes, seconds: float) -> dict:
    make = http_client_call(hostport, "/v1/models/census:predict", body)
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()

    def worker() -> None:
        call = make()
        while time.monotonic() < stop:
            try:
                call()
                ok = 1
            except Exception:  # noqa: BLE001 - counted
                ok = 0
                call = make()
            with lock:
                counts["ok" if ok else "errors"] += 1

    rss = [(0.0, round(server.memory_info().rss / 2**20, 1))]
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    swapped = None
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        now = time.monotonic() - started
        rss.append((round(now, 1), round(server.memory_info().rss / 2**20, 1)))
        if swapped is None and now >= seconds / 2:
            staging = os.path.join(base, ".staging-2")
            shutil.copytree(version_dir, staging)
            os.rename(staging, os.path.join(base, "2"))
            swapped = round(now, 1)
    for t in threads:
        t.join()
    status = json.loads(_get(hostport, "/v1/models/census"))
    return {"seconds": seconds, "requests": counts["ok"], "errors": counts["errors"], "swap_at_s": swapped,
            "versions_after": [(s["version"], s["state"]) for s in status["model_version_status"]],
            "rss_mb_start": rss[0][1], "rss_mb_end": rss[-1][1], "rss_mb_max": max(r for _, r in rss),
            "rss_mb_every_10s": rss[::10],  # flat or growing: the timeline, not just its ends
            "load_end": load()}


def _get(hostport: str, path: str) -> bytes:
    host, port = hostport.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    data = conn.getresponse().read()
    conn.close()
    return data


# --------------------------------------------------------------------------- response encoding


def encoding_cost(batches: Sequence[int] = (256, 1024), reps: int = 200) -> list[dict]:
    """Median µs to write a PredictResponse's outputs and serialize it, tensor_content vs TF Serving's typed fields.

    The outputs: two task probabilities [B, 1] (the census model's), a float32 [B, 64] embedding and
    int64 [B, 16] item ids (a retrieval model's top-k), so both the packed float path and the varint
    fields are measured.
    """
    from tensorflow_serving.apis import predict_pb2

    from serving.tensor_proto import fill_tensor_proto, fill_typed_tensor_proto

    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        shapes = {"floats": {"income_50k": (batch, 1), "never_married": (batch, 1), "embedding": (batch, 64)},
                  "int64 ids": {"top_items": (batch, 16)}}
        for kind, outputs in shapes.items():
            arrays = {k: rng.random(shape).astype(np.float32) if kind == "floats"
                      else rng.integers(0, 10**6, size=shape) for k, shape in outputs.items()}
            row = {"batch": batch, "outputs": kind}
            for layout, fill in (("tensor_content", fill_tensor_proto), ("typed", fill_typed_tensor_proto)):
                times = []
                for _ in range(reps):
                    started = time.perf_counter()
                    response = predict_pb2.PredictResponse()
                    for key, value in arrays.items():
                        fill(response.outputs[key], value)
                    size = len(response.SerializeToString())
                    times.append(time.perf_counter() - started)
                row[f"{layout}_us"] = round(float(np.median(times)) * 1e6, 1)
                row[f"{layout}_bytes"] = size
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- report


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = ["# Serving benchmark: keep-alive REST and gRPC vs the in-process call", "",
             f"`{meta['command']}`", "",
             f"{meta['started']} to {meta.get('finished', '(unfinished)')} UTC on {meta['cpu_count']} CPUs. "
             f"{_machine_sentence(report)} Client and server share the CPUs. "
             f"TF {meta['tensorflow']}, Python {meta['python']}. Census model: {meta['census']['architecture']}, "
             f"{meta['census']['parameters']:,} parameters. {meta['cell_seconds']} s per client per cell.", "",
             "Latency p50 / p99 in ms, throughput in req/s, server CPU ms per request; `-` = not applicable. "
             "`in_process` is the SavedModel's `serving_default` called as users call it "
             "(`fn(**tensors)`); `in_process_servable` is the server's own call path "
             "(`serving.servable.Signature.run`, flat call) in the benchmark's process.", ""]
    lines += _overhead_lines(report)
    for model in ("half_plus_two", "census"):
        lines += [f"## {model}", "",
                  "| batch | conc | client | p50 | p99 | req/s | server CPU ms/req | errors | load | other % "
                  "| steal % |",
                  "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cell in report["cells"]:
            if cell["model"] != model:
                continue
            lines.append(f"| {cell['batch']} | {cell['concurrency']} | {cell['client']} | {cell['p50_ms']:.2f} | "
                         f"{cell['p99_ms']:.2f} | {cell['req_s']:.0f} | {cell.get('server_cpu_ms_per_req', '-')} | "
                         f"{cell['errors']} | {cell['load']} | {cell.get('other_pct', '-')} | "
                         f"{cell.get('steal_pct', '-')} |")
        lines.append("")
    if "encoding" in report:
        lines += ["## Encoding gRPC Predict outputs", "",
                  "A PredictResponse filled and serialized in this process (median µs of 200): TF Serving's "
                  "layout, every value in its typed field (`float_val`, `int64_val`, as `Tensor::AsProtoField` "
                  "writes it; the default), against `tensor_content` (`--enable_serialization_as_tensor_content`).",
                  "", "| batch | outputs | tensor_content µs | typed µs | bytes (content / typed) |",
                  "|---:|---|---:|---:|---:|"]
        for row in report["encoding"]:
            lines.append(f"| {row['batch']} | {row['outputs']} | {row['tensor_content_us']} | {row['typed_us']} | "
                         f"{row['tensor_content_bytes']:,} / {row['typed_bytes']:,} |")
        lines.append("")
    if "soak" in report:
        s = report["soak"]
        lines += ["## Soak with a hot swap", "",
                  f"{s['seconds']:.0f} s, 8 keep-alive http.client threads on census batch 1; version 2 copied in at "
                  f"{s['swap_at_s']} s. Requests {s['requests']}, errors {s['errors']}; versions after: "
                  f"{s['versions_after']}. Server RSS {s['rss_mb_start']:.1f} MB at start, {s['rss_mb_end']} MB at the "
                  f"end (max {s['rss_mb_max']}). Load at the end {s['load_end']}.", ""]
    return "\n".join(lines)


def _machine_sentence(report: dict) -> str:
    meta, cells = report["meta"], report["cells"]
    others = [c["other_pct"] for c in cells if "other_pct" in c]
    steals = [c["steal_pct"] for c in cells if "steal_pct" in c]
    if not others:  # results written before contention was recorded
        return (f"1-minute load average {meta['load_start']} at start, {meta.get('load_end', '?')} at the end "
                f"(`load` column per cell; client and server themselves add up to ~3 at concurrency 32).")
    quiet = meta["load_start"] < 1.0 and max(others) < 5.0
    return ((f"{'Quiet machine' if quiet else '**Shared machine**'}: other processes used at most {max(others)} % "
             f"of the CPUs in any cell (`other %`), load average {meta['load_start']} at start. ")
            + f"This is a VM: the hypervisor took {min(steals)}-{max(steals)} % of the CPU time (`steal %`, "
            f"median {sorted(steals)[len(steals) // 2]} %), which no one on the machine controls and which varies "
            f"run to run.")


def _rounds_lines(report: dict) -> list[str]:
    """The issue's targets at batch 1, one client, from the interleaved rounds."""
    rounds = report["rounds"]
    first = next(iter(next(iter(rounds.values())).values()))
    lines = [f"**Batch 1, one keep-alive client, {len(first['rounds'])} interleaved rounds** (median over rounds; "
             "`Δ` = median of the per-round differences):", ""]
    half = rounds.get("half_plus_two", {})
    if "http_client" in half:
        h = half["http_client"]
        lines.append(f"- half_plus_two REST (http.client): p50 {h['p50_ms']:.2f}, p99 {h['p99_ms']:.2f} (worst round "
                     f"{h['p99_ms_max']:.2f}); single_write p50 {half['single_write']['p50_ms']:.2f}, p99 "
                     f"{half['single_write']['p99_ms']:.2f}; gRPC p50 {half['grpc']['p50_ms']:.2f}, p99 "
                     f"{half['grpc']['p99_ms']:.2f} (issue 15 target: REST p50 <= 2, p99 <= 5).")
    census = rounds.get("census", {})
    if "in_process" in census:
        base = census["in_process"]["p50_ms"]
        for client in ("http_client", "single_write", "grpc"):
            c = census[client]
            lines.append(f"- census {client}: p50 {c['p50_ms']:.2f}, p99 {c['p99_ms']:.2f}; Δ vs in_process "
                         f"{c['vs']['in_process']:+.2f} (in_process p50 {base:.2f}), Δ vs the server's own call "
                         f"path {c['vs']['in_process_servable']:+.2f}"
                         + (f", Δ vs http_client {c['vs']['http_client']:+.2f}" if client != "http_client" else "")
                         + ".")
        lines.append("- targets: REST <= in_process + 1.5 ms; gRPC at least as fast as REST (Δ vs http_client <= 0).")
    steals = [x for model in rounds.values() for c in model.values() for x in c["steal_pct"] if x is not None]
    if steals:
        lines.append(f"- steal during the rounds: {min(steals)}-{max(steals)} % (median "
                     f"{sorted(steals)[len(steals) // 2]} %); other processes at most "
                     f"{max(c['other_pct_max'] for model in rounds.values() for c in model.values())} %.")
    return lines + [""]


def _overhead_lines(report: dict) -> list[str]:
    """The issue's targets at batch 1, one client: REST and gRPC p50 over the in-process calls."""
    if report.get("rounds"):
        return _rounds_lines(report)
    cells = {(c["model"], c["client"]): c for c in report["cells"] if c["batch"] == 1 and c["concurrency"] == 1}
    if ("census", "in_process") not in cells:
        return []
    lines = ["**Batch 1, one keep-alive client** (p50, ms):", ""]
    half = cells.get(("half_plus_two", "http_client"))
    if half:
        lines.append(f"- half_plus_two REST (http.client): p50 {half['p50_ms']:.2f}, p99 {half['p99_ms']:.2f} "
                     f"(issue 15 target: p50 <= 2, p99 <= 5).")
    base, flat = cells[("census", "in_process")], cells.get(("census", "in_process_servable"))
    for client in ("http_client", "grpc"):
        cell = cells.get(("census", client))
        if cell:
            text = (f"- census {client}: {cell['p50_ms']:.2f} = in_process {base['p50_ms']:.2f} "
                    f"{cell['p50_ms'] - base['p50_ms']:+.2f}")
            if flat:
                text += f" = in_process_servable {flat['p50_ms']:.2f} {cell['p50_ms'] - flat['p50_ms']:+.2f}"
            lines.append(text + " (target: REST <= in_process + 1.5; gRPC at least as fast as REST).")
    return lines + [""]


def save(report: dict, out: str) -> None:
    write_atomically(out + ".json", json.dumps(report, indent=1))
    write_atomically(out + ".md", markdown(report))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness else "") + "python -m bench.serving " + " ".join(sys.argv[1:])
    report: dict = {"meta": {"command": command.strip(), "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                             "cpu_count": os.cpu_count(), "load_start": load(), "tensorflow": tf.__version__,
                             "python": platform.python_version(), "cell_seconds": args.cell_seconds},
                    "cells": []}
    workdir = tempfile.mkdtemp(prefix="tfmtl-serving-bench-")
    process = None
    try:
        report["encoding"] = encoding_cost()
        print(json.dumps(report["encoding"]), flush=True)
        print("[census] train + export ...", flush=True)
        version_dir, arrays, report["meta"]["census"] = census_export(args.rows, os.path.join(workdir, "export"))
        census_base = os.path.join(workdir, "census")
        os.makedirs(census_base)
        shutil.copytree(version_dir, os.path.join(census_base, "1"))
        config = os.path.join(workdir, "models.config")
        with open(config, "w") as f:
            f.write(f'model_config_list {{\n config {{ name: "half_plus_two" base_path: "{TESTDATA}" '
                    f'model_platform: "tensorflow" }}\n config {{ name: "census" base_path: "{census_base}" '
                    f'model_platform: "tensorflow" }}\n}}\n')
        process, hostport, target = start_server(config, workdir)
        server = psutil.Process(process.pid)
        contention = Contention([psutil.Process(), server])
        wait_available(hostport, "half_plus_two")
        wait_available(hostport, "census")
        fn = tf.saved_model.load(version_dir).signatures["serving_default"]
        from serving.servable import Servable

        servable_signature = Servable.load("census", 1, version_dir).signature(None)
        def clients(model: str, batch: int) -> dict[str, Callable[[], Callable[[], None]]]:
            """Every client of ``model`` at ``batch`` rows (census adds the two in-process calls)."""
            if model == "half_plus_two":
                data = {"x": (np.arange(batch, dtype=np.float32) % 7)}
                body = json.dumps({"instances": data["x"].tolist()}).encode()
                grpc_inputs = {"x": data["x"].reshape(-1, 1)}
            else:
                data = _rows(arrays, batch)
                body = rest_body(data)
                grpc_inputs = data
            makers = {"http_client": http_client_call(hostport, f"/v1/models/{model}:predict", body),
                      "single_write": single_write_call(hostport, f"/v1/models/{model}:predict", body),
                      "grpc": grpc_call(target, grpc_request(model, grpc_inputs))}
            if model == "census":
                makers = {"in_process": in_process_call(fn, data),
                          "in_process_servable": servable_call(servable_signature, data), **makers}
            return makers

        for model in ("half_plus_two", "census"):
            for batch in args.batches:
                makers = clients(model, batch)
                for concurrency in args.concurrency:
                    for client, make in makers.items():
                        result = run_cell(make, concurrency, args.cell_seconds,
                                          None if client.startswith("in_process") else server, contention)
                        cell = {"model": model, "batch": batch, "concurrency": concurrency, "client": client, **result}
                        print(json.dumps(cell), flush=True)
                        report["cells"].append(cell)
                        save(report, args.out)
        if args.rounds > 0:
            report["rounds"] = {}
            for model in ("half_plus_two", "census"):
                makers = clients(model, 1)
                print(f"[rounds] {model}: {args.rounds} x {list(makers)}", flush=True)
                report["rounds"][model] = interleaved_rounds(makers, args.rounds, args.cell_seconds, server,
                                                             contention)
                save(report, args.out)
        if args.soak_seconds > 0:
            print(f"[soak] {args.soak_seconds:g} s with a hot swap ...", flush=True)
            report["soak"] = soak(hostport, server, census_base, version_dir, rest_body(_rows(arrays, 1)),
                                  args.soak_seconds)
            print(json.dumps(report["soak"]), flush=True)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    report["meta"].update(finished=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), load_end=load())
    save(report, args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
