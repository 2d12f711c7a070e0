"""DeepCTR's multi-task models on the census task (issue #8, peer benchmark).

Runs inside bench/peers/.venv-deepctr (see setup_env.sh): DeepCTR 0.9.4 on
TensorFlow 2.16.2 with tf-keras 2.16 via ``TF_USE_LEGACY_KERAS=1`` (DeepCTR
imports ``tensorflow.keras``; with that variable TF 2.16 routes it to tf_keras,
as DeepCTR's own CI does).

Example (smoke test)::

    bench/peers/.venv-deepctr/bin/python -m bench.peers.run_deepctr --rows 20000 --epochs 1

Models and their config (defaults; flags in common.py):

* shared_bottom: ``SharedBottom(bottom_dnn_hidden_units=(512, 256), tower_dnn_hidden_units=(128,))``
* mmoe: ``MMOE(num_experts=8, expert_dnn_hidden_units=(512, 256), tower_dnn_hidden_units=(128,),
  gate_dnn_hidden_units=())`` (gate = one softmax Dense on the input)
* ple: ``PLE(num_levels=1, specific_expert_num=4, shared_expert_num=4, expert_dnn_hidden_units=(512, 256),
  tower_dnn_hidden_units=(128,), gate_dnn_hidden_units=())``
* esmm: ``ESMM(tower_dnn_hidden_units=(512, 256, 128))``: two towers on the shared embeddings, no shared
  bottom (DeepCTR's ESMM has none). It needs a funnel: labels (ctr, ctcvr) with ctcvr = ctr * cvr. Census has
  none, so ctr = income_50k, cvr = never_married, ctcvr = income_50k AND never_married; test AUCs:
  income_50k from the ctr output, never_married from the internal cvr output, plus ctcvr.

All: embedding dim 4 (DeepCTR's default init RandomNormal(0, 1e-4)), ReLU, batch norm in every DNN
(``dnn_use_bn=True``, Dense -> BN -> ReLU, as torch-rechub's MLP, which always has it, and tfmtl's census
config; ``--no-bn`` gives DeepCTR's default), no dropout, ``l2_reg_embedding=0`` and ``l2_reg_dnn=0``
(DeepCTR's default embedding L2 1e-5 is switched off so that every library trains with plain Adam),
Adam(lr) on the sum of the two binary cross-entropies, batch 256, shuffled each epoch.
"""

from __future__ import annotations

import os
import time

from bench.peers import census_data, common

LIBRARY = "deepctr"


def _quiet_version_check():
    """DeepCTR starts a thread at import that queries PyPI for a newer release; keep the run offline."""
    import requests

    class _NoResponse:
        status_code = 0
        text = "{}"

    requests.get = lambda *a, **k: _NoResponse()


def deepctr_features(data, embedding_dim: int):
    """DeepCTR feature columns for the census split, and ``split -> {input name: array}`` for its models."""
    import numpy as np
    from deepctr.feature_column import DenseFeat, SparseFeat, get_feature_names

    columns = [SparseFeat(c, vocabulary_size=data.vocab_sizes[c], embedding_dim=embedding_dim)
               for c in data.categorical_names] + [DenseFeat(c, 1) for c in data.numeric_names]
    names = get_feature_names(columns)

    def inputs(split):
        feats = {c: v.astype(np.int32) for c, v in split.categorical.items()}
        feats.update(split.numeric)
        return {n: feats[n] for n in names}

    return columns, inputs


def build_model(name, args, feature_columns, seed):
    from deepctr.models.multitask import ESMM, MMOE, PLE, SharedBottom

    common_kw = dict(l2_reg_embedding=0.0, l2_reg_dnn=0.0, seed=seed, dnn_dropout=0.0, dnn_activation="relu",
                     dnn_use_bn=args.bn)
    tasks = census_data.TASKS
    if name == "shared_bottom":
        cfg = dict(bottom_dnn_hidden_units=args.expert_units, tower_dnn_hidden_units=args.tower_units)
        model = SharedBottom(feature_columns, task_types=("binary", "binary"), task_names=tasks, **cfg, **common_kw)
    elif name == "mmoe":
        cfg = dict(num_experts=args.mmoe_experts, expert_dnn_hidden_units=args.expert_units,
                   tower_dnn_hidden_units=args.tower_units, gate_dnn_hidden_units=())
        model = MMOE(feature_columns, task_types=("binary", "binary"), task_names=tasks, **cfg, **common_kw)
    elif name == "ple":
        cfg = dict(num_levels=args.ple_levels, specific_expert_num=args.ple_specific,
                   shared_expert_num=args.ple_shared, expert_dnn_hidden_units=args.expert_units,
                   tower_dnn_hidden_units=args.tower_units, gate_dnn_hidden_units=())
        model = PLE(feature_columns, task_types=("binary", "binary"), task_names=tasks, **cfg, **common_kw)
    elif name == "esmm":
        cfg = dict(tower_dnn_hidden_units=tuple(args.expert_units) + tuple(args.tower_units))
        model = ESMM(feature_columns, task_types=("binary", "binary"), task_names=("ctr", "ctcvr"), **cfg,
                     **common_kw)
    else:
        raise ValueError(name)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    cfg.update(embedding_dim=args.embedding_dim, dnn_use_bn=args.bn, dnn_dropout=0.0, l2_reg_embedding=0.0,
               l2_reg_dnn=0.0, optimizer=f"Adam(lr={args.lr})", batch_size=args.batch_size,
               loss="sum of binary cross-entropies")
    return model, cfg


def run_one(name: str, args, threads: dict) -> dict:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start, phases = time.perf_counter(), common.Phases()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    _quiet_version_check()
    import deepctr
    import tf_keras
    keras = tf.keras
    if "tf_keras" not in str(keras.Model):
        raise SystemExit("tf.keras is not tf_keras: set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported")

    data = census_data.load(args.data_dir, args.rows)
    keras.utils.set_random_seed(args.seed)

    feature_columns, inputs = deepctr_features(data, args.embedding_dim)
    x_train, x_val, x_test = inputs(data.train), inputs(data.validation), inputs(data.test)
    y = data.train.labels
    if name == "esmm":
        y_train = [y[:, 0], y[:, 0] * y[:, 1]]  # ctr = income, ctcvr = income AND never_married
    else:
        y_train = [y[:, 0], y[:, 1]]

    model, cfg = build_model(name, args, feature_columns, args.seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr),
                  loss=["binary_crossentropy", "binary_crossentropy"])
    if name == "esmm":
        ctcvr_layer = model.get_layer("ctcvr")  # Multiply([ctr_pred, cvr_pred])
        eval_model = keras.Model(model.inputs, [model.outputs[0], ctcvr_layer.input[1], model.outputs[1]])

        def predict(x):
            ctr, cvr, ctcvr = eval_model.predict(x, batch_size=args.infer_batch, verbose=0)
            return {"income_50k": ctr.ravel(), "never_married": cvr.ravel(), "ctcvr": ctcvr.ravel()}
    else:
        def predict(x):
            p = model.predict(x, batch_size=args.infer_batch, verbose=0)
            return {t: p[i].ravel() for i, t in enumerate(census_data.TASKS)}

    clock = common.StepClock()
    epoch_seconds, best = [], common.BestEpoch()

    def validate(epoch, logs):
        phases.mark("train")
        val = common.aucs(data.validation.labels, predict(x_val), census_data.TASKS)
        print(f"[{LIBRARY}/{name}] epoch {epoch + 1}: train {epoch_seconds[-1]:.1f}s "
              f"loss {logs.get('loss', float('nan')):.4f} val AUC {val}", flush=True)
        best.record(val, model.get_weights)
        phases.mark("validation")

    phases.mark("setup")
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0,
              callbacks=[common.keras_epoch_timer(keras, clock, epoch_seconds, validate)])
    phases.mark("train")
    model.set_weights(best.weights)
    test_pred = predict(x_test)
    test_auc = common.aucs(data.test.labels, test_pred, census_data.TASKS)
    if name == "esmm":
        from sklearn.metrics import roc_auc_score

        test_auc["ctcvr"] = round(float(roc_auc_score(data.test.labels.prod(axis=1), test_pred["ctcvr"])), 6)

    train_eps, basis = common.train_rate(epoch_seconds, len(data.train), clock, args.batch_size, args.warmup_steps)
    phases.mark("test")

    # Inference, batch args.infer_batch, over the test split, after one warm-up pass.
    model.predict(x_test, batch_size=args.infer_batch, verbose=0)
    t0 = time.perf_counter()
    model.predict(x_test, batch_size=args.infer_batch, verbose=0)
    infer_api = len(data.test) / (time.perf_counter() - t0)

    n_test, b = len(data.test), args.infer_batch
    batches = [{k: tf.constant(v[i:i + b]) for k, v in x_test.items()} for i in range(0, n_test, b)]
    call = tf.function(lambda x: model(x, training=False))
    for batch in (batches[0], batches[-1]):
        call(batch)
    t0 = time.perf_counter()
    for batch in batches:
        out = call(batch)
    _ = [o.numpy() for o in out]
    infer_call = n_test / (time.perf_counter() - t0)
    phases.mark("inference")

    return {
        "library": LIBRARY, "library_version": deepctr.__version__, "framework": "tensorflow",
        "framework_version": f"tensorflow {tf.__version__}, tf-keras {tf_keras.__version__}",
        "model": name, "seed": args.seed, "config": cfg, "params": int(model.count_params()),
        "epochs": args.epochs, "best_epoch": best.epoch, "val_auc_history": best.history,
        "test_auc": test_auc,
        "train_examples_per_s": round(train_eps, 1), "train_rate_basis": basis,
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "infer_batch": args.infer_batch, "infer_examples_per_s": round(infer_api, 1),
        "infer_api": "model.predict(batch_size=infer_batch)",
        "infer_examples_per_s_model_call": round(infer_call, 1),
        "peak_rss_mib": common.peak_rss_mib(), "threads": threads,
        "rows": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
        "data_dir": data.data_dir, "wall_s": round(time.perf_counter() - t_start, 1), "phase_seconds": phases.seconds,
        "env": {"TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS"),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")},
    }


def main():
    parser = common.base_parser(__doc__.split("\n")[0], census_data.add_data_args)
    common.run_main("bench.peers.run_deepctr", run_one, parser.parse_args())

if __name__ == "__main__":
    main()
