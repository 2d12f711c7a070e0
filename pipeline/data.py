"""Inputs for a local run: find the splits, stage them (optionally the first N rows), fit the spec.

The ExampleGen reads one directory with a glob per split, so the CLI stages the
train and eval files (links, or the first ``rows`` rows for a quick run) under
``<run dir>/data/{train,eval}/``. The spec is fitted on the staged train rows, as
the Keras path fits it on its training DataFrame.
"""

from __future__ import annotations

import dataclasses
import filecmp
import glob
import gzip
import json
import os
from collections.abc import Sequence

import pandas as pd

from tfmtl.datasets import census
from tfmtl.features import FeatureSpec, InferenceOptions, Label, SpecError, typed_labels

_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".tfrecord": "tfrecord",
             ".tfrecord.gz": "tfrecord", ".tfrecords": "tfrecord", ".tfrecords.gz": "tfrecord"}
_TRAIN_PREFIXES, _EVAL_PREFIXES = ("train",), ("eval", "test", "valid")


@dataclasses.dataclass(frozen=True)
class StagedData:
    """What ``create_pipeline`` needs about the input: where, which format, the split globs."""

    root: str
    data_format: str
    train_pattern: str | None
    eval_pattern: str | None
    train_files: tuple[str, ...]


def data_format(path: str) -> str:
    """``csv``, ``parquet`` or ``tfrecord`` from a file name."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if path.endswith(suffix):
            return _SUFFIXES[suffix]
    raise ValueError(f"{path}: unknown data format; expected one of {sorted(_SUFFIXES)}")


def find_splits(data: str, eval_data: str | None = None) -> tuple[list[str], list[str]]:
    """Train and eval files: ``data`` and ``eval_data`` (files or directories), or a directory
    holding ``train*`` and ``eval*``/``test*``/``valid*`` files. No eval files: hash split."""
    if eval_data:
        return _files(data), _files(eval_data)
    if os.path.isdir(data):
        files = _files(data)
        train = [f for f in files if os.path.basename(f).startswith(_TRAIN_PREFIXES)]
        evaluation = [f for f in files if os.path.basename(f).startswith(_EVAL_PREFIXES)]
        if train and evaluation:
            return train, evaluation
        return files, []
    return _files(data), []


def stage(train: list[str], evaluation: list[str], run_dir: str, rows: int | None = None) -> StagedData:
    """Links (or, with ``rows``, copies the first rows of) the split files under ``run_dir/data``.

    Gzipped CSV is decompressed (CsvExampleGen cannot read it). A re-run leaves
    identical staged files untouched, so the ExampleGen's input fingerprint (sizes and
    modification times) and with it the cache hold.
    """
    formats = {data_format(f) for f in train + evaluation}
    if len(formats) != 1:
        raise ValueError(f"all input files must have one format, got {sorted(formats)}")
    fmt = formats.pop()
    root = os.path.join(run_dir, "data")
    splits = {"train": train, "eval": evaluation} if evaluation else {"all": train}
    staged: dict[str, list[str]] = {}
    for split, files in splits.items():
        directory = os.path.join(root, split)
        staged[split] = []
        for path in files:
            name = os.path.basename(path)
            # CsvExampleGen reads its header without decompressing: stage CSV files plain.
            target = os.path.join(directory, name[:-3] if fmt == "csv" and name.endswith(".gz") else name)
            staged[split].append(target)
            _stage_file(path, target, fmt, rows)
    if evaluation:
        return StagedData(root, fmt, "train/*", "eval/*", tuple(staged["train"]))
    # One split: ExampleGen hash-splits the files of its input_base, so that is the folder holding them.
    return StagedData(os.path.join(root, "all"), fmt, None, None, tuple(staged["all"]))


def stage_spans(data_root: str, train_pattern: str, eval_pattern: str, run_dir: str, rows: int | None = None,
                span: int | None = None) -> StagedData:
    """Span input (``{SPAN}`` patterns under the directory ``data_root``): read in place, or with ``rows``
    staged under ``run_dir/data`` with the same layout, the first rows of every file of every span.

    In place, a span delivered tomorrow is read by tomorrow's run as it lands. ``train_files``
    are the train files of the span the ExampleGen will read (``span``, else the latest), the
    rows the spec is fitted on or grown over.
    """
    from pipeline import spans  # pipeline.spans imports tfmtl.training: only for span runs

    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"--data '{data_root}': span patterns need a directory holding the spans")
    chosen = spans.find_span(data_root, train_pattern, span)
    spans.find_span(data_root, eval_pattern, chosen.span)  # the eval split of the same span exists
    formats = {data_format(f) for f in chosen.files}
    if len(formats) != 1:
        raise ValueError(f"all input files must have one format, got {sorted(formats)}")
    fmt = formats.pop()
    if fmt == "csv" and any(f.endswith(".gz") for f in chosen.files):
        raise ValueError(f"span {chosen.span}: CsvExampleGen cannot read gzipped CSV files in place; decompress them")
    if rows is None:
        return StagedData(os.path.abspath(data_root), fmt, train_pattern, eval_pattern, chosen.files)
    root = os.path.join(run_dir, "data")
    for pattern in (train_pattern, eval_pattern):
        for path in glob.glob(os.path.join(data_root, spans.as_glob(pattern))):
            if os.path.isfile(path):
                _stage_file(path, os.path.join(root, os.path.relpath(path, data_root)), fmt, rows)
    staged = tuple(os.path.join(root, os.path.relpath(path, data_root)) for path in chosen.files)
    return StagedData(root, fmt, train_pattern, eval_pattern, staged)


def inference_defaults(labels: Sequence[Label]) -> InferenceOptions:
    """The inference options a spec starts from: the library's with ``--label`` (the user's own data),
    census data's own without (the rows must then be census rows)."""
    return InferenceOptions() if labels else census.CENSUS_INFERENCE


def fit_spec(data: StagedData, spec_path: str | None = None, labels: Sequence[Label] = (),
             exclude: Sequence[str] | None = None, options: InferenceOptions | None = None) -> FeatureSpec:
    """The spec from ``spec_path``, or fitted on the staged train rows.

    With ``labels`` (``--label``) the spec is inferred by :meth:`FeatureSpec.from_dataframe` with ``options``
    (default :func:`inference_defaults`), leaving out the ``exclude`` columns; without them the rows must be
    census data. A bad label (a missing column, no positive rows) is a :class:`SpecError` naming it.
    """
    if spec_path:
        if labels:
            raise SpecError("--spec already names the labels: give --label or --spec, not both")
        try:
            return FeatureSpec.load(spec_path)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise SpecError(f"--spec {spec_path} is not a FeatureSpec JSON file ({error!r})") from error
    if data.data_format == "tfrecord":
        raise SpecError("TFRecord input needs --spec (a FeatureSpec JSON file)")
    options = options or inference_defaults(labels)
    frame = pd.concat([read_frame(path) for path in data.train_files], ignore_index=True)
    if labels:
        spec = FeatureSpec.from_dataframe(frame, labels=typed_labels(labels, frame), exclude=exclude or (),
                                          options=options)
        if spec.inference_report.tables:
            print(f"id spaces chosen by inference:\n{spec.inference_report}")
        return spec
    needed = {label.column for label in census.LABELS} | set(census.NUMERIC) | set(census.INTEGER_CODED)
    if not needed <= set(frame.columns):
        raise SpecError(f"the data is not census data: name its labels with --label NAME=COLUMN:POSITIVE,... "
                        f"(columns: {', '.join(map(str, frame.columns[:20]))}), or pass --spec")
    if exclude:
        raise SpecError("--exclude is for the spec inferred with --label; census data has its own features")
    return census.census_spec(frame, options)


def read_frame(path: str) -> pd.DataFrame:
    """A staged file as the Keras path reads it (``skipinitialspace`` for CSV)."""
    if data_format(path) == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, skipinitialspace=True)


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if os.path.isfile(f) and _known(f))
    else:
        files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise FileNotFoundError(f"no input data at {path!r}" + (f" (missing {missing[:3]})" if missing else ""))
    return files


def _known(path: str) -> bool:
    try:
        data_format(path)
        return True
    except ValueError:
        return False


def _stage_file(source: str, target: str, fmt: str, rows: int | None) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if rows is None and not (fmt == "csv" and source.endswith(".gz")):
        if not (os.path.islink(target) and os.readlink(target) == os.path.abspath(source)):
            _remove(target)
            os.symlink(os.path.abspath(source), target)
        return
    staging = f"{target}.staging"
    if fmt == "csv":
        # Line by line, so the file keeps its exact bytes (the census leading spaces included).
        opener = gzip.open if source.endswith(".gz") else open
        with opener(source, "rt") as src, open(staging, "w") as dst:
            for index, line in enumerate(src):
                if rows is not None and index > rows:
                    break
                dst.write(line)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(pq.read_table(source).slice(0, rows), staging)
    else:
        import tensorflow as tf

        compression = "GZIP" if source.endswith(".gz") else ""
        with tf.io.TFRecordWriter(staging, options=compression or None) as writer:
            for record in tf.data.TFRecordDataset(source, compression_type=compression).take(rows):
                writer.write(record.numpy())
    # Keep an identical file as it is: the ExampleGen fingerprints inputs by size and mtime,
    # so rewriting it would defeat the cache of a re-run.
    if os.path.isfile(target) and not os.path.islink(target) and filecmp.cmp(staging, target, shallow=False):
        os.remove(staging)
    else:
        _remove(target)
        os.replace(staging, target)


def _remove(path: str) -> None:
    if os.path.lexists(path):
        os.remove(path)
