import numpy as np
import pytest
import tensorflow as tf

from tfmtl.compat import keras
from tfmtl.layers import (
    CGC,
    MLP,
    PLE,
    ESMMHead,
    ExpertGates,
    FactorizationMachine,
    FieldEmbedding,
    FMFirstOrder,
    FMSecondOrder,
    GroupedDense,
    GroupedMLP,
    MixtureOfExperts,
    TaskTowers,
)

X = tf.random.stateless_normal([4, 6], seed=[1, 2])
IDS = tf.constant([[0, 1], [2, 0], [1, 1], [0, 0]])
CASES = [
    (lambda: FieldEmbedding([3, 2], 4, embeddings_regularizer="l2"), IDS),
    (lambda: MLP([8, 4], batch_norm=True, dropout=0.1), X),
    (lambda: GroupedDense(3, 5, activation="relu"), X),
    (lambda: GroupedMLP(2, [8, 4], batch_norm=True), X),
    (lambda: ExpertGates(2, 3, hidden_units=[4]), X),
    (lambda: MixtureOfExperts(3, [8], 2, gate_units=[4], batch_norm=True), X),
    (lambda: CGC(2, 1, 2, [8], gate_units=[4]), X),
    (lambda: PLE(2, 2, 1, 1, [8]), X),
    (lambda: TaskTowers(2, [4]), X),
    (lambda: FMSecondOrder(reduce=False), tf.reshape(X, [4, 3, 2])),
    (lambda: FMFirstOrder([3, 2], units=2), [IDS, X]),
    (lambda: FactorizationMachine([3, 2], 2), [IDS, X, tf.reshape(X[:, :4], [4, 2, 2])]),
    (lambda: ESMMHead(), X[:, :2]),
]


@pytest.mark.parametrize("make, inputs", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_layer_round_trips_through_keras_serialization(make, inputs):
    layer = make()
    expected = layer(inputs)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is type(layer)
    clone(inputs)
    clone.set_weights(layer.get_weights())
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6),
                          expected, clone(inputs))


def test_a_registered_name_cannot_be_taken_by_another_class():
    # Two classes under one name made Keras load the PLE layer as the PLE model once.
    from tfmtl.compat import register
    from tfmtl.layers.extraction import PLE

    with pytest.raises(ValueError, match=r"tfmtl>PLE is already registered for tfmtl\.layers\.extraction\.PLE"):
        @register(name="PLE")
        class Impostor(keras.layers.Layer):
            pass

    assert register(PLE) is PLE  # the same class again (a module reload) is fine
