"""SASRec (Kang & McAuley 2018): shapes, causality, padding, the BCE loss by hand, a .keras round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.models.sasrec import SASRec, sasrec_bce_loss

HISTORY = np.array([[0, 0, 3, 5, 7], [2, 4, 6, 8, 10]], np.int64)
POSITIVE = np.array([[0, 3, 5, 7, 9], [4, 6, 8, 10, 12]], np.int64)
NEGATIVE = np.array([[1, 1, 2, 2, 2], [1, 3, 5, 7, 9]], np.int64)


def _inputs(history=HISTORY, positive=POSITIVE, negative=NEGATIVE):
    return {"history": tf.constant(history), "positive": tf.constant(positive), "negative": tf.constant(negative)}


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    return SASRec(num_items=12, max_len=5, dim=8, **kwargs)


def test_shapes_and_scores_are_dot_products():
    model = _model()
    out = model(_inputs())
    assert out["positive"].shape.as_list() == [2, 5] and out["negative"].shape.as_list() == [2, 5]
    states = model.encode(tf.constant(HISTORY)).numpy()
    assert states.shape == (2, 5, 8)
    table = model.item_embedding.embeddings.numpy()
    np.testing.assert_allclose(out["positive"].numpy(), np.einsum("btd,btd->bt", states, table[POSITIVE]),
                               rtol=1e-5, atol=1e-5)
    users, items = model.user_embeddings(tf.constant(HISTORY)).numpy(), model.item_embeddings().numpy()
    assert users.shape == (2, 8) and items.shape == (12, 8)
    np.testing.assert_allclose(users, states[:, -1], rtol=1e-6)
    np.testing.assert_allclose(items, table[1:])


def test_causal_position_t_never_sees_t_plus_1():
    model = _model(num_blocks=2)
    base = model.encode(tf.constant(HISTORY)).numpy()
    for t in range(4):
        changed = HISTORY.copy()
        changed[:, t + 1:] = 11  # a different item at every later position
        again = model.encode(tf.constant(changed)).numpy()
        np.testing.assert_allclose(again[1, : t + 1], base[1, : t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(again[1, t + 1], base[1, t + 1])


def test_padding_is_masked():
    model = _model()
    states = model.encode(tf.constant(HISTORY)).numpy()
    assert np.all(states[0, :2] == 0) and np.all(states[0, 2:] != 0)
    # What the positive/negative inputs hold at padded positions changes no real logit, and the loss
    # (masked by positive > 0) not at all.
    junk = NEGATIVE.copy()
    junk[0, 0] = 12
    a, b = model(_inputs()), model(_inputs(negative=junk))
    np.testing.assert_allclose(a["negative"].numpy()[:, 1:], b["negative"].numpy()[:, 1:], rtol=1e-6)
    mask = tf.constant(POSITIVE > 0)
    assert float(sasrec_bce_loss(a["positive"], a["negative"], mask)) == pytest.approx(
        float(sasrec_bce_loss(b["positive"], b["negative"], mask)), rel=1e-6)


def test_bce_loss_by_hand():
    pos = np.array([[0.0, 2.0, -1.0]], np.float32)
    neg = np.array([[5.0, -1.0, 0.5]], np.float32)
    mask = np.array([[0.0, 1.0, 1.0]], np.float32)

    def nls(x):  # -log sigmoid(x)
        return np.log1p(np.exp(-x))

    expected = ((nls(2.0) + nls(1.0)) + (nls(-1.0) + nls(-0.5))) / 2
    assert float(sasrec_bce_loss(tf.constant(pos), tf.constant(neg), tf.constant(mask))) == pytest.approx(
        expected, rel=1e-6)
    # By hand: -log s(2) = 0.126928, -log(1 - s(-1)) = 0.313262, -log s(-1) = 1.313262, -log(1 - s(0.5)) = 0.974077.
    assert expected == pytest.approx((0.126928 + 0.313262 + 1.313262 + 0.974077) / 2, abs=1e-5)
    assert float(sasrec_bce_loss(tf.constant(pos), tf.constant(neg), tf.zeros([1, 3]))) == 0.0


def test_training_lowers_the_loss_and_gradients_skip_padding_rows():
    model = _model(dropout=0.0)
    optimizer = keras.optimizers.Adam(0.01)
    mask = tf.constant(POSITIVE > 0)
    losses = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            out = model(_inputs(), training=True)
            loss = sasrec_bce_loss(out["positive"], out["negative"], mask)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    with tf.GradientTape() as tape:
        out = model(_inputs(), training=True)
        loss = sasrec_bce_loss(out["positive"], out["negative"], mask)
    grad = tape.gradient(loss, model.item_embedding.embeddings)
    dense = tf.convert_to_tensor(grad).numpy()
    assert np.all(dense[11] == 0)  # item 11 appears nowhere in the inputs


def test_keras_file_round_trip(tmp_path):
    model = _model(dropout=0.1, num_blocks=1, l2=1e-4)
    expected = model(_inputs())
    model.save(tmp_path / "sasrec.keras")
    loaded = keras.models.load_model(tmp_path / "sasrec.keras")
    assert isinstance(loaded, SASRec) and loaded.get_config() == model.get_config()
    got = loaded(_inputs())
    for name in ("positive", "negative"):
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_items"):
        SASRec(num_items=0)
    with pytest.raises(ValueError, match="dropout"):
        SASRec(num_items=3, dropout=1.0)
    with pytest.raises(ValueError, match="max_len=5"):
        SASRec(num_items=12, max_len=5, dim=8).encode(tf.zeros([1, 6], tf.int64))
    with pytest.raises(ValueError, match="negative"):
        SASRec(num_items=12, max_len=5, dim=8)({"history": tf.constant(HISTORY), "positive": tf.constant(POSITIVE)})
