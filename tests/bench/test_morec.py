"""bench.morec's SASRec pieces: training windows, the per-position pair adapter, merging per-seed files."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bench import morec
from tfmtl.compat import keras
from tfmtl.models.sasrec import SASRec, sasrec_bce_loss
from tfmtl.training import MultiObjectiveModel


def test_sequence_windows_cover_every_target_once():
    seqs = [np.array([5, 6, 7, 8, 9]), np.array([3]), np.array([1, 2])]
    history, positive = morec.sequence_windows(seqs, max_len=3)
    assert history.tolist() == [[6, 7, 8], [0, 0, 5], [0, 0, 1]]
    assert positive.tolist() == [[7, 8, 9], [0, 0, 6], [0, 0, 2]]
    assert sorted(positive[positive > 0].tolist()) == [2, 6, 7, 8, 9]  # every s[1:] once, no target for [3]
    assert np.array_equal(history > 0, positive > 0)


def test_last_items_left_pads():
    assert morec.last_items([np.array([1, 2, 3, 4]), np.array([7]), np.array([], np.int64)], 3).tolist() == [
        [2, 3, 4], [0, 0, 7], [0, 0, 0]]


def test_position_pairs_bce_is_half_the_sasrec_loss_and_weights_follow_positions():
    keras.utils.set_random_seed(0)
    sasrec = SASRec(num_items=9, max_len=4, dim=8, dropout=0.0)
    x = {"history": tf.constant([[0, 1, 2, 3], [4, 5, 6, 7]]), "positive": tf.constant([[0, 2, 3, 4], [5, 6, 7, 8]]),
         "negative": tf.constant([[9, 9, 1, 1], [2, 2, 3, 3]])}
    pairs = morec._PositionPairs(sasrec)(x)["pair"]
    assert pairs.shape.as_list() == [7, 2]  # 3 + 4 real positions
    logits = sasrec(x)
    expected = float(sasrec_bce_loss(logits["positive"], logits["negative"], x["positive"] > 0)) / 2
    wrapped = MultiObjectiveModel(morec._PositionPairs(sasrec), {"accuracy": ("pair", "binary_crossentropy"),
                                                                "revenue": ("pair", "binary_crossentropy")})
    y = {"pair": tf.tile([[1.0, 0.0]], [7, 1])}
    weights = tf.constant([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # the second row's positions only
    losses = wrapped.objective_losses(y, wrapped(x), {"revenue": weights})
    assert float(losses["accuracy"]) == pytest.approx(expected, rel=1e-5)
    second = {k: v[1:] for k, v in x.items()}
    only_second = float(sasrec_bce_loss(*(sasrec(second)[n] for n in ("positive", "negative")), second["positive"] > 0))
    assert float(losses["revenue"]) == pytest.approx(only_second / 2 * 4 / 7, rel=1e-5)


def test_merge_reads_single_seed_files_of_the_first_table(tmp_path):
    one = {"command": "python -m bench.morec ", "settings": {"seed": 0}, "base": {}, "runs": {}}
    two = {"command": "python -m bench.morec --seed 1", "settings": {"seed": 1}, "base": {}, "runs": {}}
    paths = []
    for n, part in enumerate((two, one)):
        paths.append(str(tmp_path / f"{n}.json"))
        with open(paths[-1], "w") as f:
            json.dump(part, f)
    merged = morec.merge(paths, "mf")
    assert list(merged["seeds"]) == ["0", "1"] and merged["seeds"]["1"]["seed"] == 1
