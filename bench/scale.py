"""Throughput and peak memory of the input paths at scale: DataFrame vs streamed Parquet and TFRecord, 1M-16M rows.

    python -m bench.scale                                   # 1M, 4M, 16M rows (data in /tmp/s40/scale)
    python -m bench.scale --rows 1000000 4000000 --paths dataframe parquet tfrecord --out bench/results/scale_paths
    python -m bench.scale --rows 100000 --out /tmp/scale   # smoke run
    python -m bench.scale --report-only                     # rewrite the Markdown/plot from the JSON

A throughput bench, not a quality one: one epoch (or ``--max-steps`` timed steps) of the same
model, no convergence. Synthetic impressions: ``user_id`` (rows/4 distinct users, uniform),
``item_id`` (Zipf, a = 1.2, over 100k items), ``device`` (3 values), ``hour`` (24 values), ``price``
(log-normal) and a ``click`` label from a logistic of the item rank, price and hour. The data are
written once per size as Parquet files of 1M rows (row groups of 128k rows) into ``--data``.

One spec (inferred from the first 200k rows) and one model (DeepFM, DNN 64-32, batch 1024) for
every path. Each (size, path) runs in its own subprocess, which reports its own
``ru_maxrss``, so peaks do not mix:

- ``dataframe``: ``pd.read_parquet`` of all files, then :func:`tfmtl.features.dataframe_to_dataset`;
- ``parquet``: :func:`tfmtl.features.parquet.parquet_to_dataset` over the files (one row group in memory);
- ``tfrecord``: :func:`tfmtl.features.tfrecord.tfrecord_to_dataset` over GZIP TFRecord files of
  ``tf.train.Example`` (as the pipeline's ExampleGen writes them), one per Parquet file, written once from
  the Parquet rows (ints as ``int64_list``, floats as ``float_list``, text as ``bytes_list``).

Timed: ``model.fit`` over the first ``--max-steps`` batches (all of them if the epoch is shorter),
after one warm-up batch; examples/s = timed rows / seconds, and seconds per epoch = rows /
(examples/s) (extrapolated when ``--max-steps`` cuts the epoch: said in the table). Then the
``parquet`` and ``tfrecord`` children stream the whole epoch through the dataset (no model) so its peak memory
covers every row. Writes ``bench/results/scale.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from bench import _report

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SIZES = (1_000_000, 4_000_000, 16_000_000)
PATHS = ("dataframe", "parquet", "tfrecord")
DEFAULT_PATHS = ("dataframe", "parquet")
BATCH_SIZE = 1024
UNITS = (64, 32)
ITEMS = 100_000
ZIPF_A = 1.2
FILE_ROWS = 1_000_000
ROW_GROUP_ROWS = 131_072
SPEC_ROWS = 200_000
MAX_STEPS = 600


def impressions(rows: int, start: int, total: int, seed: int) -> pd.DataFrame:
    """Rows ``start .. start + rows`` of a ``total``-row synthetic log (each chunk seeded by its start)."""
    rng = np.random.default_rng([seed, start])
    items = np.minimum(rng.zipf(ZIPF_A, rows), ITEMS) - 1  # rank 0 is the most popular item
    hour = rng.integers(0, 24, rows)
    price = rng.lognormal(2.0, 0.7, rows).astype(np.float32)
    logit = -1.5 - 0.15 * np.log1p(items) - 0.2 * (np.log(price) - 2.0) + 0.3 * np.sin(hour / 24 * 2 * np.pi)
    return pd.DataFrame({
        "user_id": rng.integers(0, max(total // 4, 1), rows).astype(str),
        "item_id": items.astype(str),
        "device": rng.choice(np.array(["ios", "android", "web"]), rows, p=[0.4, 0.45, 0.15]),
        "hour": hour.astype(np.int64),
        "price": price,
        "click": (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64),
    })


def write_data(rows: int, directory: str, seed: int = 0) -> list[str]:
    """The ``rows``-row log as Parquet files of ``FILE_ROWS`` rows under ``directory`` (kept if complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = os.path.join(directory, "_COMPLETE")
    if not os.path.exists(done):
        os.makedirs(directory, exist_ok=True)
        for start in range(0, rows, FILE_ROWS):
            path = os.path.join(directory, f"part-{start // FILE_ROWS:05d}.parquet")
            table = pa.Table.from_pandas(impressions(min(FILE_ROWS, rows - start), start, rows, seed),
                                         preserve_index=False)
            tmp = path + ".tmp"
            pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)
            os.replace(tmp, path)
        _report.write_atomically(done, str(rows))
    return sorted(glob.glob(os.path.join(directory, "*.parquet")))


def write_tfrecords(files: list[str]) -> list[str]:
    """GZIP TFRecord files of ``tf.train.Example`` beside the Parquet ``files`` (kept once complete)."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    directory = os.path.join(os.path.dirname(files[0]), "tfrecord")
    done = os.path.join(directory, "_COMPLETE")
    if not os.path.exists(done):
        os.makedirs(directory, exist_ok=True)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        for source in files:
            path = os.path.join(directory, os.path.basename(source).replace(".parquet", ".tfrecord.gz"))
            columns = pq.read_table(source).to_pydict()
            kinds = {name: (tf.train.Int64List if isinstance(values[0], int) else
                            tf.train.FloatList if isinstance(values[0], float) else tf.train.BytesList)
                     for name, values in columns.items()}
            names = list(columns)
            with tf.io.TFRecordWriter(path + ".tmp", options) as writer:
                for row in zip(*columns.values()):
                    feature = {}
                    for name, value in zip(names, row):
                        kind = kinds[name]
                        if kind is tf.train.Int64List:
                            feature[name] = tf.train.Feature(int64_list=kind(value=[value]))
                        elif kind is tf.train.FloatList:
                            feature[name] = tf.train.Feature(float_list=kind(value=[value]))
                        else:
                            feature[name] = tf.train.Feature(bytes_list=kind(value=[value.encode()]))
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            os.replace(path + ".tmp", path)
        _report.write_atomically(done, str(len(files)))
    return sorted(glob.glob(os.path.join(directory, "*.tfrecord.gz")))


def infer_spec(files: list[str], path: str):
    """The spec of the first ``SPEC_ROWS`` rows, saved at ``path``: one spec for every path and size."""
    import pyarrow.parquet as pq

    from tfmtl.features import FeatureSpec

    sample = pq.ParquetFile(files[0]).read().slice(0, SPEC_ROWS).to_pandas()
    spec = FeatureSpec.from_dataframe(sample, labels=["click"], categorical=["hour"])
    spec.save(path)
    return spec


def child(kind: str, directory: str, spec_path: str, max_steps: int) -> dict:
    """One (size, path) measurement in this process: fit throughput, then (parquet) a full streamed pass."""
    import tensorflow as tf

    from tfmtl.features import FeatureSpec, dataframe_to_dataset
    from tfmtl.features.parquet import parquet_to_dataset
    from tfmtl.models import DeepFM

    spec = FeatureSpec.load(spec_path)
    files = sorted(glob.glob(os.path.join(directory, "*.parquet")))
    targets = {"click": "click"}
    began = time.perf_counter()
    if kind == "dataframe":
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        rows = len(df)
        make = lambda: dataframe_to_dataset(spec, df, targets, batch_size=BATCH_SIZE)  # noqa: E731
    elif kind == "parquet":
        import pyarrow.parquet as pq
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        make = lambda: parquet_to_dataset(spec, files, targets, batch_size=BATCH_SIZE)  # noqa: E731
    else:
        import pyarrow.parquet as pq

        from tfmtl.features.tfrecord import tfrecord_to_dataset
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        records = sorted(glob.glob(os.path.join(directory, "tfrecord", "*.tfrecord.gz")))
        make = lambda: tfrecord_to_dataset(spec, records, targets, batch_size=BATCH_SIZE)  # noqa: E731
    load_seconds = time.perf_counter() - began
    tf.keras.utils.set_random_seed(0)
    model = DeepFM(spec, dnn_units=UNITS)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(make().take(1), verbose=0)  # build and trace outside the timing
    steps = min(max_steps, -(-rows // BATCH_SIZE))
    began = time.perf_counter()
    model.fit(make().take(steps), verbose=0)
    fit_seconds = time.perf_counter() - began
    timed_rows = min(steps * BATCH_SIZE, rows)
    stream_seconds = None
    if kind != "dataframe":
        began = time.perf_counter()
        streamed = sum(int(batch[1]["click"].shape[0]) for batch in make())
        stream_seconds = time.perf_counter() - began
        assert streamed == rows, (streamed, rows)
    return {"path": kind, "rows": rows, "steps": steps, "timed_rows": timed_rows, "load_seconds": load_seconds,
            "fit_seconds": fit_seconds, "examples_per_s": timed_rows / fit_seconds,
            "epoch_seconds": load_seconds + rows / (timed_rows / fit_seconds),
            "extrapolated": timed_rows < rows, "full_stream_seconds": stream_seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(args) -> dict:
    out_rows = []
    spec_path = os.path.join(args.data, "spec.json")
    for size in args.rows:
        directory = os.path.join(args.data, f"rows-{size}")
        files = write_data(size, directory)
        if size == args.rows[0] or not os.path.exists(spec_path):
            infer_spec(files, spec_path)
        if "tfrecord" in args.paths:
            write_tfrecords(files)
        for repeat in range(args.repeats):
            # Rotate the order each repeat so that no path always runs first (or last) on a warming machine.
            shift = repeat % len(args.paths)
            for kind in args.paths[shift:] + args.paths[:shift]:
                command = [sys.executable, "-m", "bench.scale", "--child", kind, "--data", directory,
                           "--spec", spec_path, "--max-steps", str(args.max_steps)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"{kind} at {size} rows failed:\n{done.stderr[-3000:]}")
                row = dict(json.loads(done.stdout.strip().splitlines()[-1]), repeat=repeat)
                print(f"{size:>10} {kind:<10} {row['examples_per_s']:10.0f} ex/s "
                      f"{row['peak_rss_mib']:8.0f} MiB (repeat {repeat})", flush=True)
                out_rows.append(row)
    return {"config": {"rows": list(args.rows), "paths": list(args.paths), "repeats": args.repeats,
                       "batch_size": BATCH_SIZE,
                       "units": list(UNITS), "max_steps": args.max_steps, "items": ITEMS, "zipf_a": ZIPF_A,
                       "row_group_rows": ROW_GROUP_ROWS, "file_rows": FILE_ROWS,
                       "load": os.getloadavg()[0], "machine": args.machine},
            "rows": out_rows}


def medians(results: dict) -> list[dict]:
    """One row per (size, path): the median of its repeats, with the examples/s range and the count."""
    groups: dict = {}
    for r in results["rows"]:
        groups.setdefault((r["rows"], r["path"]), []).append(r)
    summary = []
    for (rows, path), runs in groups.items():
        speeds = [r["examples_per_s"] for r in runs]
        stream = [r["full_stream_seconds"] for r in runs if r["full_stream_seconds"] is not None]
        summary.append({"rows": rows, "path": path, "runs": len(runs), "examples_per_s": float(np.median(speeds)),
                        "examples_per_s_range": (min(speeds), max(speeds)),
                        "epoch_seconds": float(np.median([r["epoch_seconds"] for r in runs])),
                        "extrapolated": any(r["extrapolated"] for r in runs),
                        "peak_rss_mib": float(np.median([r["peak_rss_mib"] for r in runs])),
                        "full_stream_seconds": float(np.median(stream)) if stream else None})
    return summary


def paired_ratios(results: dict) -> dict:
    """``{(size, path): [streamed ex/s / DataFrame ex/s of the same repeat, ...]}`` for each streamed path."""
    by_run: dict = {}
    for r in results["rows"]:
        by_run.setdefault((r["rows"], r.get("repeat", 0)), {})[r["path"]] = r["examples_per_s"]
    ratios: dict = {}
    for (rows, _), speeds in by_run.items():
        for path, speed in speeds.items():
            if path != "dataframe" and "dataframe" in speeds:
                ratios.setdefault((rows, path), []).append(speed / speeds["dataframe"])
    return ratios


def markdown(results: dict, png: str) -> str:
    cfg = results["config"]
    repeats = cfg.get("repeats", 1)
    lines = [f"# Input paths at scale: {' vs '.join(cfg['paths'])}", "",
             f"DeepFM (DNN {cfg['units']}), batch {cfg['batch_size']}, one epoch timed over at most "
             f"{cfg['max_steps']} steps (throughput bench: no convergence). Each (size, path) in its own "
             f"process; peak RSS is that process's `ru_maxrss`. "
             + (f"{repeats} repeats per (size, path), the order of the paths rotated each repeat; the table "
                f"shows medians, with the examples/s range. " if repeats > 1 else "")
             + f"Load average at the end {cfg['load']:.1f} ({cfg.get('machine', 'shared machine')}, 2 cores).", "",
             "| rows | path | examples/s | range | s/epoch | peak RSS MiB | full stream s |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    summary = medians(results)
    for r in summary:
        epoch = f"{r['epoch_seconds']:.0f}{'*' if r['extrapolated'] else ''}"
        stream = f"{r['full_stream_seconds']:.0f}" if r["full_stream_seconds"] is not None else "-"
        low, high = r["examples_per_s_range"]
        spread = f"{low:,.0f}-{high:,.0f}" if r["runs"] > 1 else "-"
        lines.append(f"| {r['rows']:,} | {r['path']} | {r['examples_per_s']:,.0f} | {spread} | {epoch} | "
                     f"{r['peak_rss_mib']:,.0f} | {stream} |")
    parquet = [r for r in summary if r["path"] == "parquet"]
    if len(parquet) > 1:
        ratio = parquet[-1]["peak_rss_mib"] / parquet[0]["peak_rss_mib"]
        lines += ["", f"Parquet peak RSS at {parquet[-1]['rows']:,} rows / at {parquet[0]['rows']:,} rows: "
                  f"**{ratio:.2f}x** (target <= 1.5x)."]
    parity = []
    for (rows, path), ratios in paired_ratios(results).items():
        spread = f" (range {min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} pairs)" if len(ratios) > 1 else ""
        parity.append(f"{path} {float(np.median(ratios)):.2f}x at {rows:,} rows{spread}")
    if parity:
        lines += ["", "Streamed examples/s against the DataFrame path's, paired within a repeat"
                  + (" (median)" if repeats > 1 else "") + ": " + "; ".join(parity) + "."]
    lines += ["", "\\* extrapolated from the timed steps: seconds to load + rows / (examples/s).", "",
              f"![time per epoch and peak memory]({os.path.basename(png)})", ""]
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    summary = medians(results)
    for kind in results["config"]["paths"]:
        rows = [r for r in summary if r["path"] == kind]
        x = [r["rows"] for r in rows]
        left.plot(x, [r["epoch_seconds"] for r in rows], "o-", label=kind)
        right.plot(x, [r["peak_rss_mib"] for r in rows], "o-", label=kind)
    for axis, title in ((left, "seconds per epoch"), (right, "peak RSS (MiB)")):
        axis.set_xscale("log")
        axis.set_xlabel("rows")
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    _report.save_figure(figure, path)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(DEFAULT_PATHS))
    parser.add_argument("--machine", default="shared machine", help="how loaded the machine was, for the table")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--repeats", type=int, default=1, help="runs per (size, path), paths rotated each repeat")
    parser.add_argument("--data", default="/tmp/s40/scale")
    parser.add_argument("--out", default=os.path.join(RESULTS, "scale"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.data, args.spec, args.max_steps)))
        return
    results = _report.run_or_reload(args, run)
    _report.save_report(args.out, results, markdown(results, args.out + ".png"),
                        lambda png: plot(results, png))


if __name__ == "__main__":
    main()
