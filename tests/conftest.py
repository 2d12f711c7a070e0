"""Shared fixtures: small real data slices, seeded."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tfmtl.compat import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def census_slice():
    """The first 20,000 rows of each bundled census file (train; held-out halves of 10,000)."""
    from tfmtl.datasets import census

    return census.load_census(nrows=20_000)


@pytest.fixture(scope="session")
def multitask_data():
    from tfmtl.datasets import synthetic

    return synthetic.multitask_frame(600, seed=0)


@pytest.fixture(scope="session")
def funnel_data():
    from tfmtl.datasets import synthetic

    return synthetic.funnel_frame(800, seed=0)
