"""tfmtl against DeepCTR in ONE process, alternating, so machine noise hits both alike (issue #8).

The per-library runs of ``python -m bench.peers`` take minutes each, one after the other; on a shared machine the
load changes between them. This script builds the same model in both libraries inside DeepCTR's venv
(same TensorFlow 2.16.2 + tf-keras; tfmtl is imported from the repository) and alternates short timed
chunks: each round trains every library for ``--steps`` steps and predicts the test slice once. Each
library is used the way its users use it: DeepCTR ``model.fit`` on a dict of label-encoded numpy arrays,
tfmtl ``model.fit`` on the raw DataFrame (vocabulary lookups and normalisation inside the model).

Throughput = steady-state steps (callback timestamps, the first ``--skip`` steps of a chunk dropped) x
batch / time; inference = test rows / ``predict`` wall time at batch 1024. Reported: the median per
library and the median of the per-round ratios tfmtl/DeepCTR.

    bench/peers/.venv-deepctr/bin/python -m bench.peers.interleaved --model mmoe --rounds 6

Writes ``bench/results/peers_interleaved.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

from bench import _report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.peers import census_data, common, run_deepctr, run_tfmtl  # noqa: E402  (after the Keras switch)

KERAS_ADAM = "tfmtl_keras_adam"


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0], census_data.add_data_args)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60, help="training steps per library per round")
    parser.add_argument("--skip", type=int, default=5, help="first steps of each chunk left out of the rate")
    parser.add_argument("--test-rows", type=int, default=20000)
    parser.add_argument("--keras-adam-variant", action=argparse.BooleanOptionalAction, default=True,
                        help="also time tfmtl's model with Keras' Adam (how much of the ratio is the fused Adam)")
    parser.add_argument("--results", default=os.path.join(REPO, "bench", "results", "peers_interleaved"))
    parser.add_argument("--report-only", action="store_true", help="redraw .md and .png from the .json")
    args = parser.parse_args()
    if args.report_only:
        with open(args.results + ".json") as f:
            save(json.load(f), args.results)
        return
    threads = common.pin_threads(args)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    run_deepctr._quiet_version_check()
    from tfmtl.compat import keras
    from tfmtl.datasets import census
    from tfmtl.features import FeatureSpec
    from tfmtl.optimizers import Adam as TfmtlAdam

    # DeepCTR's inputs: label-encoded ids and scaled numerics (census_data, as in run_deepctr.py).
    data = census_data.load(args.data_dir, args.rows)
    columns, deepctr_inputs = run_deepctr.deepctr_features(data, args.embedding_dim)
    x_train, x_test = deepctr_inputs(data.train), deepctr_inputs(data.test)
    y_train = [data.train.labels[:, 0], data.train.labels[:, 1]]
    # tfmtl's inputs: the raw census frames (same files, same rows).
    data_dir = args.data_dir or census_data.default_data_dir()
    train_df = census.read_census_csv(os.path.join(data_dir, "train.csv.gz"), args.rows).reset_index(drop=True)
    test_df = census.read_census_csv(os.path.join(data_dir, "test.csv.gz"), args.rows).reset_index(drop=True)
    spec = FeatureSpec.from_dataframe(train_df, labels=census.LABELS, categorical=census.INTEGER_CODED,
                                      numeric=census.NUMERIC, exclude=census.NOT_FEATURES,
                                      embedding_dim=args.embedding_dim,
                                      numeric_encoding="scalar")  # the dense inputs DeepCTR and torch-rechub get
    n_train, n_test = len(train_df), min(args.test_rows, len(test_df), len(next(iter(x_test.values()))))
    test_df = test_df.iloc[:n_test]
    x_test = {k: v[:n_test] for k, v in x_test.items()}
    chunk = args.steps * args.batch_size
    rng = np.random.default_rng(args.seed)

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.stamps = []

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def rate(self):
            steady = self.stamps[args.skip:]
            return (len(steady) - 1) * args.batch_size / (steady[-1] - steady[0])

    results = []
    for name in common.selected_models(args.model, ("shared_bottom", "mmoe", "ple")):
        keras.utils.set_random_seed(args.seed)
        peer, _ = run_deepctr.build_model(name, args, columns, args.seed)
        peer.compile(optimizer=keras.optimizers.Adam(args.lr), loss=["binary_crossentropy"] * 2)
        # tfmtl as its users get it (compile's default optimizer, the fused Adam) and, for attribution, the
        # same model with Keras' Adam, the optimizer DeepCTR trains with here.
        ours = {}
        for library, optimizer in (("tfmtl", TfmtlAdam(args.lr)), (KERAS_ADAM, keras.optimizers.Adam(args.lr))):
            if library == KERAS_ADAM and not args.keras_adam_variant:
                continue
            keras.utils.set_random_seed(args.seed)
            ours[library], config = run_tfmtl.build_model(name, args, spec, list(census_data.TASKS))
            ours[library].compile(optimizer=optimizer, metrics=[])

        def train(library, rows, clock, peer=peer, ours=ours):
            if library == "deepctr":
                peer.fit({k: v[rows] for k, v in x_train.items()}, [y[rows] for y in y_train],
                         batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0, callbacks=[clock])
            else:
                ours[library].fit(train_df.iloc[rows], batch_size=args.batch_size, epochs=1, verbose=0,
                                  callbacks=[clock])

        def predict(library, peer=peer, ours=ours):
            t0 = time.perf_counter()
            if library == "deepctr":
                peer.predict(x_test, batch_size=args.infer_batch, verbose=0)
            else:
                ours[library].predict(test_df, batch_size=args.infer_batch, verbose=0)
            return n_test / (time.perf_counter() - t0)

        libraries = ("deepctr", *ours)
        for library in libraries:  # warm-up: tracing and the first steps, untimed
            train(library, rng.choice(n_train, chunk, replace=False), Clock())
            predict(library)
        rounds = []
        for r in range(args.rounds):
            row = {}
            for library in libraries[r % len(libraries):] + libraries[:r % len(libraries)]:
                clock = Clock()
                train(library, rng.choice(n_train, chunk, replace=False), clock)
                row[library] = {"train": clock.rate(), "infer": predict(library)}
            rounds.append(row)
            print(f"[{name}] round {r}: " + ", ".join(
                f"{lib} train {v['train']:.0f} ex/s infer {v['infer']:.0f} ex/s" for lib, v in row.items()), flush=True)
        summary = {"model": name, "config": config, "rounds": rounds}
        for kind in ("train", "infer"):
            for library in libraries:
                summary[f"{library}_{kind}"] = round(statistics.median(r[library][kind] for r in rounds), 1)
            summary[f"ratio_{kind}"] = round(statistics.median(r["tfmtl"][kind] / r["deepctr"][kind]
                                                               for r in rounds), 3)
            if KERAS_ADAM in ours:
                summary[f"ratio_{kind}_keras_adam"] = round(statistics.median(
                    r[KERAS_ADAM][kind] / r["deepctr"][kind] for r in rounds), 3)
        results.append(summary)

    report = {"command": "bench/peers/.venv-deepctr/bin/python " + shlex.join(sys.argv),
              "when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_at_end": os.getloadavg(), "threads": threads, "batch_size": args.batch_size,
              "infer_batch": args.infer_batch, "steps_per_chunk": args.steps, "train_rows": n_train,
              "test_rows": n_test, "tensorflow": tf.__version__, "results": results}
    save(report, args.results)


def markdown(report: dict) -> str:
    lines = ["# tfmtl vs DeepCTR, interleaved in one process", "",
             f"Command: `{report['command']}`  ", f"Run: {report['when']}, {report['machine']}, load average at "
             f"end {', '.join(f'{v:.1f}' for v in report['load_average_at_end'])}; batch {report['batch_size']}, "
             f"{report['steps_per_chunk']} steps per chunk, {len(report['results'][0]['rounds'])} rounds, inference "
             f"batch {report['infer_batch']} on {report['test_rows']} test rows. Each library as its users call it: "
             "DeepCTR on label-encoded numpy arrays, tfmtl on the raw DataFrame (lookups inside the model).", "",
             "| model | tfmtl train ex/s | DeepCTR train ex/s | ratio | ratio with Keras' Adam | tfmtl predict ex/s "
             "| DeepCTR predict ex/s | ratio |", "|---|---|---|---|---|---|---|---|"]
    for s in report["results"]:
        keras_adam = f"{s['ratio_train_keras_adam']:.2f}x" if "ratio_train_keras_adam" in s else "–"
        lines.append(f"| {s['model']} | {s['tfmtl_train']:.0f} | {s['deepctr_train']:.0f} | {s['ratio_train']:.2f}x "
                     f"| {keras_adam} | {s['tfmtl_infer']:.0f} | {s['deepctr_infer']:.0f} | {s['ratio_infer']:.2f}x |")
    lines += ["", "Ratios are medians of the per-round ratios (tfmtl / DeepCTR); > 1 means tfmtl is faster. "
              "tfmtl trains with its default optimizer, `tfmtl.optimizers.Adam` (Keras' Adam with a fused update "
              "kernel); the column \"with Keras' Adam\" is the same tfmtl model trained with "
              "`keras.optimizers.Adam`, as DeepCTR is, timed in the same rounds. The target for training is 2x.", "",
              "![ratios](peers_interleaved.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Per-round ratios as dots over the median bar, train and predict side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, s in enumerate(report["results"]):
        for j, kind in enumerate(("train", "infer")):
            x = i + (j - 0.5) * 0.38
            ratios = [r["tfmtl"][kind] / r["deepctr"][kind] for r in s["rounds"]]
            label = ("training", "predict")[j] if not i else None
            ax.bar(x, s[f"ratio_{kind}"], 0.36, color=("C0", "C1")[j], label=label)
            ax.plot([x] * len(ratios), ratios, "k.", alpha=0.5)
    ax.axhline(1.0, color="grey", lw=1)
    ax.axhline(2.0, color="red", ls="--", lw=1, label="training target (2x)")
    ax.set_xticks(range(len(report["results"])), [s["model"] for s in report["results"]])
    ax.set_ylabel("tfmtl / DeepCTR examples/s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _report.save_figure(fig, path, dpi=110)


def save(report: dict, results: str) -> None:
    text = {results + ".json": json.dumps(report, indent=1), results + ".md": markdown(report)}
    for path, content in text.items():
        _report.write_atomically(path, content + "\n")
    try:
        plot(report, results + ".png")
    except ImportError:  # DeepCTR's venv has no matplotlib: redraw with --report-only from the main venv
        print("matplotlib missing: run `.venv/bin/python -m bench.peers.interleaved --report-only` for the PNG")
    print(text[results + ".md"])


if __name__ == "__main__":
    main()
