"""tfmtl's own multi-task models on the census task, same protocol as the peers (issue #8).

Runs in the main venv (``.venv``, tfmtl installed/importable from the repo):

    .venv/bin/python -m bench.peers.run_tfmtl --rows 20000 --epochs 1            # smoke test
    .venv/bin/python -m bench.peers.run_tfmtl --model mmoe --jit-compile         # the tfmtl-xla variant

Data: the split of ``census_data.py`` (= ``tfmtl.datasets.census.load_census()``: train.csv.gz trains,
validation = test.sample(frac=0.5, random_state=1), test = the rest) read from the same files; features:
every column but ``income``, ``marital_stat`` and ``instance_weight``, with the same categorical/numeric
split (``census_spec``: the 5 integer-coded columns categorical). Raw columns go into the model: tfmtl's
preprocessing layer (vocabulary lookup, log1p for skewed numerics, standardisation) is part of the model,
as a tfmtl user runs it. Differences to the peers' preprocessing, tfmtl's own rules: numerics are log1p'd
only when skewness > 2 (so not ``age``/``weeks_worked_in_year``), vocabulary ids are ordered by
frequency with one OOV id (same table sizes).

Models (defaults; flags in common.py):

* shared_bottom: ``SharedBottom(spec, tasks, bottom_units=(512, 256), tower_units=(128,))``
* mmoe: ``MMoE(spec, tasks, num_experts=8, expert_units=(512, 256), tower_units=(128,), cross=None)`` (linear
  softmax gate, no DCN, as DeepCTR's)
* ple: ``PLE(spec, tasks, num_levels=1, specific_experts=4, shared_experts=4, expert_units=(512, 256),
  tower_units=(128,))``
* esmm: ``ESMM(spec, tasks=["income_50k", "income_and_never_married"], tower_units=(512, 256, 128))``: the
  funnel of the peers (ctr = income_50k, ctcvr = income_50k AND never_married); test AUCs: income_50k from
  ``ctr``, never_married from ``cvr``, plus ``ctcvr``.

All: embedding dim 4, batch_norm=True, dropout 0, ``tfmtl.optimizers.Adam(lr)`` (compile's default: Keras'
Adam with a fused update), loss = sum of the per-output BCEs (tfmtl's
default), no training metrics (``metrics=[]``: the peers compute none during training; tfmtl's default
would add a 1000-threshold AUC per output), batch 256. Each epoch is one
``model.fit(model.make_dataset(train_df, shuffle=True, batch_size=256, seed=seed*1000+epoch), epochs=1)``
call; its training pass is timed from ``on_epoch_begin`` to ``on_epoch_end`` (dataset building and
validation excluded, as for the peers). ``--jit-compile`` compiles with ``jit_compile=True`` (library
name ``tfmtl-xla``).
"""

from __future__ import annotations

import os
import time

from bench.peers import census_data, common

FUNNEL_LABEL = "income_and_never_married"


def build_model(name, args, spec, tasks):
    from tfmtl.models import ESMM, PLE, MMoE, SharedBottom

    kw = dict(batch_norm=args.bn, dropout=0.0)
    expert, tower = list(args.expert_units), list(args.tower_units)
    if name == "shared_bottom":
        cfg = dict(bottom_units=expert, tower_units=tower)
        model = SharedBottom(spec, tasks, **cfg, **kw)
    elif name == "mmoe":
        cfg = dict(num_experts=args.mmoe_experts, expert_units=expert, gate_units=[], tower_units=tower,
                   cross=None)  # DeepCTR's MMoE has no cross network
        model = MMoE(spec, tasks, **cfg, **kw)
    elif name == "ple":
        cfg = dict(num_levels=args.ple_levels, specific_experts=args.ple_specific, shared_experts=args.ple_shared,
                   expert_units=expert, gate_units=[], tower_units=tower)
        model = PLE(spec, tasks, **cfg, **kw)
    elif name == "esmm":
        cfg = dict(tower_units=expert + tower)
        model = ESMM(spec, tasks, **cfg, **kw)
    else:
        raise ValueError(name)
    return model, {**cfg, **kw}


def run_one(name: str, args, threads: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start, phases = time.perf_counter(), common.Phases()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    import tfmtl
    from tfmtl.compat import keras
    from tfmtl.datasets import census
    from tfmtl.features import FeatureSpec, Label
    from tfmtl.optimizers import Adam

    data_dir = args.data_dir or census_data.default_data_dir()
    train_df = census.read_census_csv(os.path.join(data_dir, "train.csv.gz"), args.rows)
    held_out = census.read_census_csv(os.path.join(data_dir, "test.csv.gz"), args.rows)
    val_df = held_out.sample(frac=0.5, random_state=census_data.VALIDATION_SEED)
    test_df = held_out.drop(val_df.index)
    frames = []
    for df in (train_df, val_df, test_df):
        df = df.reset_index(drop=True)
        df[FUNNEL_LABEL] = ((df["income"] == "50000+.") & (df["marital_stat"] == "Never married")).astype("int64")
        frames.append(df)
    train_df, val_df, test_df = frames
    labels = census.LABELS + (Label(FUNNEL_LABEL),)
    spec = FeatureSpec.from_dataframe(train_df, labels=labels, categorical=census.INTEGER_CODED,
                                      numeric=census.NUMERIC, exclude=census.NOT_FEATURES,
                                      embedding_dim=args.embedding_dim,
                                      numeric_encoding="scalar")  # the dense inputs DeepCTR and torch-rechub get
    expected = [c for c in train_df.columns if c not in census_data.NOT_FEATURES + (FUNNEL_LABEL,)]
    if sorted(spec.feature_names) != sorted(expected):
        raise SystemExit(f"feature set differs from the peers': {sorted(set(spec.feature_names) ^ set(expected))}")

    def label_matrix(df):
        return np.stack([(df[c] == p).to_numpy() for c, p in census_data.LABEL_COLUMNS.values()], 1).astype(np.float32)

    y_val, y_test = label_matrix(val_df), label_matrix(test_df)
    tasks = [census_data.TASKS[0], FUNNEL_LABEL] if name == "esmm" else list(census_data.TASKS)

    keras.utils.set_random_seed(args.seed)
    model, cfg = build_model(name, args, spec, tasks)
    model.compile(optimizer=Adam(learning_rate=args.lr), metrics=[],
                  jit_compile=bool(args.jit_compile))

    def predict(df):
        p = model.predict(df, batch_size=args.infer_batch, verbose=0)
        if name == "esmm":
            return {"income_50k": p["ctr"].ravel(), "never_married": p["cvr"].ravel(), "ctcvr": p["ctcvr"].ravel()}
        return {t: p[t].ravel() for t in census_data.TASKS}

    clock = common.StepClock()
    epoch_seconds, best = [], common.BestEpoch()
    last_loss = {}
    track = common.keras_epoch_timer(keras, clock, epoch_seconds,
                                     lambda epoch, logs: last_loss.update(loss=logs.get("loss", float("nan"))))
    phases.mark("setup")
    for epoch in range(args.epochs):
        ds = model.make_dataset(train_df, shuffle=True, batch_size=args.batch_size, seed=args.seed * 1000 + epoch)
        model.fit(ds, epochs=1, verbose=0, callbacks=[track])
        phases.mark("train")
        val = common.aucs(y_val, predict(val_df), census_data.TASKS)
        print(f"[{LIBRARY}/{name}] epoch {epoch + 1}: train {epoch_seconds[-1]:.1f}s loss {last_loss['loss']:.4f} "
              f"val AUC {val}", flush=True)
        best.record(val, model.get_weights)
        phases.mark("validation")
    model.set_weights(best.weights)
    test_pred = predict(test_df)
    test_auc = common.aucs(y_test, test_pred, census_data.TASKS)
    if name == "esmm":
        from sklearn.metrics import roc_auc_score

        test_auc["ctcvr"] = round(float(roc_auc_score(y_test.prod(axis=1), test_pred["ctcvr"])), 6)

    train_eps, basis = common.train_rate(epoch_seconds, len(train_df), clock, args.batch_size, args.warmup_steps)
    phases.mark("test")

    # Inference, batch args.infer_batch, over the test split, after one warm-up pass.
    predict(test_df)
    t0 = time.perf_counter()
    predict(test_df)
    infer_api = len(test_df) / (time.perf_counter() - t0)

    n_test, b = len(test_df), args.infer_batch
    raw = spec.feature_arrays(test_df)
    batches = [{k: tf.constant(v[i:i + b]) for k, v in raw.items()} for i in range(0, n_test, b)]
    call = tf.function(lambda x: model(x, training=False), jit_compile=bool(args.jit_compile) or None)
    for batch in (batches[0], batches[-1]):
        call(batch)
    t0 = time.perf_counter()
    for batch in batches:
        out = call(batch)
    _ = {k: v.numpy() for k, v in out.items()}
    infer_call = n_test / (time.perf_counter() - t0)
    phases.mark("inference")

    cfg.update(embedding_dim=args.embedding_dim, optimizer=f"tfmtl.optimizers.Adam(lr={args.lr})",
               batch_size=args.batch_size,
               loss="sum of per-output BCEs (tfmtl default)", metrics="none during training",
               jit_compile=bool(args.jit_compile), tasks=tasks,
               inputs="raw columns; vocabulary lookup and normalisation inside the model")
    return {
        "library": LIBRARY, "library_version": getattr(tfmtl, "__version__", "repo"), "framework": "tensorflow",
        "framework_version": f"tensorflow {tf.__version__}, tf-keras {keras.__version__}",
        "model": name, "seed": args.seed, "config": cfg, "params": int(model.count_params()),
        "epochs": args.epochs, "best_epoch": best.epoch, "val_auc_history": best.history,
        "test_auc": test_auc,
        "train_examples_per_s": round(train_eps, 1), "train_rate_basis": basis,
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "infer_batch": args.infer_batch, "infer_examples_per_s": round(infer_api, 1),
        "infer_api": "model.predict(DataFrame, batch_size=infer_batch)",
        "infer_examples_per_s_model_call": round(infer_call, 1),
        "peak_rss_mib": common.peak_rss_mib(), "threads": threads,
        "rows": {"train": len(train_df), "validation": len(val_df), "test": len(test_df)},
        "data_dir": data_dir, "wall_s": round(time.perf_counter() - t_start, 1), "phase_seconds": phases.seconds,
        "env": {"TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS"),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")},
    }


LIBRARY = "tfmtl"


def main():
    global LIBRARY
    parser = common.base_parser(__doc__.split("\n")[0], census_data.add_data_args)
    parser.add_argument("--jit-compile", action="store_true", help="compile(jit_compile=True); library 'tfmtl-xla'")
    args = parser.parse_args()
    if args.jit_compile:
        LIBRARY = "tfmtl-xla"
    common.run_main("bench.peers.run_tfmtl", run_one, args)

if __name__ == "__main__":
    main()
