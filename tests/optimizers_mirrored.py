"""Run by test_optimizers.py in its own process (logical devices must be set before TF starts).

Trains the same small MMoE for 4 steps of 32 examples under MirroredStrategy on 2 logical CPUs
with tfmtl's fused Adam, and on one device with Keras' Adam; prints the largest weight difference.
"""

import numpy as np
import tensorflow as tf

from tfmtl.compat import keras  # tf_keras (Keras 2), the Keras of every tfmtl model
from tfmtl.datasets import synthetic
from tfmtl.models import MMoE
from tfmtl.optimizers import Adam

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
df, spec = synthetic.multitask_frame(256, seed=0)


def build(optimizer):
    keras.utils.set_random_seed(5)
    model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4], batch_norm=False)
    model.compile(optimizer=optimizer, metrics=[])
    return model


with strategy.scope():
    mirrored = build(Adam(0.01))
single = build(keras.optimizers.Adam(0.01))
single.set_weights(mirrored.get_weights())
data = mirrored.make_dataset(df, batch_size=32).take(4)
mirrored.fit(data, epochs=1, verbose=0)
single.fit(data, epochs=1, verbose=0)
print(max(float(np.max(np.abs(a.numpy() - b.numpy())))
          for a, b in zip(mirrored.trainable_variables, single.trainable_variables)))
