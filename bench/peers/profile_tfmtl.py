"""Where does tfmtl's MMoE training step spend its time? (issue #8, part 5, first cut)

One process (pinned like the peer runs, common.py), census train split, batch 256, the peer-benchmark
MMoE (8 experts (512, 256), towers (128,), embedding 4). Variants, each its own model, measured in
interleaved rounds (``--rounds`` x ``--steps`` steps per variant, after a warm-up fit) so machine noise hits
all alike; the figure is the median step time of ``model.fit`` (callback timestamps), as examples/s:

* ``base``: batch_norm=True, jit_compile=False, no training metrics, raw columns through
  ``make_dataset(shuffle=True)``, ``tfmtl.optimizers.Adam`` (the peer benchmark's tfmtl config)
* ``keras_adam``: the base model trained with ``keras.optimizers.Adam`` (unfused update)
* ``bn_off``: batch_norm=False
* ``auc_metrics``: tfmtl's default compile metrics (a 1000-threshold AUC per output)
* ``cached_input``: the base model fed from an in-memory cache of the same batches (no input pipeline work)
* ``encoded``: ``encoded_inputs=True`` model (vocabulary lookup / normalisation done beforehand, as a
  TFX-Transform user has it), cached batches
* ``encoded_xla``: the same with ``jit_compile=True``
* ``raw_xla``: the base model with ``jit_compile=True`` (fails if XLA cannot compile the string lookups)

Plus, outside fit: the input pipeline alone (batches/s from ``make_dataset``), the preprocessing layer alone
and the forward pass alone (``training=True``) on cached batches. ``--trace N`` then records N steps of
``base`` with the TensorFlow profiler and sums the op times per step by kind (matmul, optimizer update,
batch norm, input lookups/embedding, other) and the top ops (``op_breakdown`` in the JSON).

    .venv/bin/python -m bench.peers.profile_tfmtl --steps 100 --rounds 2 --trace 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import _report
from bench.peers import common


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--variants", default="base,keras_adam,bn_off,auc_metrics,cached_input,encoded,encoded_xla,raw_xla")
    p.add_argument("--trace", type=int, default=0, help="profile this many steps of 'base' op by op (0 = off)")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--cpus", default="0,1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-op-threads", type=int, default=1)
    p.add_argument("--omp-wait-policy", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    threads = common.pin_threads(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    from tfmtl.compat import keras
    from tfmtl.datasets.census import load_census
    from tfmtl.models import MMoE
    from tfmtl.optimizers import Adam

    splits = load_census(nrows=args.rows, numeric_encoding="scalar")  # as the peer comparison
    train_df, spec = splits.train, splits.spec
    tasks = ["income_50k", "never_married"]
    B, steps = 256, args.steps
    n_batches = steps * (args.rounds + 1) + args.warmup + 5
    cfg = dict(num_experts=8, expert_units=[512, 256], tower_units=[128], cross=None)

    def make(bn=True, encoded=False, jit=False, metrics=(), optimizer=Adam):
        keras.utils.set_random_seed(0)
        m = MMoE(spec, tasks, batch_norm=bn, encoded_inputs=encoded, **cfg)
        m.compile(optimizer=optimizer(1e-3), metrics=None if metrics is None else list(metrics), jit_compile=jit)
        return m

    live = lambda m: m.make_dataset(train_df, shuffle=True, batch_size=B, seed=0).repeat()  # noqa: E731

    # Cached raw batches and their encoded form (through a base model's preprocessing layer).
    base = make()
    cached_raw = live(base).take(n_batches).cache()
    for _ in cached_raw:
        pass
    prep = base.get_layer("preprocessing")
    enc_names = [f.name for f in spec.fields]
    num_names = [f.name for f in spec.numeric]

    def encode(x, y):
        e = prep(x)
        feats = {n: e["ids"][:, i] for i, n in enumerate(enc_names)}
        feats.update({n: e["dense"][:, i] for i, n in enumerate(num_names)})
        return feats, y

    cached_enc = cached_raw.map(encode).cache()
    for _ in cached_enc:
        pass

    variants = {}
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    builders = {
        "base": lambda: (base, lambda: live(base)),
        "keras_adam": lambda: (make(optimizer=keras.optimizers.Adam), None),
        "bn_off": lambda: (make(bn=False), None),
        "auc_metrics": lambda: (make(metrics=None), None),
        "cached_input": lambda: (make(), lambda: cached_raw.repeat()),
        "encoded": lambda: (make(encoded=True), lambda: cached_enc.repeat()),
        "encoded_xla": lambda: (make(encoded=True, jit=True), lambda: cached_enc.repeat()),
        "raw_xla": lambda: (make(jit=True), None),
    }
    errors = {}
    for name in wanted:
        try:
            model, ds_fn = builders[name]()
            ds_fn = ds_fn or (lambda m=model: live(m))
            it_ds = ds_fn()
            t0 = time.perf_counter()
            model.fit(it_ds.take(args.warmup), epochs=1, verbose=0)
            variants[name] = {"model": model, "ds": it_ds, "warmup_s": time.perf_counter() - t0, "steps": []}
            print(f"{name}: warm-up {variants[name]['warmup_s']:.1f}s", flush=True)
        except Exception as e:  # noqa: BLE001
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            print(f"{name}: FAILED {errors[name]}", flush=True)

    class Clock(keras.callbacks.Callback):
        def __init__(self, sink):
            super().__init__()
            self.sink = sink

        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.sink.append(time.perf_counter() - self.t)

    def report(rounds_done):
        res = {"command": ".venv/bin/python -m bench.peers.profile_tfmtl " + " ".join(sys.argv[1:]),
               "batch_size": B, "steps_per_round": steps, "rounds": rounds_done, "threads": threads,
               "load_avg": os.getloadavg(), "errors": errors, "variants": {}, "outside_fit": {}}
        for name, v in variants.items():
            s = np.array(v["steps"])
            res["variants"][name] = {"median_step_ms": round(1000 * float(np.median(s)), 2),
                                     "mean_step_ms": round(1000 * float(np.mean(s)), 2),
                                     "examples_per_s_median": round(B / float(np.median(s)), 1),
                                     "warmup_s": round(v["warmup_s"], 1), "n_steps": int(len(s))}
        for key, vals in extra.items():
            res["outside_fit"][key] = {"ms": [round(1000 * x, 2) for x in vals],
                                       "examples_per_s": round(B / float(np.median(vals)), 1)}
        base_ms = res["variants"].get("base", {}).get("median_step_ms")
        if base_ms:
            for v in res["variants"].values():
                v["vs_base"] = round(base_ms / v["median_step_ms"], 3)
        res.update(extra_report)
        print(f"PROFILE[{rounds_done}] " + json.dumps(res), flush=True)
        if args.out:
            _report.write_json(args.out, res)

    extra, extra_report = {}, {}
    prep_fn = tf.function(lambda x: prep(x))
    fwd_fn = tf.function(lambda x: base(x, training=True))
    xs = [x for x, _ in cached_raw.take(steps)]
    for r in range(args.rounds):
        order = list(variants)
        order = order[r % len(order):] + order[:r % len(order)]
        for name in order:
            v = variants[name]
            v["model"].fit(v["ds"].take(steps), epochs=1, verbose=0, callbacks=[Clock(v["steps"])])
        # Outside fit: input pipeline alone, preprocessing alone, forward alone (same round).
        t0 = time.perf_counter()
        for _ in live(base).take(steps):
            pass
        extra.setdefault("input_pipeline_s_per_batch", []).append((time.perf_counter() - t0) / steps)
        for fn, key in ((prep_fn, "preprocessing_s_per_batch"), (fwd_fn, "forward_train_mode_s_per_batch")):
            fn(xs[0])
            t0 = time.perf_counter()
            for x in xs:
                out = fn(x)
            tf.nest.map_structure(lambda t: t.numpy(), out)
            extra.setdefault(key, []).append((time.perf_counter() - t0) / len(xs))
        print(f"round {r + 1} done", flush=True)
        report(r + 1)
    if args.trace and "base" in variants:
        extra_report["op_breakdown"] = op_breakdown(variants["base"], args.trace)
        report(args.rounds)


def op_breakdown(variant: dict, steps: int) -> dict:
    """Traces ``steps`` training steps and sums the TensorFlow ops' own times per step, by kind."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="tfmtl_trace_")
    tf.profiler.experimental.start(logdir)
    variant["model"].fit(variant["ds"].take(steps), epochs=1, verbose=0)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
        space.ParseFromString(f.read())
    per_op = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_Compute"):  # the executor's op events (tf.data has its own lines)
                for event in line.events:
                    name = names.get(event.metadata_id, "?")
                    if not name.startswith(("ExecutorState", "ExecutorDone", "ParallelFor")):
                        per_op[name] += event.duration_ps / 1e9 / steps  # ms per step

    def kind(op: str) -> str:
        if op.startswith(("Adam/", "ResourceApplyAdam")) or ":ResourceApplyAdam" in op:
            return "optimizer update"
        if "MatMul" in op or "Einsum" in op:
            return "matmul / einsum"
        if "batch_normalization" in op:
            return "batch norm"
        if any(k in op for k in ("preprocessing", "embedding", "Lookup")):
            return "input lookups + embedding"
        return "other"

    kinds = collections.Counter()
    for op, ms in per_op.items():
        kinds[kind(op)] += ms
    return {"steps": steps, "ms_per_step_by_kind": {k: round(v, 2) for k, v in kinds.most_common()},
            "top_ops_ms_per_step": {k: round(v, 2) for k, v in per_op.most_common(15)}}



if __name__ == "__main__":
    main()
