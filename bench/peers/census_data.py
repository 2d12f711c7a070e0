"""Census-Income (KDD) task setup shared by the peer-library runners (issue #8).

Stand-alone on purpose: it needs only numpy and pandas, so it runs inside the
peer virtualenvs (bench/peers/.venv-*), which do not have tfmtl installed.

The setup, identical for every library:

* files: ``train.csv.gz`` and ``test.csv.gz`` read with
  ``pd.read_csv(path, skipinitialspace=True)``; ``--data-dir`` picks the folder,
  default ``tfmtl/datasets/data/census`` in this repo when it holds the files,
  else ``/work/shared/data/census-income-kdd``;
* labels: ``income_50k = income == "50000+."``,
  ``never_married = marital_stat == "Never married"``;
* features: every other column except ``income``, ``marital_stat`` and
  ``instance_weight``. Categorical: all string columns plus the integer-coded
  ``detailed_industry_recode``, ``detailed_occupation_recode``,
  ``own_business_or_self_employed``, ``veterans_benefits``, ``year``;
  vocabularies fitted on train (ordered by frequency, then value), ids 1..V,
  anything unseen (or missing) -> the reserved id 0, so the table size is V + 1.
  Numeric: ``age``, ``wage_per_hour``, ``capital_gains``, ``capital_losses``,
  ``dividends_from_stocks``, ``num_persons_worked_for_employer``,
  ``weeks_worked_in_year``: ``log1p`` then standardised with the train mean
  and (population, ddof=0) standard deviation;
* split: train = all of train.csv.gz (199,523 rows); validation =
  ``test.sample(frac=0.5, random_state=1)``; test = the other rows of
  test.csv.gz (49,881 each).

``--rows N`` reads only the first N rows of each file (smoke tests): the
validation/test halves are then halves of that slice.

Run it directly to print a summary: ``python -m bench.peers.census_data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_DATA_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "tfmtl", "datasets", "data", "census"))
SHARED_DATA_DIR = "/work/shared/data/census-income-kdd"

TASKS = ("income_50k", "never_married")
LABEL_COLUMNS = {"income_50k": ("income", "50000+."), "never_married": ("marital_stat", "Never married")}
NOT_FEATURES = ("income", "marital_stat", "instance_weight")
INTEGER_CODED = ("detailed_industry_recode", "detailed_occupation_recode", "own_business_or_self_employed",
                 "veterans_benefits", "year")
NUMERIC = ("age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
           "num_persons_worked_for_employer", "weeks_worked_in_year")
VALIDATION_SEED = 1


def default_data_dir() -> str:
    """The repo's bundled copy when it holds both files, else the shared folder."""
    if all(os.path.exists(os.path.join(REPO_DATA_DIR, f)) for f in ("train.csv.gz", "test.csv.gz")):
        return REPO_DATA_DIR
    return SHARED_DATA_DIR


@dataclasses.dataclass
class Split:
    categorical: dict[str, np.ndarray]  # name -> int64 ids, 0 = unknown
    numeric: dict[str, np.ndarray]  # name -> float32, log1p + standardised
    labels: np.ndarray  # (n, 2) float32, columns in TASKS order

    def __len__(self) -> int:
        return len(self.labels)

    def features(self) -> dict[str, np.ndarray]:
        """All feature columns, categorical first, in the order of CensusData.feature_names."""
        return {**self.categorical, **self.numeric}


@dataclasses.dataclass
class CensusData:
    train: Split
    validation: Split
    test: Split
    categorical_names: list[str]
    numeric_names: list[str]
    vocab_sizes: dict[str, int]  # table size including the reserved id 0
    data_dir: str

    @property
    def feature_names(self) -> list[str]:
        return self.categorical_names + self.numeric_names

    def summary(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "rows": {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)},
            "positive_rate": {
                split: {t: round(float(s.labels[:, i].mean()), 5) for i, t in enumerate(TASKS)}
                for split, s in (("train", self.train), ("validation", self.validation), ("test", self.test))
            },
            "categorical": len(self.categorical_names),
            "numeric": len(self.numeric_names),
            "vocab_total": int(sum(self.vocab_sizes.values())),
        }


def read_csv(path: str, rows: int | None = None) -> pd.DataFrame:
    return pd.read_csv(path, skipinitialspace=True, nrows=rows)


def _labels(df: pd.DataFrame) -> np.ndarray:
    cols = [(df[col] == positive).to_numpy() for col, positive in (LABEL_COLUMNS[t] for t in TASKS)]
    return np.stack(cols, axis=1).astype(np.float32)


def _vocabulary(column: pd.Series) -> dict:
    counts = column.value_counts(dropna=True)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return {value: i + 1 for i, (value, _) in enumerate(ordered)}


def load(data_dir: str | None = None, rows: int | None = None) -> CensusData:
    data_dir = data_dir or default_data_dir()
    train_df = read_csv(os.path.join(data_dir, "train.csv.gz"), rows)
    held_out = read_csv(os.path.join(data_dir, "test.csv.gz"), rows)
    val_df = held_out.sample(frac=0.5, random_state=VALIDATION_SEED)
    test_df = held_out.drop(val_df.index)

    features = [c for c in train_df.columns if c not in NOT_FEATURES]
    missing = [c for c in NUMERIC + INTEGER_CODED if c not in features]
    if missing:
        raise ValueError(f"census columns missing: {missing}")
    numeric_names = [c for c in features if c in NUMERIC]
    categorical_names = [c for c in features if c not in NUMERIC]
    for c in categorical_names:
        if c not in INTEGER_CODED and pd.api.types.is_numeric_dtype(train_df[c]):
            raise ValueError(f"column {c!r} is neither a string column, integer-coded nor numeric")

    vocabs = {c: _vocabulary(train_df[c]) for c in categorical_names}
    stats = {}
    for c in numeric_names:
        x = np.log1p(train_df[c].to_numpy(dtype=np.float64))
        std = float(x.std())
        stats[c] = (float(x.mean()), std if std > 0 else 1.0)

    def encode(df: pd.DataFrame) -> Split:
        cat = {c: df[c].map(vocabs[c]).fillna(0).to_numpy(dtype=np.int64) for c in categorical_names}
        num = {}
        for c in numeric_names:
            mean, std = stats[c]
            num[c] = ((np.log1p(df[c].to_numpy(dtype=np.float64)) - mean) / std).astype(np.float32)
        return Split(cat, num, _labels(df))

    return CensusData(encode(train_df), encode(val_df), encode(test_df), categorical_names, numeric_names,
                      {c: len(v) + 1 for c, v in vocabs.items()}, data_dir)


def bucketize_numeric(data: CensusData, buckets: int = 16) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Quantile buckets of the numeric features, boundaries fitted on train.

    Only for models that take categorical ids alone (torch-rechub's ESMM):
    returns per-split id arrays ``{"train": {name: ids}, ...}`` with ids
    1..B (0 stays unused) and the table sizes ``{name: B + 1}``.
    """
    out = {"train": {}, "validation": {}, "test": {}}
    sizes = {}
    for c in data.numeric_names:
        qs = np.quantile(data.train.numeric[c], np.linspace(0, 1, buckets + 1)[1:-1])
        bounds = np.unique(qs)
        for split in out:
            values = getattr(data, split).numeric[c]
            out[split][c] = np.searchsorted(bounds, values, side="right").astype(np.int64) + 1
        sizes[c] = len(bounds) + 2
    return out, sizes


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with train.csv.gz and test.csv.gz (default: {REPO_DATA_DIR} if it holds "
                             f"them, else {SHARED_DATA_DIR})")
    parser.add_argument("--rows", type=int, default=None,
                        help="read only the first N rows of each file (smoke tests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(parser)
    args = parser.parse_args()
    data = load(args.data_dir, args.rows)
    print(json.dumps(data.summary(), indent=2))


if __name__ == "__main__":
    main()
