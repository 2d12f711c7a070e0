"""FieldEmbedding over a table split into shards (a ShardedVariable, as ParameterServerStrategy makes it)."""

import numpy as np
import tensorflow as tf
from tensorflow.python.distribute.sharded_variable import ShardedVariable

from tfmtl.layers.embedding import FieldEmbedding


def test_a_table_sharded_in_two_embeds_and_takes_gradients_as_the_whole_table():
    layer = FieldEmbedding([3, 4], embedding_dim=2)
    ids = tf.constant([[0, 3], [2, 1]])
    whole = layer(ids).numpy()
    table = layer.embeddings.numpy()
    layer.embeddings = ShardedVariable([tf.Variable(table[:4], name="embeddings/part_0"),
                                        tf.Variable(table[4:], name="embeddings/part_1")])
    with tf.GradientTape() as tape:
        sharded = layer(ids)
        loss = tf.reduce_sum(sharded)
    np.testing.assert_allclose(sharded.numpy(), whole)
    grads = tape.gradient(loss, layer.embeddings.variables)
    # Rows 0, 2 (field 0) on the first shard; rows 3 + 3 = 6 and 1 + 3 = 4 (field 1) on the second.
    assert sorted(tf.convert_to_tensor(grads[0]).numpy().sum(axis=1).tolist()) == [0.0, 0.0, 2.0, 2.0]
    assert sorted(tf.convert_to_tensor(grads[1]).numpy().sum(axis=1).tolist()) == [0.0, 2.0, 2.0]
    list_ids = tf.constant([[3, 1, -1]])
    np.testing.assert_allclose(layer(list_ids, field=1).numpy()[0], table[[6, 4, 3]])
