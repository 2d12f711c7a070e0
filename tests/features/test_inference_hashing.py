"""Inference of id spaces: vocabulary up to the cap, above it a hash space sized for < 5% collisions."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from tfmtl.features.spec import (
    DEFAULT_MAX_COLLISION_SHARE,
    DEFAULT_MAX_VOCABULARY,
    FeatureSpec,
    SpecError,
    expected_collision_share,
    hash_buckets_for,
)


def test_collision_share_matches_hand_calculation():
    # 3 ids, 2 buckets: one id avoids both others with probability (1/2)^2, so it collides with 3/4.
    assert expected_collision_share(3, 2) == pytest.approx(0.75)
    # 1001 ids, 1000 buckets: 1 - (999/1000)^1000 = 0.63230457...
    assert expected_collision_share(1001, 1000) == pytest.approx(1 - 0.999 ** 1000, rel=1e-12)
    assert expected_collision_share(1, 10) == 0.0
    assert expected_collision_share(5, 1) == 1.0


def test_hash_buckets_for_is_the_fewest_under_the_target():
    for n in (2, 10, 245_000, 2_000_000):
        m = hash_buckets_for(n, 0.05)
        assert expected_collision_share(n, m) < 0.05 <= expected_collision_share(n, m - 1)
    # about (n - 1) / -ln(0.95) = 19.5 buckets per id
    assert hash_buckets_for(2_000_000) == pytest.approx(1_999_999 / -math.log(0.95), rel=1e-4)
    with pytest.raises(ValueError, match="max_collision_share"):
        hash_buckets_for(10, 1.5)


def test_collision_share_matches_the_keras_hashing_layer():
    import tf_keras as keras  # the hash used by FeaturePreprocessing (keras.layers.Hashing)

    n = 20_000
    m = hash_buckets_for(n, 0.05)
    ids = np.array([f"user_{i}" for i in range(n)])
    buckets = keras.layers.Hashing(num_bins=m)(ids).numpy().ravel()
    counts = np.bincount(buckets, minlength=m)
    empirical = counts[buckets].__gt__(1).mean()
    expected = expected_collision_share(n, m)
    assert expected < 0.05
    # binomial noise on ~1000 colliding ids of 20k: sd about 0.15 points
    assert empirical == pytest.approx(expected, abs=0.01)


def _users(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user": [f"u{i}" for i in range(n)], "clicked": np.arange(n) % 2})


def test_245k_users_get_a_vocabulary_and_the_report_says_so():
    spec = FeatureSpec.from_dataframe(_users(245_000), labels=["clicked"])
    user = spec.feature("user")
    assert user.hash_buckets is None and user.num_ids == 245_001
    (choice,) = spec.inference_report.tables
    assert (choice.name, choice.vocabulary_size, choice.hash_buckets) == ("user", 245_000, None)
    assert "vocabulary of 245,000 values" in str(spec.inference_report)


def test_ids_above_a_lowered_cap_are_hashed_under_5_percent_and_reported():
    spec = FeatureSpec.from_dataframe(_users(20_000), labels=["clicked"], max_vocabulary=10_000)
    user = spec.feature("user")
    assert user.hash_buckets == hash_buckets_for(20_000, DEFAULT_MAX_COLLISION_SHARE)
    (choice,) = spec.inference_report.hashed
    assert choice.expected_collision_share < 0.05
    assert "20,000 distinct values hashed into" in str(spec.inference_report)


def test_list_ids_above_the_cap_are_hashed_by_the_same_rule():
    df = pd.DataFrame({"history": [[f"i{2 * r}", f"i{2 * r + 1}"] for r in range(500)], "clicked": [0, 1] * 250})
    spec = FeatureSpec.from_dataframe(df, labels=["clicked"], max_vocabulary=100)
    assert spec.feature("history").hash_buckets == hash_buckets_for(1000)


def test_explicit_hash_buckets_are_used_and_their_share_reported():
    spec = FeatureSpec.from_dataframe(_users(2_000), labels=["clicked"], max_vocabulary=1_000, hash_buckets=4_000)
    (choice,) = spec.inference_report.hashed
    assert choice.hash_buckets == 4_000
    assert choice.expected_collision_share == pytest.approx(expected_collision_share(2_000, 4_000))


@pytest.mark.parametrize("field, value, message", [
    ("max_vocabulary", 0, "inference option max_vocabulary must be an integer >= 1, got 0"),
    ("max_collision_share", 0.0, "max_collision_share must be in"),
    ("hash_buckets", 0, "inference option hash_buckets must be None or >= 1, got 0"),
])
def test_bad_sizing_options_name_the_field(field, value, message):
    with pytest.raises(SpecError, match=message):
        FeatureSpec.from_dataframe(_users(10), labels=["clicked"], **{field: value})


def test_2m_users_are_hashed_under_5_percent():
    # 2M unique strings: about 3 s of inference on a shared 2-core machine
    n = 2_000_000
    assert n > DEFAULT_MAX_VOCABULARY
    spec = FeatureSpec.from_dataframe(_users(n), labels=["clicked"])
    (choice,) = spec.inference_report.hashed
    assert choice.hash_buckets == hash_buckets_for(n) and choice.expected_collision_share < 0.05


def test_a_spec_json_written_before_the_hashing_change_still_loads(tmp_path):
    # Written by the code before this change (session 40): the JSON format did not change.
    old = os.path.join(os.path.dirname(__file__), "data", "spec_before_inference_report.json")
    spec = FeatureSpec.load(old)
    assert spec.feature("u").vocabulary == ("a", "b") and spec.label_names == ["y"]
    assert spec.inference_report is None
    path = tmp_path / "spec.json"
    spec.save(path)
    assert json.loads(path.read_text()) == json.loads(open(old).read())
