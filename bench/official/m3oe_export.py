"""Export bench/multidomain.py's split in the layout the official M3oE code (MDMTRec) reads.

    .venv/bin/python -m bench.official.m3oe_export --out /work/official/data/m3oe_ml100k.csv

Rows: :func:`tfmtl.datasets.movielens.multidomain` split by :func:`movielens.split_frame`
(0.8/0.1/0.1, seed 0), exactly as bench/multidomain.py does. Columns follow the official
``examples/run_movielens.py``: ``user_id, movie_id, gender, age, occupation, zip, cate_id,
domain_indicator`` (the domain last: the official trainer reads it from the last column),
``cate_id`` the first listed genre, sparse columns label-encoded over all rows and ``age``
min-max scaled over all rows (as the official script does), then labels ``click`` (= our
``like``, rating >= 4) and ``like`` (= our ``love``, rating == 5) and ``split``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

from tfmtl.datasets import movielens

SPLIT_SHARES = (0.8, 0.1, 0.1)  # bench/multidomain.py's split
SPLIT_SEED = 0
SPARSE_COLUMNS = ("user_id", "movie_id", "gender", "occupation", "zip", "cate_id", "domain_indicator")
FEATURE_COLUMNS = ("user_id", "movie_id", "gender", "age", "occupation", "zip", "cate_id", "domain_indicator")
LABEL_COLUMNS = ("click", "like")  # the official names for our like / love
SPLITS = ("train", "validation", "test")


def export_frame() -> pd.DataFrame:
    """Our train/validation/test rows, in order, as one frame in the official column layout."""
    df, _ = movielens.multidomain(seed=0)
    parts = movielens.split_frame(df, SPLIT_SHARES, seed=SPLIT_SEED)
    rows = pd.concat([part.assign(split=name) for name, part in zip(SPLITS, parts)], ignore_index=True)
    out = pd.DataFrame({
        "user_id": rows["user_id"], "movie_id": rows["movie_id"], "gender": rows["gender"],
        "age": rows["age"].astype(np.float64), "occupation": rows["occupation"], "zip": rows["zip_prefix"],
        "cate_id": rows["genres"].astype(str).str.split("|").str[0], "domain_indicator": rows["domain"]})
    for column in SPARSE_COLUMNS:
        # LabelEncoder's codes: the rank of the value among the sorted distinct values
        out[column] = np.unique(out[column].astype(str) if out[column].dtype == object else out[column],
                                return_inverse=True)[1].astype(np.int64)
    age = out["age"]
    out["age"] = (age - age.min()) / (age.max() - age.min())
    out["click"] = rows["like"].astype(np.int64)
    out["like"] = rows["love"].astype(np.int64)
    out["split"] = rows["split"]
    return out


def write(path: str) -> pd.DataFrame:
    """Write :func:`export_frame` to ``path`` (via a temp file) and return it."""
    frame = export_frame()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temp = path + ".tmp"
    frame.to_csv(temp, index=False)
    os.replace(temp, path)
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV path for the exported rows")
    frame = write(parser.parse_args(argv).out)
    print({name: int((frame["split"] == name).sum()) for name in SPLITS})


if __name__ == "__main__":
    main()
