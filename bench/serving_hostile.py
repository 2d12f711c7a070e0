"""Serving under hostile clients (issue 34): a good client's batch-1 latency beside silent connections,
slow senders, huge headers and amplifying requests; the server's RSS and file descriptors over time.

    nice -n 5 /work/main/.venv/bin/python -m bench.serving_hostile                  # ~2 min, quiet machine
    nice -n 5 /work/main/.venv/bin/python -m bench.serving_hostile --seconds 3 --silent 100   # smoke

One ``python -m serving`` process serves TF Serving's ``half_plus_two`` test model (committed under
tests/serving/testdata) with the server's default limits (``serving.connections.ConnectionLimits``,
``--max_fill_elements``); only ``--request_header_timeout_seconds`` is this benchmark's, so that
closing happens within a scenario. One scenario after another, each ``--seconds`` long, a good REST
client (``http.client``, kept alive) and a good gRPC client (one channel) each send batch-1 Predicts
one at a time, in two threads, beside:

- ``baseline``: nothing;
- ``silent``: ``--silent`` REST connections (and a tenth as many gRPC ones) that send half a request's
  headers, or nothing, and then wait; each one the server closes is opened again at once, and its
  lifetime (open to closed by the server) is recorded: it must stay within the header timeout;
- ``slow_senders``: ``--slow`` REST connections each sending its headers one byte per 0.2 s (slowloris);
- ``huge_headers``: one thread sending, again and again, a 1 MB header and a request of 10,000 headers
  (both past the limits: 431 expected);
- ``amplifying``: one thread sending gRPC requests of about 50 bytes that declare [2^26, 1] from one value
  (INVALID_ARGUMENT expected, under ``--max_fill_elements``);
- ``all``: every hostile client above at once.

A sampler reads the server's VmRSS (/proc/<pid>/status) and open descriptors (/proc/<pid>/fd) every
0.25 s. Beside every scenario: the load average, other processes' CPU and steal (bench.serving's
``Contention``). Writes ``bench/results/serving_hostile.{json,md,png}``.
"""

from __future__ import annotations

import abc
import argparse
import json
import os
import platform
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import psutil

from bench._report import atomic_path, write_atomically, write_json
from bench.serving import (
    RESULTS,
    TESTDATA,
    Contention,
    grpc_call,
    grpc_request,
    http_client_call,
    load,
    run_cell,
    start_serving_process,
)

SCENARIOS = ("baseline", "silent", "slow_senders", "huge_headers", "amplifying", "all")
MODEL = "half_plus_two"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each scenario")
    p.add_argument("--silent", type=int, default=1000, help="silent REST connections held open (issue 34: 1,000)")
    p.add_argument("--slow", type=int, default=100, help="slowloris REST connections")
    p.add_argument("--header-timeout", type=float, default=5.0,
                   help="the server's --request_header_timeout_seconds: shorter than a scenario, so the server's "
                        "closing is seen")
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--out", default=os.path.join(RESULTS, "serving_hostile"), help="output path without extension")
    return p.parse_args(argv)


def start_server(workdir: str, header_timeout: float) -> tuple[subprocess.Popen, str, str]:
    """``python -m serving`` for half_plus_two on free ports; returns (process, REST host:port, gRPC target)."""
    return start_serving_process([f"--model_name={MODEL}", f"--model_base_path={TESTDATA}",
                                  "--enable_model_warmup=false", f"--request_header_timeout_seconds={header_timeout}"],
                                 workdir)


# --------------------------------------------------------------------------- the server, sampled


class Sampler:
    """The server's RSS (MB) and open descriptors every ``interval`` s, each sample labelled by scenario."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval = pid, interval
        self.scenario = ""
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def read(self) -> tuple[float, int]:
        with open(f"/proc/{self.pid}/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return rss_kb / 1024, len(os.listdir(f"/proc/{self.pid}/fd"))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss, fds = self.read()
            except (OSError, StopIteration):
                return  # the server is gone
            self.samples.append({"t": round(time.monotonic() - self._t0, 2), "scenario": self.scenario,
                                 "rss_mb": round(rss, 1), "fds": fds})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- hostile clients


class Hostile(abc.ABC):
    """A hostile client on a thread until ``stop()``; ``stats()`` says what it did and what it got."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, daemon=True)

    def start(self) -> Hostile:
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(30)
        return self.stats()

    @abc.abstractmethod
    def run(self) -> None:
        """The client's loop, until ``self._stop`` is set."""

    @abc.abstractmethod
    def stats(self) -> dict:
        """What it sent and what it got."""


class HeldConnections(Hostile):
    """``count`` connections that each send ``opening`` (part of a request, or nothing) and then wait.

    ``drip`` > 0 instead sends ``opening`` one byte per ``drip`` seconds (slowloris). A connection the
    server closes is opened again at once; its lifetime is recorded.
    """

    def __init__(self, hostport: str, count: int, opening: bytes, drip: float = 0.0):
        super().__init__()
        host, port = hostport.rsplit(":", 1)
        self.address = (host, int(port))
        self.count, self.opening, self.drip = count, opening, drip
        self.lifetimes: list[float] = []
        self.answers: dict[str, int] = {}
        self.open_failures = 0

    def _open(self, selector: selectors.BaseSelector) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
        except OSError:
            self.open_failures += 1
            return
        sock.setblocking(False)
        state = {"opened": time.monotonic(), "sent": 0, "next": time.monotonic(), "got": b""}
        selector.register(sock, selectors.EVENT_READ, state)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(selector)
        while not self._stop.is_set():
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                state = key.data
                if state["sent"] < len(self.opening) and now >= state["next"]:
                    step = 1 if self.drip else len(self.opening)
                    try:
                        key.fileobj.send(self.opening[state["sent"]:state["sent"] + step])
                    except OSError:
                        continue  # closed by the server: the read below sees it
                    state["sent"] += step
                    state["next"] = now + self.drip
            for key, _ in selector.select(timeout=self.drip or 0.05):
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    key.data["got"] += data
                    continue
                self.lifetimes.append(time.monotonic() - key.data["opened"])
                got = key.data["got"]
                status = got[9:12].decode("ascii", "replace") if got.startswith(b"HTTP/") else "closed"
                self.answers[status] = self.answers.get(status, 0) + 1
                selector.unregister(key.fileobj)
                key.fileobj.close()
                self._open(selector)
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()

    def stats(self) -> dict:
        lifetimes = np.array(self.lifetimes) if self.lifetimes else np.zeros(1)
        return {"connections": self.count, "closed_by_server": len(self.lifetimes), "answers": self.answers,
                "lifetime_p50_s": round(float(np.percentile(lifetimes, 50)), 2),
                "lifetime_max_s": round(float(lifetimes.max()), 2), "open_failures": self.open_failures}


class HugeHeaders(Hostile):
    """Sends a 1 MB header, then 10,000 headers, again and again; counts the answers' status codes."""

    def __init__(self, hostport: str):
        super().__init__()
        host, port = hostport.rsplit(":", 1)
        self.address = (host, int(port))
        self.requests = [b"GET /v1/models/" + MODEL.encode() + b" HTTP/1.1\r\nX: " + b"a" * (1 << 20) + b"\r\n\r\n",
                         b"GET /v1/models/" + MODEL.encode() + b" HTTP/1.1\r\n" + b"X: y\r\n" * 10_000 + b"\r\n"]
        self.answers: dict[str, int] = {}
        self.seconds: list[float] = []

    def run(self) -> None:
        i = 0
        while not self._stop.is_set():
            start = time.monotonic()
            with socket.create_connection(self.address, timeout=10) as sock:
                try:
                    sock.sendall(self.requests[i % 2])
                except OSError:
                    pass  # refused before the end: the answer is already there
                got = b""
                try:
                    while chunk := sock.recv(65536):
                        got += chunk
                except OSError:
                    pass
            status = got[9:12].decode("ascii", "replace") or "closed"
            self.answers[status] = self.answers.get(status, 0) + 1
            self.seconds.append(time.monotonic() - start)
            i += 1

    def stats(self) -> dict:
        seconds = np.array(self.seconds) if self.seconds else np.zeros(1)
        return {"requests": len(self.seconds), "answers": self.answers,
                "answer_p50_ms": round(1e3 * float(np.percentile(seconds, 50)), 2)}


class Amplifying(Hostile):
    """Small gRPC Predicts (about 50 bytes) declaring [2^26, 1] from one float; counts the status codes."""

    def __init__(self, target: str):
        super().__init__()
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self._grpc = grpc
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = MODEL
        proto = tf.make_tensor_proto(np.array([1.0], np.float32))
        del proto.tensor_shape.dim[:]
        proto.tensor_shape.dim.add(size=1 << 26)
        proto.tensor_shape.dim.add(size=1)
        proto.ClearField("tensor_content")
        proto.float_val.append(1.0)
        self.request.inputs["x"].CopyFrom(proto)
        self.request_bytes = self.request.ByteSize()
        self.answers: dict[str, int] = {}

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.stub.Predict(self.request, timeout=30)
                code = "OK"
            except self._grpc.RpcError as e:
                code = e.code().name
            self.answers[code] = self.answers.get(code, 0) + 1

    def stats(self) -> dict:
        return {"request_bytes": self.request_bytes, "answers": self.answers}


def hostile_clients(scenario: str, rest: str, grpc_target: str, args: argparse.Namespace) -> dict[str, Hostile]:
    half = b"POST /v1/models/" + MODEL.encode() + b":predict HTTP/1.1\r\nHost: x\r\n"
    clients: dict[str, Callable[[], Hostile]] = {
        "silent_rest": lambda: HeldConnections(rest, args.silent, half),
        "silent_grpc": lambda: HeldConnections(grpc_target, max(1, args.silent // 10), b""),
        "slow_senders": lambda: HeldConnections(rest, args.slow, half + b"X-Padding: " + b"a" * 200, drip=0.2),
        "huge_headers": lambda: HugeHeaders(rest),
        "amplifying": lambda: Amplifying(grpc_target),
    }
    chosen = {"baseline": [], "silent": ["silent_rest", "silent_grpc"], "slow_senders": ["slow_senders"],
              "huge_headers": ["huge_headers"], "amplifying": ["amplifying"], "all": list(clients)}[scenario]
    return {name: clients[name]() for name in chosen}


# --------------------------------------------------------------------------- run


def good_clients(rest: str, grpc_target: str, seconds: float, server: psutil.Process) -> dict:
    """The good REST and gRPC clients, batch 1, one request at a time each, at the same time."""
    body = json.dumps({"instances": [1.0]}).encode()
    makers = {"rest": http_client_call(rest, f"/v1/models/{MODEL}:predict", body),
              "grpc": grpc_call(grpc_target, grpc_request(MODEL, {"x": np.array([1.0], np.float32)}))}
    results: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda n=name, m=make: results.__setitem__(n, run_cell(m, 1, seconds, None)))
               for name, make in makers.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_scenario(scenario: str, rest: str, grpc_target: str, args: argparse.Namespace, server: psutil.Process,
                 sampler: Sampler) -> dict:
    sampler.scenario = scenario
    contention = Contention([psutil.Process(), server])
    contention.start()
    hostile = {name: client.start() for name, client in hostile_clients(scenario, rest, grpc_target, args).items()}
    if hostile:
        time.sleep(min(1.0, args.seconds / 4))  # let the hostile clients take hold
    good = good_clients(rest, grpc_target, args.seconds, server)
    hostile_stats = {name: client.stop() for name, client in hostile.items()}
    return {"scenario": scenario, "good": good, "hostile": hostile_stats, "load": load(), **contention.stop()}


def summary(report: dict) -> dict:
    """The issue's "Done when" for the silent scenario: the good client's p99 < 10 ms, closed within the timeout."""
    silent = next((r for r in report["scenarios"] if r["scenario"] == "silent"), None)
    if silent is None:
        return {}
    held = silent["hostile"]["silent_rest"]
    return {"silent_connections": held["connections"],
            "good_p99_ms": {k: v["p99_ms"] for k, v in silent["good"].items()},
            "p99_under_10ms": all(v["p99_ms"] < 10 for v in silent["good"].values()),
            "longest_silent_lifetime_s": held["lifetime_max_s"],
            "closed_within_timeout": held["lifetime_max_s"] <= report["header_timeout_s"] + 1.0}


def markdown(report: dict) -> str:
    lines = [f"# Serving under hostile clients ({report['date']})", "",
             "`python -m bench.serving_hostile " + " ".join(report["argv"]) + "`: a good REST and a good gRPC "
             "client (batch 1, one request at a time each) against TF Serving's half_plus_two, "
             f"{report['seconds']:g} s per scenario, the server's default limits with --request_header_timeout_seconds="
             f"{report['header_timeout_s']:g}. {report['machine']}.", ""]
    s = report.get("summary")
    if s:
        lines += [f"**Done when** ({s['silent_connections']} silent REST connections held): good p99 "
                  f"REST {s['good_p99_ms']['rest']} ms, gRPC {s['good_p99_ms']['grpc']} ms "
                  f"({'under' if s['p99_under_10ms'] else 'NOT under'} 10 ms); the longest a silent connection "
                  f"lived: {s['longest_silent_lifetime_s']} s "
                  f"({'within' if s['closed_within_timeout'] else 'NOT within'} the timeout + 1 s).", ""]
    lines += ["| scenario | REST p50 / p99 ms | gRPC p50 / p99 ms | good errors | server RSS max MB | fds max "
              "| load | other CPU % | steal % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["scenarios"]:
        samples = [x for x in report["samples"] if x["scenario"] == r["scenario"]]
        rss = max((x["rss_mb"] for x in samples), default=float("nan"))
        fds = max((x["fds"] for x in samples), default=0)
        g = r["good"]
        lines.append(f"| {r['scenario']} | {g['rest']['p50_ms']} / {g['rest']['p99_ms']} | {g['grpc']['p50_ms']} / "
                     f"{g['grpc']['p99_ms']} | {g['rest']['errors'] + g['grpc']['errors']} | {rss} | {fds} | "
                     f"{r['load']} | {r['other_pct']} | {r['steal_pct']} |")
    lines += ["", "What the hostile clients got:", ""]
    for r in report["scenarios"]:
        for name, stats in r["hostile"].items():
            lines.append(f"- {r['scenario']} / {name}: {json.dumps(stats)}")
    if "server_log_bytes" in report:
        lines += ["", f"The server's log over the whole run: {report['server_log_bytes']:,} bytes, "
                      f"{report['server_log_warnings']} WARNING lines (each kind of refusal is logged once, then "
                      "summarised at most once per 10 s)."]
    lines += ["", "![RSS and descriptors over time](serving_hostile.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rss, ax_fds) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t = [x["t"] for x in report["samples"]]
    ax_rss.plot(t, [x["rss_mb"] for x in report["samples"]])
    ax_fds.plot(t, [x["fds"] for x in report["samples"]], color="tab:orange")
    for r in report["scenarios"]:
        at = [x["t"] for x in report["samples"] if x["scenario"] == r["scenario"]]
        if at:
            for ax in (ax_rss, ax_fds):
                ax.axvline(at[0], color="grey", lw=0.5)
            ax_fds.text(at[0], ax_fds.get_ylim()[1] * 0.9, r["scenario"], fontsize=7, rotation=90, va="top")
    ax_rss.set_ylabel("server RSS (MB)")
    ax_fds.set_ylabel("open descriptors")
    ax_fds.set_xlabel("seconds")
    fig.suptitle("python -m serving under hostile clients")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        process, rest, grpc_target = start_server(workdir, args.header_timeout)
        server = psutil.Process(process.pid)
        sampler = Sampler(process.pid)
        sampler.start()
        report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "argv": list(sys.argv[1:] if argv is None else argv), "seconds": args.seconds,
                  "header_timeout_s": args.header_timeout,
                  "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                  "scenarios": [], "samples": sampler.samples}
        try:
            for scenario in args.scenarios:
                report["scenarios"].append(run_scenario(scenario, rest, grpc_target, args, server, sampler))
                print(json.dumps(report["scenarios"][-1]), flush=True)
        finally:
            sampler.stop()
            process.terminate()
            process.wait(60)
            with open(os.path.join(workdir, "server.log")) as f:
                log = f.read()
        report["server_log_bytes"] = len(log.encode())
        report["server_log_warnings"] = sum(" WARNING " in line for line in log.splitlines())
    report["summary"] = summary(report)
    write_json(args.out + ".json", report)
    write_atomically(args.out + ".md", markdown(report))
    plot(report, args.out + ".png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
