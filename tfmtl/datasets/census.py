"""Census-Income (KDD), the standard two-task benchmark of MMoE, PLE and FSMD.

Tasks (MMoE's task group 1): ``income_50k`` (income > $50K) and
``never_married``. Split as in MMoE and FSMD: the 199,523 training rows train;
the 99,762-row test file is split 1:1 at random (``random_state=1``) into
validation and test. Data: UCI (Lane & Kohavi, 2000), CC BY 4.0; see
``data/census/PROVENANCE.md``.

Example:

>>> splits = load_census(nrows=1000)
>>> len(splits.train), sorted(splits.spec.label_names)
(1000, ['income_50k', 'never_married'])
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pandas as pd

from tfmtl.features import FeatureSpec, InferenceOptions, Label

DATA_DIR = os.path.join(os.path.dirname(__file__), "data", "census")
LABELS = (
    Label("income_50k", column="income", positive=("50000+.",)),
    Label("never_married", column="marital_stat", positive=("Never married",)),
)
# Written as integers in the CSV, but they are category codes.
INTEGER_CODED = ("detailed_industry_recode", "detailed_occupation_recode", "own_business_or_self_employed",
                 "veterans_benefits", "year")
NUMERIC = ("age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
           "num_persons_worked_for_employer", "weeks_worked_in_year")
# UCI: the CPS survey weight "should not be used in the classifiers".
NOT_FEATURES = ("instance_weight",)
# Width 4 and 32 PLE bins, not inference's defaults: the published census tables were measured at width 4,
# and the census quality test's margins (bench/results/test_margins.md) with 32 bins.
CENSUS_INFERENCE = InferenceOptions(embedding_dim=4, numeric_bins=32)


@dataclasses.dataclass
class CensusSplits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    spec: FeatureSpec


def read_census_csv(path: str, nrows: int | None = None) -> pd.DataFrame:
    """Reads one census CSV (gzip or plain) with clean, unpadded values."""
    return pd.read_csv(path, skipinitialspace=True, nrows=nrows)


def census_spec(train: pd.DataFrame, options: InferenceOptions = CENSUS_INFERENCE,
                **option_changes: Any) -> FeatureSpec:
    """The census feature spec, vocabularies and statistics fitted on ``train``.

    ``options`` are :data:`CENSUS_INFERENCE` unless given; ``option_changes`` change some of them
    (e.g. ``numeric_encoding="scalar"``, as :meth:`InferenceOptions.replace`).
    """
    return FeatureSpec.from_dataframe(train, labels=LABELS, categorical=INTEGER_CODED, numeric=NUMERIC,
                                      exclude=NOT_FEATURES, options=options, **option_changes)


def load_census(nrows: int | None = None, data_dir: str = DATA_DIR, seed: int = 1,
                options: InferenceOptions = CENSUS_INFERENCE, **option_changes: Any) -> CensusSplits:
    """Train, validation and test frames plus the spec fitted on train.

    ``nrows`` reads only the first rows of each file (for tests and demos); the
    validation/test halves are then halves of that slice. ``options`` and ``option_changes``
    go to :func:`census_spec`.
    """
    train = read_census_csv(os.path.join(data_dir, "train.csv.gz"), nrows)
    held_out = read_census_csv(os.path.join(data_dir, "test.csv.gz"), nrows)
    validation = held_out.sample(frac=0.5, random_state=seed)
    test = held_out.drop(validation.index)
    return CensusSplits(train.reset_index(drop=True), validation.reset_index(drop=True),
                        test.reset_index(drop=True), census_spec(train, options, **option_changes))
