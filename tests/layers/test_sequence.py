import numpy as np
import pytest
import tensorflow as tf

from tfmtl._keras import keras
from tfmtl.layers import SequencePooling, TargetAttention

HISTORY = np.array([[[1.0, 2.0], [3.0, -4.0], [9.0, 9.0]],
                    [[0.5, 0.5], [7.0, 7.0], [7.0, 7.0]]], np.float32)
MASK = np.array([[1, 1, 0], [1, 0, 0]], np.float32)


@pytest.mark.parametrize("mode, expected", [
    ("mean", [[2.0, -1.0], [0.5, 0.5]]),
    ("sum", [[4.0, -2.0], [0.5, 0.5]]),
    ("max", [[3.0, 2.0], [0.5, 0.5]]),
])
def test_pooling_hand_numbers_ignore_padding(mode, expected):
    out = SequencePooling(mode)(tf.constant(HISTORY), mask=tf.constant(MASK))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_pooling_empty_sequence_is_zero(mode):
    out = SequencePooling(mode)(tf.constant(-HISTORY), mask=tf.zeros([2, 3]))
    assert np.all(out.numpy() == 0.0)


def test_pooling_bad_mode_names_argument():
    with pytest.raises(ValueError, match="mode"):
        SequencePooling("median")


def _linear_attention(**kwargs):
    """One linear scoring layer with known weights: score = w . [h, c, h - c, h * c] + b."""
    layer = TargetAttention(units=[], **kwargs)
    layer(tf.constant(HISTORY), tf.ones([2, 2]))
    w = np.array([[1.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.5], [-1.0]], np.float32)
    layer._score.set_weights([w, np.array([0.25], np.float32)])
    return layer


def test_target_attention_hand_numbers_no_softmax():
    layer = _linear_attention()
    candidate = tf.constant([[1.0, 1.0], [2.0, 0.0]])
    out, weights = layer(tf.constant(HISTORY), candidate, mask=tf.constant(MASK), return_weights=True)
    # Row 0, h=(1,2), c=(1,1): 1*1 + 0.5*(1*1) - 1*(2*1) + 0.25 = -0.25
    #        h=(3,-4):         3 + 0.5*3 - 1*(-4) + 0.25 = 8.75; position 2 is padding.
    # Row 1, h=(.5,.5), c=(2,0): 0.5 + 0.5*1.0 - 0 + 0.25 = 1.25
    np.testing.assert_allclose(weights.numpy(), [[-0.25, 8.75, 0.0], [1.25, 0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(out.numpy(), [[-0.25 * 1 + 8.75 * 3, -0.25 * 2 + 8.75 * -4], [0.625, 0.625]],
                               rtol=1e-6)


def test_target_attention_softmax_over_real_positions():
    layer = _linear_attention(softmax=True)
    candidate = tf.constant([[1.0, 1.0], [2.0, 0.0]])
    _, weights = layer(tf.constant(HISTORY), candidate, mask=tf.constant(MASK), return_weights=True)
    e = np.exp([-0.25, 8.75])
    np.testing.assert_allclose(weights.numpy(), [[e[0] / e.sum(), e[1] / e.sum(), 0.0], [1.0, 0.0, 0.0]],
                               rtol=1e-5, atol=1e-7)
    _, empty = layer(tf.constant(HISTORY), candidate, mask=tf.zeros([2, 3]), return_weights=True)
    assert np.all(empty.numpy() == 0.0)


@pytest.mark.parametrize("softmax", [False, True])
def test_target_attention_output_unchanged_when_padded_further(softmax):
    layer = TargetAttention(units=[6, 3], softmax=softmax)
    candidate = tf.constant(np.random.default_rng(0).normal(size=(2, 2)), tf.float32)
    out = layer(tf.constant(HISTORY), candidate, mask=tf.constant(MASK))
    padded = np.concatenate([HISTORY, np.full((2, 4, 2), 55.0, np.float32)], axis=1)
    padded_mask = np.concatenate([MASK, np.zeros((2, 4), np.float32)], axis=1)
    out_padded = layer(tf.constant(padded), candidate, mask=tf.constant(padded_mask))
    np.testing.assert_allclose(out.numpy(), out_padded.numpy(), rtol=1e-5, atol=1e-6)


def test_gradients_reach_history_embeddings_but_not_padding():
    table = tf.Variable(np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32))
    ids = tf.constant([[1, 2, 0], [3, 0, 0]])
    mask = tf.cast(ids > 0, tf.float32)
    layer = TargetAttention(units=[8])
    with tf.GradientTape() as tape:
        history = tf.gather(table, ids)
        loss = tf.reduce_sum(layer(history, tf.gather(table, [4, 5]), mask=mask))
    grad = tf.convert_to_tensor(tape.gradient(loss, table)).numpy()
    assert np.abs(grad[[1, 2, 3]]).sum(axis=1).min() > 0
    assert np.all(grad[0] == 0)  # id 0 is only ever padding


def test_serialization_round_trip():
    for layer in (SequencePooling("max"), TargetAttention(units=[5], softmax=True)):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    layer = TargetAttention(units=[5])
    history = keras.Input((3, 2))
    candidate, mask = keras.Input((2,)), keras.Input((3,))
    model = keras.Model([history, candidate, mask], layer(history, candidate, mask=mask))
    clone = keras.models.model_from_json(model.to_json())
    clone.set_weights(model.get_weights())
    args = [HISTORY, np.ones((2, 2), np.float32), MASK]
    np.testing.assert_allclose(clone(args).numpy(), model(args).numpy(), rtol=1e-6)


def test_target_attention_bad_arguments():
    with pytest.raises(ValueError, match="units"):
        TargetAttention(units=[4, 0])
    with pytest.raises(ValueError, match="candidate"):
        TargetAttention(units=[2])(tf.constant(HISTORY), tf.ones([2, 1, 2]))


def test_self_attention_encoder_masks_padding_and_ignores_extra_padding():
    from tfmtl.layers import SelfAttentionEncoder

    keras.utils.set_random_seed(0)
    history = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)  # d=4: LayerNorm of d=2 is +-1
    layer = SelfAttentionEncoder(max_len=8, num_heads=2)
    out = layer(tf.constant(history), mask=tf.constant(MASK))
    assert out.shape.as_list() == [2, 3, 4]
    assert np.all(out.numpy()[MASK == 0] == 0)
    padded = np.concatenate([history, np.full((2, 4, 4), 55.0, np.float32)], axis=1)
    padded_mask = np.concatenate([MASK, np.zeros((2, 4), np.float32)], axis=1)
    out_padded = layer(tf.constant(padded), mask=tf.constant(padded_mask))
    np.testing.assert_allclose(out_padded.numpy()[:, :3], out.numpy(), rtol=1e-5, atol=1e-5)
    # Changing a real item changes the other real position's output (attention mixes them).
    changed = history.copy()
    changed[0, 1] += 1.0
    assert not np.allclose(layer(tf.constant(changed), mask=tf.constant(MASK)).numpy()[0, 0], out.numpy()[0, 0])
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()


def test_self_attention_encoder_bad_arguments():
    from tfmtl.layers import SelfAttentionEncoder

    with pytest.raises(ValueError, match="max_len"):
        SelfAttentionEncoder(max_len=0)
    with pytest.raises(ValueError, match="num_heads"):
        SelfAttentionEncoder(max_len=4, num_heads=0)
    with pytest.raises(ValueError, match="max_len=2"):
        SelfAttentionEncoder(max_len=2)(tf.constant(HISTORY))


def test_self_attention_encoder_keras_file_round_trip(tmp_path):
    from tfmtl.layers import SelfAttentionEncoder

    sequence, mask = keras.Input((3, 4)), keras.Input((3,))
    model = keras.Model([sequence, mask], SelfAttentionEncoder(max_len=3, num_heads=2)(sequence, mask=mask))
    args = [np.random.default_rng(3).normal(size=(2, 3, 4)).astype(np.float32), MASK]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(args).numpy(), model(args).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_self_attention_encoder_causal_never_sees_later_positions(norm_first):
    from tfmtl.layers import SelfAttentionEncoder

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(4).normal(size=(2, 5, 4)).astype(np.float32)
    layer = SelfAttentionEncoder(max_len=5, num_heads=2, causal=True, norm_first=norm_first)
    out = layer(tf.constant(x)).numpy()
    for t in range(4):
        changed = x.copy()
        changed[:, t + 1:] *= -2.0  # every later position changes (a shift alone LayerNorm would undo)
        again = layer(tf.constant(changed)).numpy()
        np.testing.assert_allclose(again[:, : t + 1], out[:, : t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(again[:, t + 1], out[:, t + 1])
    # Without the causal mask the first position does see the later ones.
    full = SelfAttentionEncoder(max_len=5, num_heads=2, norm_first=norm_first)
    changed = x.copy()
    changed[:, 1:] *= -2.0
    assert not np.allclose(full(tf.constant(changed)).numpy()[:, 0], full(tf.constant(x)).numpy()[:, 0])


def test_self_attention_encoder_causal_with_left_padding_and_no_positions():
    from tfmtl.layers import SelfAttentionEncoder

    keras.utils.set_random_seed(1)
    x = np.random.default_rng(5).normal(size=(1, 4, 4)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1]], np.float32)
    layer = SelfAttentionEncoder(max_len=4, num_heads=1, causal=True, positions=False, norm_first=True)
    out = layer(tf.constant(x), mask=tf.constant(mask)).numpy()
    assert np.all(out[0, :2] == 0) and np.all(np.isfinite(out))
    assert not layer.weights or all("positions" not in w.name for w in layer.weights)
    # The padded inputs never reach a real position, whatever they hold.
    junk = x.copy()
    junk[0, :2] = 99.0
    np.testing.assert_allclose(layer(tf.constant(junk), mask=tf.constant(mask)).numpy(), out, rtol=1e-5, atol=1e-6)
    # Position 2 (the first real one) attends to itself only: it ignores position 3.
    later = x.copy()
    later[0, 3] -= 2.0
    np.testing.assert_allclose(layer(tf.constant(later), mask=tf.constant(mask)).numpy()[0, 2], out[0, 2],
                               rtol=1e-5, atol=1e-6)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    assert clone.get_config()["causal"] and clone.get_config()["norm_first"] and not clone.get_config()["positions"]
