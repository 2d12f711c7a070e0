import itertools

import numpy as np
import tensorflow as tf

from tfmtl.layers import FactorizationMachine, FMFirstOrder, FMSecondOrder, fm_second_order


def test_second_order_equals_explicit_pairwise_sum():
    v = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    expected = [sum(v[b, i] @ v[b, j] for i, j in itertools.combinations(range(4), 2)) for b in range(5)]
    np.testing.assert_allclose(fm_second_order(tf.constant(v)).numpy().ravel(), expected, rtol=1e-5)
    np.testing.assert_allclose(FMSecondOrder(reduce=False)(v).numpy().sum(1), expected, rtol=1e-5)


def test_first_order_is_sum_of_id_weights_plus_linear_dense():
    layer = FMFirstOrder(field_sizes=[3, 2], units=2)
    ids, dense = tf.constant([[2, 1], [0, 0]]), tf.constant([[1.0, -2.0], [0.0, 0.0]])
    layer([ids, dense])
    table = np.arange(10, dtype=np.float32).reshape(5, 2)  # rows 0-2 field 0, rows 3-4 field 1
    kernel = np.array([[1.0, 0.5], [2.0, 0.0]], np.float32)
    layer.weights_per_id.embeddings.assign(table)
    layer.dense_kernel.assign(kernel)
    layer.bias.assign([0.1, 0.2])
    expected_0 = table[2] + table[3 + 1] + np.array([1.0, -2.0]) @ kernel + [0.1, 0.2]
    expected_1 = table[0] + table[3] + [0.1, 0.2]
    np.testing.assert_allclose(layer([ids, dense]).numpy(), [expected_0, expected_1], rtol=1e-6)


def test_factorization_machine_starts_as_classic_fm_for_each_task():
    v = tf.random.normal([4, 3, 2])
    fm = FactorizationMachine(field_sizes=[2, 2, 2], num_outputs=3)
    out = fm([tf.zeros([4, 3], tf.int64), tf.zeros([4, 1]), v]).numpy()
    np.testing.assert_allclose(out, np.repeat(fm_second_order(v).numpy(), 3, axis=1), rtol=1e-5)


def test_shared_fm_by_hand_with_dense_fields_and_equal_task_columns():
    from tfmtl.layers import SharedFactorizationMachine

    fm = SharedFactorizationMachine(field_sizes=[3, 2], num_outputs=3)
    ids = tf.constant([[2, 1]])
    dense = tf.constant([[2.0]])
    v = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])  # two field vectors, D = 2
    fm([ids, dense, v])  # build
    # first order: w(field0=2) = 0.5, w(field1=1) = -1, w_dense = 0.25, bias 0.1
    fm.first_order.weights_per_id.embeddings.assign([[0.0], [0.0], [0.5], [0.0], [-1.0]])
    fm.first_order.dense_kernel.assign([[0.25]])
    fm.first_order.bias.assign([0.1])
    fm.dense_vectors.assign([[3.0, 1.0]])  # u_dense; the dense field's vector is x * u = [6, 2]
    # cross: <v0, v1> + <v0, 6,2> + <v1, 6,2> = 0 + 6 + 2 = 8; linear: 0.5 - 1 + 0.25 * 2 + 0.1 = 0.1
    out = fm([ids, dense, v]).numpy()
    np.testing.assert_allclose(out, [[8.1, 8.1, 8.1]], rtol=1e-6)
    # the dense field really is in the cross term: x = 0 removes its two pairs and its linear part
    np.testing.assert_allclose(fm([ids, tf.zeros([1, 1]), v]).numpy(), [[-0.4, -0.4, -0.4]], rtol=1e-6)
    round_trip = SharedFactorizationMachine.from_config(fm.get_config())
    assert round_trip.num_outputs == 3 and round_trip.field_sizes == [3, 2]
