"""Write bench.morec's MovieLens-100k split and item attributes in the files microsoft/UniRec's MoRec reads.

    .venv/bin/python -m bench.official.morec_export --out /work/official/data/morec_ml100k

Then run the official code on it with :mod:`bench.official.morec_run` (see its docstring and
bench/official/README.md, section "MoRec").

What is written (UniRec ids are ours + 1: UniRec keeps id 0 for padding, users included):

* ``train.ftr``, ``valid.ftr``, ``test.ftr``: ``user_id, item_id`` (format ``user-item``), the rows
  of :func:`bench.pid_control.movielens_data` (per user by time: last 3 test, 2 before validation);
* ``user_history.ftr``: the training rows again (``user_history_file_format: user-item``). UniRec
  masks a user's history when it ranks all items and filters it from the training negatives, so
  training-only history gives validation (and the sampler's signals) bench.morec's exclusions;
  test lists with train + validation excluded are built by the runner, as bench.morec does;
* ``item_meta_morec.csv``: ``item_id, weight, fair_group, align_group`` = our synthetic price, first
  genre group + 1 and popularity bin + 1, plus UniRec's padding row 0 (weight 0, groups 0);
* ``align_dist.csv``: ``group_id, proportion`` = our alignment target (training share per
  popularity bin); UniRec indexes it from 0 (``load_alignment_distribution``) and shifts it by the
  padding group itself;
* ``config/``: UniRec's ``base.yaml`` and ``model/MF.yaml`` copied from ``--official`` (unchanged,
  outside this repository) and ``dataset/morec_ml100k.yaml`` with our sizes, so ``config_dir``
  points here and the official tree stays untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any

import numpy as np
import pandas as pd

DATASET = "morec_ml100k"
DEFAULT_OUT = "/work/official/data/morec_ml100k"
DEFAULT_OFFICIAL = "/work/official/UniRec"
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def _atomic(path: str, write) -> None:
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def unirec_tables(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The UniRec tables (ids + 1) of a :func:`bench.pid_control.movielens_data` result."""
    tables = {}
    for ours, name in SPLIT_FILES.items():
        users, items = data["split"][ours]
        tables[name] = pd.DataFrame({"user_id": np.asarray(users, np.int64) + 1,
                                     "item_id": np.asarray(items, np.int64) + 1})
    tables["user_history"] = tables["train"].copy()
    num_items = data["num_items"]
    meta = pd.DataFrame({"item_id": np.arange(num_items + 1, dtype=np.int64),
                         "weight": np.concatenate([[0.0], np.asarray(data["price"], np.float64)]),
                         "fair_group": np.concatenate([[0], np.asarray(data["group"], np.int64) + 1]),
                         "align_group": np.concatenate([[0], np.asarray(data["pop_bin"], np.int64) + 1])})
    tables["item_meta_morec"] = meta
    target = np.asarray(data["pop_target"], np.float64)
    tables["align_dist"] = pd.DataFrame({"group_id": np.arange(len(target), dtype=np.int64), "proportion": target})
    return tables


def dataset_yaml(data: dict[str, Any]) -> str:
    """UniRec's per-data-set config: sizes include the padding id 0."""
    return "\n".join([f"n_users: {data['num_users'] + 1}", f"n_items: {data['num_items'] + 1}",
                      "group_size: -1", "n_neg_test_from_sampling: 0", "n_neg_train_from_sampling: 0",
                      "n_neg_valid_from_sampling: 0", "train_file_format: user-item",
                      "valid_file_format: user-item", "test_file_format: user-item",
                      "user_history_file_format: user-item", ""])


def export(out: str, official: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every file into ``out``; returns a summary (row counts, sizes)."""
    base_yaml = os.path.join(official, "unirec", "config", "base.yaml")
    model_yaml = os.path.join(official, "unirec", "config", "model", "MF.yaml")
    for path in (base_yaml, model_yaml):
        if not os.path.exists(path):
            raise FileNotFoundError(f"--official {official!r}: {path} is missing (not a UniRec checkout?)")
    if data is None:
        from bench.pid_control import movielens_data

        data = movielens_data()
    os.makedirs(os.path.join(out, "config", "model"), exist_ok=True)
    os.makedirs(os.path.join(out, "config", "dataset"), exist_ok=True)
    tables = unirec_tables(data)
    for name in ("train", "valid", "test", "user_history"):
        _atomic(os.path.join(out, name + ".ftr"), lambda p, t=tables[name]: t.to_feather(p))
    for name in ("item_meta_morec", "align_dist"):
        _atomic(os.path.join(out, name + ".csv"), lambda p, t=tables[name]: t.to_csv(p, index=False))
    _atomic(os.path.join(out, "config", "base.yaml"), lambda p: shutil.copyfile(base_yaml, p))
    _atomic(os.path.join(out, "config", "model", "MF.yaml"), lambda p: shutil.copyfile(model_yaml, p))
    text = dataset_yaml(data)
    _atomic(os.path.join(out, "config", "dataset", DATASET + ".yaml"), lambda p: open(p, "w").write(text))
    summary = {"out": out, "dataset": DATASET, "users": data["num_users"], "items": data["num_items"],
               "rows": {name: len(tables[name]) for name in ("train", "valid", "test")}}
    _atomic(os.path.join(out, "export.json"), lambda p: open(p, "w").write(json.dumps(summary, indent=1)))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="data folder for UniRec (outside the repository)")
    parser.add_argument("--official", default=DEFAULT_OFFICIAL, help="UniRec checkout (its config is copied)")
    args = parser.parse_args(argv)
    print(json.dumps(export(args.out, args.official), indent=1))


if __name__ == "__main__":
    main()
