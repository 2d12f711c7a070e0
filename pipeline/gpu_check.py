#!/usr/bin/env python
"""GPU check for tfmtl: run it as it is on a GPU machine (``python pipeline/gpu_check.py``).

1. TensorFlow sees the GPUs and runs a matmul on each.
2. ``model.fit`` of an MMoE on a census slice under MirroredStrategy over all GPUs, in
   float32 and in mixed_float16: losses finite, step time of each.
3. The TFX pipeline's Trainer on the GPUs: ``python -m pipeline run`` on a census slice
   with mixed_float16; the Trainer must report MirroredStrategy with one replica per GPU,
   and the pushed model must load.

Prints one JSON report (also written to ``--out``); exits 1 when a check fails. Without
a GPU it exits 2, unless ``--allow-cpu`` (then MirroredStrategy runs on two logical
CPUs, which checks the code path, not the hardware).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="census rows for the fit checks")
    parser.add_argument("--pipeline-rows", type=int, default=5_000, help="census rows for the pipeline check")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--allow-cpu", action="store_true", help="without GPUs, check on two logical CPUs")
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args()

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.allow_cpu:
        print(json.dumps({"gpus": 0, "error": "no GPU visible to TensorFlow"}))
        return 2
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    report: dict = {"tensorflow": tf.__version__, "gpus": [g.name for g in gpus],
                    "build": {k: v for k, v in tf.sysconfig.get_build_info().items() if "version" in k}, "checks": {}}
    checks = [("matmul", _matmul), ("fit_float32", lambda: _fit(args.rows, None)),
              ("fit_mixed_float16", lambda: _fit(args.rows, "mixed_float16"))]
    if not args.skip_pipeline:
        checks.append(("pipeline_trainer", lambda: _pipeline(args.pipeline_rows, bool(gpus))))
    ok = True
    for name, check in checks:
        start = time.monotonic()
        try:
            result = {"ok": True, **check()}
        except Exception as error:  # report every check, then fail
            result = {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-2000:]}
        result["seconds"] = round(time.monotonic() - start, 1)
        report["checks"][name] = result
        ok &= result["ok"]
        print(f"{name}: {'ok' if result['ok'] else 'FAILED'} ({result['seconds']} s)", flush=True)
    report["ok"] = ok
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


def _devices() -> list[str]:
    import tensorflow as tf

    return [d.name for d in (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))]


def _matmul() -> dict:
    import tensorflow as tf

    results = {}
    for device in _devices():
        with tf.device(device):
            x = tf.random.normal([2048, 2048])
            start = time.perf_counter()
            value = float(tf.reduce_sum(tf.matmul(x, x)).numpy())
            milliseconds = round(1e3 * (time.perf_counter() - start), 1)
            results[device] = {"finite": bool(tf.math.is_finite(value)), "ms": milliseconds}
    assert all(r["finite"] for r in results.values()), results
    return {"devices": results}


def _fit(rows: int, policy: str | None) -> dict:
    import numpy as np
    import tensorflow as tf

    from tfmtl.compat import keras
    from tfmtl.datasets import census
    from tfmtl.models import build_model

    splits = census.load_census(nrows=rows)
    strategy = tf.distribute.MirroredStrategy(_devices())
    previous = keras.mixed_precision.global_policy()
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            model = build_model("mmoe", splits.spec, num_experts=4, expert_units=[64], tower_units=[16])
            model.compile()
        batch = 256 * strategy.num_replicas_in_sync
        model.fit(splits.train, epochs=1, batch_size=batch, verbose=0)  # warm-up: tracing
        start = time.perf_counter()
        history = model.fit(splits.train, epochs=1, batch_size=batch, verbose=0).history
        seconds = time.perf_counter() - start
        metrics = model.evaluate(splits.validation, verbose=0, return_dict=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.isfinite(history["loss"][0]), history
    steps = -(-len(splits.train) // batch)
    return {"replicas": strategy.num_replicas_in_sync, "policy": policy or "float32", "loss": history["loss"][0],
            "ms_per_step": round(1e3 * seconds / steps, 2),
            "validation_auc": {k: v for k, v in metrics.items() if k.endswith("auc")}}


def _pipeline(rows: int, on_gpu: bool) -> dict:
    run_dir = tempfile.mkdtemp(prefix="tfmtl-gpu-check-")
    summary_path = os.path.join(run_dir, "summary.json")
    command = [sys.executable, "-m", "pipeline", "run", "--rows", str(rows), "--run-dir", run_dir,
               "--mixed-precision", "mixed_float16", "--json", summary_path, "--model-kwargs",
               json.dumps({"num_experts": 4, "expert_units": [64], "tower_units": [16]})]
    if not on_gpu:
        command += ["--distribution", "none"]  # the pipeline's process has no logical CPU split
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    with open(summary_path) as f:
        summary = json.load(f)
    trainer = next(c for c in summary["components"] if c["component"] == "Trainer")
    with open(os.path.join(trainer["outputs"]["model_run"][0], "training.json")) as f:
        training = json.load(f)
    if on_gpu:
        import tensorflow as tf

        expected = len(tf.config.list_physical_devices("GPU"))
        assert training["strategy"] == "MirroredStrategy" and training["replicas"] == expected, training
    import tensorflow as tf

    assert "serving_default" in tf.saved_model.load(summary["pushed_to"]).signatures
    return {"training": {k: training[k] for k in ("strategy", "replicas", "mixed_precision")},
            "component_seconds": {c["component"]: round(c["seconds"], 1) for c in summary["components"]},
            "metrics": {k: v.get("auc") for k, v in summary["metrics"].items()}, "pushed_to": summary["pushed_to"]}


if __name__ == "__main__":
    sys.exit(main())
