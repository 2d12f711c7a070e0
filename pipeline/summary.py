"""What a run did, read back from ML Metadata: per-component state and time, AUCs, blessing, push, warm start."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATES = {metadata_store_pb2.Execution.COMPLETE: "done", metadata_store_pb2.Execution.CACHED: "cached",
           metadata_store_pb2.Execution.FAILED: "failed", metadata_store_pb2.Execution.RUNNING: "running",
           metadata_store_pb2.Execution.NEW: "new", metadata_store_pb2.Execution.CANCELED: "canceled"}
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass
class ComponentRun:
    component: str
    state: str  # done, cached, failed, ...
    seconds: float
    outputs: dict[str, list[str]]  # output key -> artefact URIs


@dataclasses.dataclass
class RunSummary:
    pipeline_name: str
    run_id: str
    components: list[ComponentRun]
    metrics: dict[str, dict[str, float]]  # model output -> TFMA metric -> value (candidate, overall slice)
    blessed: bool | None
    pushed_to: str | None
    # The Trainer report's "warm_start": {"from": base model, "carried": {feature: rows}, "new": {feature: rows}}
    warm_start: dict[str, Any] | None = None

    def component(self, name: str) -> ComponentRun | None:
        return next((c for c in self.components if c.component == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: a metric TFMA could not compute as a finite number is ``None`` (its
        binary cross-entropy of an exact 0 or 1 was one, before ``eval_tf_example`` clipped them)."""
        data = dataclasses.asdict(self)
        data["metrics"] = {output: {name: value if math.isfinite(value) else None for name, value in metrics.items()}
                           for output, metrics in self.metrics.items()}
        return data

    def format(self) -> str:
        lines = [f"pipeline {self.pipeline_name}, run {self.run_id}", f"  {'component':<32} {'state':<8} {'time':>8}"]
        lines += [f"  {c.component:<32} {c.state:<8} {c.seconds:7.1f}s" for c in self.components]
        lines.append(f"  {'total':<32} {'':<8} {sum(c.seconds for c in self.components):7.1f}s")
        if self.metrics:  # read by TFMA: pipeline.evaluation (TFMA) is loaded already
            from pipeline.evaluation import GROUP_AUC_NAME

            shown_names = ("auc", GROUP_AUC_NAME, "binary_crossentropy", "calibration")
        for output, metrics in sorted(self.metrics.items()):
            shown = ", ".join(f"{name} {metrics[name]:.4f}" for name in shown_names if name in metrics)
            lines.append(f"eval {output}: {shown}")
        if self.warm_start is not None:
            lines.append(_warm_start_line(self.warm_start))
        if self.blessed is not None:
            lines.append(f"blessed: {'yes' if self.blessed else 'no'}")
        lines.append(f"pushed: {self.pushed_to or 'no'}")
        return "\n".join(lines)


def _warm_start_line(entry: dict[str, Any]) -> str:
    carried, new = entry.get("carried", {}), entry.get("new", {})
    rows = ", ".join(f"{name} {carried.get(name, 0)}/{new.get(name, 0)}" for name in sorted({*carried, *new}))
    return f"warm start: from {entry['from']}" + (f"; embedding rows carried/new: {rows}" if rows else "")


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def summarize(metadata_path: str, pipeline_name: str, run_id: str | None = None) -> RunSummary:
    """The latest run of ``pipeline_name`` (or run ``run_id``) in the SQLite MLMD at ``metadata_path``."""
    store = open_store(metadata_path)
    runs = [c for c in store.get_contexts_by_type("pipeline_run") if _pipeline_of(store, c) == pipeline_name]
    if run_id:
        runs = [c for c in runs if c.name == run_id]
    if not runs:
        raise ValueError(f"no run of pipeline '{pipeline_name}'{f' named {run_id}' if run_id else ''} "
                         f"in {metadata_path}")
    run = max(runs, key=lambda c: c.id)
    summary = RunSummary(pipeline_name, run.name, [], {}, None, None)
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = next((c.name.split(".", 1)[1] for c in store.get_contexts_by_execution(execution.id)
                     if c.type == "node"), execution.type)
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        outputs = _outputs(store, execution.id)
        summary.components.append(ComponentRun(node, _STATES.get(execution.last_known_state, "?"), seconds,
                                               {key: [a.uri for a in items] for key, items in outputs.items()}))
        if "model_run" in outputs:
            summary.warm_start = _trainer_warm_start(outputs["model_run"][0].uri)
        if "blessing" in outputs:
            summary.blessed = bool(outputs["blessing"][0].custom_properties["blessed"].int_value)
        if "evaluation" in outputs:
            summary.metrics = evaluation_metrics(outputs["evaluation"][0].uri)
        if "pushed_model" in outputs:
            pushed = outputs["pushed_model"][0].custom_properties
            if pushed["pushed"].int_value:
                summary.pushed_to = pushed["pushed_destination"].string_value
    return summary


def _trainer_warm_start(model_run_uri: str) -> dict[str, Any] | None:
    from pipeline.trainer import REPORT_FILE  # TensorFlow: only when the run has a Trainer

    path = os.path.join(model_run_uri, REPORT_FILE)
    if not os.path.isfile(path):  # the Trainer failed or runs elsewhere (gs://)
        return None
    with open(path) as f:
        return json.load(f).get("warm_start")


def _pipeline_of(store, run_context) -> str | None:
    # A run context is tied to its pipeline context through the run's executions.
    executions = store.get_executions_by_context(run_context.id)
    if not executions:
        return None
    return next((c.name for c in store.get_contexts_by_execution(executions[0].id) if c.type == "pipeline"), None)


def _outputs(store, execution_id: int) -> dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in _OUTPUT_EVENTS]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else "?"
        outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    return outputs


def evaluation_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """``{output: {metric: value}}`` of the candidate model on the overall slice."""
    import tensorflow_model_analysis as tfma  # heavy; only when there is an evaluation

    result = tfma.load_eval_result(evaluation_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            # TFMA's JSON form writes non-finite doubles as the strings "NaN", "Infinity", "-Infinity".
            return {output: {name: float(value["doubleValue"]) for name, value in by_key[""].items()
                             if "doubleValue" in value} for output, by_key in metrics.items()}
    return {}
