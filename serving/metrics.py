"""Prometheus metrics, served at ``/monitoring/prometheus/metrics`` (TF Serving's path).

Each app gets its own registry, so several servers in one process (tests,
embedding) do not share or clash over counters.
"""

from __future__ import annotations

import bisect
import re
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.manager import VersionState

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEFAULT_PATH = "/monitoring/prometheus/metrics"

# TF Serving's latency buckets are exponential in microseconds (10 us * 1.8^i); the same here.
_TF_LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))
_TF_API = {"predict": "predict", "classify": "classify", "regress": "regress", "status": "GetModelStatus",
           "metadata": "GetModelMetadata"}
_STATUS_NAMES = {200: "OK", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED",
                 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request counts and latencies, batch sizes, model loads and available versions.

    With ``tf_serving_names`` the request count and latency are also written
    under TF Serving's names (``:tensorflow:serving:request_count``,
    ``:tensorflow:serving:request_latency`` in microseconds), so dashboards
    built for TF Serving keep working.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, tf_serving_names: bool = False):
        self.registry = registry or CollectorRegistry()
        self.tf_serving_names = tf_serving_names
        self._tf_counts: dict[tuple[str, str], int] = {}
        self._tf_latency: dict[tuple[str, str], list[float]] = {}  # per-bucket counts, then sum
        self._lock = threading.Lock()
        self.requests = Counter("tfmtl_serving_requests", "REST requests by model, API and HTTP status.",
                                ["model", "api", "status"], registry=self.registry)
        self.latency = Histogram("tfmtl_serving_request_latency_seconds", "REST request latency.",
                                 ["model", "api"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("tfmtl_serving_batch_size", "Rows per batched model call.",
                                    ["model"], buckets=_BATCH_BUCKETS, registry=self.registry)
        self.model_loads = Counter("tfmtl_serving_model_loads", "Model version loads by outcome.",
                                   ["model", "outcome"], registry=self.registry)
        self.warmup_records = Counter("tfmtl_serving_warmup_records", "Warmup records replayed.",
                                      ["model"], registry=self.registry)
        self.available_versions = Gauge("tfmtl_serving_available_versions", "Versions currently AVAILABLE.",
                                        ["model"], registry=self.registry)

    def observe_request(self, model: str, api: str, status: int, seconds: float) -> None:
        self.requests.labels(model, api, str(status)).inc()
        self.latency.labels(model, api).observe(seconds)
        if self.tf_serving_names:
            micros = seconds * 1e6
            with self._lock:
                key = (model, _STATUS_NAMES.get(status, "UNKNOWN"))
                self._tf_counts[key] = self._tf_counts.get(key, 0) + 1
                counts = self._tf_latency.setdefault((model, _TF_API.get(api, api)),
                                                     [0] * (len(_TF_LATENCY_BUCKETS_US) + 1) + [0.0])
                counts[bisect.bisect_left(_TF_LATENCY_BUCKETS_US, micros)] += 1
                counts[-1] += micros

    def on_model_event(self, event: str, model: str, state: VersionState) -> None:
        """A ModelManager listener."""
        if event == "available":
            self.model_loads.labels(model, "ok").inc()
            self.warmup_records.labels(model).inc(state.warmup_records)
            self.available_versions.labels(model).inc()
        elif event == "failed":
            self.model_loads.labels(model, "error").inc()
        elif event == "unloaded":
            self.available_versions.labels(model).dec()

    def render(self) -> bytes:
        text = generate_latest(self.registry)
        return text + self._render_tf_serving() if self.tf_serving_names else text

    def _render_tf_serving(self) -> bytes:
        with self._lock:
            counts, latency = dict(self._tf_counts), {k: list(v) for k, v in self._tf_latency.items()}
        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        lines += [f':tensorflow:serving:request_count{{model_name="{m}",status="{s}"}} {n}'
                  for (m, s), n in sorted(counts.items())]
        lines.append("# TYPE :tensorflow:serving:request_latency histogram")
        for (model, api), values in sorted(latency.items()):
            labels = f'model_name="{model}",API="{api}",entrypoint="REST"'
            cumulative = 0
            for bound, n in zip([*_TF_LATENCY_BUCKETS_US, "+Inf"], values[:-1]):
                cumulative += n
                le = bound if bound == "+Inf" else f"{bound:.0f}"
                lines.append(f':tensorflow:serving:request_latency_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {values[-1]:.0f}")
            lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {cumulative}")
        return ("\n".join(lines) + "\n").encode()


def load_monitoring_config(path: str) -> tuple[str, bool]:
    """(metrics path, TF Serving names on) from a text-format ``MonitoringConfig`` file.

    Raises:
        ConfigError: the file cannot be read or its path is not absolute.
    """
    from serving.config import ConfigError

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read --monitoring_config_file {path}: {e}") from None
    block = re.search(r"prometheus_config\s*:?\s*\{([^}]*)\}", text)
    if block is None or not re.search(r"\benable\s*:\s*true\b", block.group(1)):
        return DEFAULT_PATH, False
    found = re.search(r'\bpath\s*:\s*"([^"]*)"', block.group(1))
    metrics_path = found.group(1) if found and found.group(1) else DEFAULT_PATH
    if not metrics_path.startswith("/"):
        raise ConfigError(f"--monitoring_config_file {path}: prometheus_config path {metrics_path!r} must start "
                          f"with '/'")
    return metrics_path, True
