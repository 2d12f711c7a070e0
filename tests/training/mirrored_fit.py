"""MultiObjectiveModel under MirroredStrategy on 2 logical CPUs; prints one JSON line.

Run by test_multi_objective_model.py in its own process (logical devices must be set
before TensorFlow initialises).
"""

import json

import numpy as np
import tensorflow as tf
from conftest import two_task_data, two_task_model

from tfmtl.compat import keras  # tf_keras (Keras 2), the Keras of every tfmtl model
from tfmtl.training import MultiObjectiveModel, PIDController, PIDWeighting

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def build():
    controller = PIDController(set_point=0.3, kp=0.01, ki=0.001, q_min=0.5)
    model = MultiObjectiveModel(
        two_task_model(), {"income": ("ctr", "binary_crossentropy"), "marital": ("cvr", "binary_crossentropy")},
        accuracy_objective="income",
        weighting=PIDWeighting("income", controller, preferences={"marital": 1.0}, auxiliary_scale=0.2))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model, controller


x, y = two_task_data(64)
with strategy.scope():
    model, controller = build()
history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0).history
evaluate = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), verbose=0, return_dict=True)

pred = model.predict(x, verbose=0)


def bce(t, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


replicas = [{"weight": float(w), "integral": float(i), "steps": int(s)} for w, i, s in zip(
    strategy.experimental_local_results(controller.last_weight),
    strategy.experimental_local_results(controller.integral),
    strategy.experimental_local_results(controller.steps))]

# One step on a 32-example batch: 2 replicas x 16 vs one device x 32.
with strategy.scope():
    dist_model, _ = build()
single_model, _ = build()
single_model.set_weights(dist_model.get_weights())
before = [v.numpy() for v in single_model.trainable_variables]
one_batch = tf.data.Dataset.from_tensor_slices((x, y)).take(32).batch(32)
dist_model.fit(one_batch, epochs=1, verbose=0)
single_model.fit(one_batch, epochs=1, verbose=0)
pairs = list(zip(dist_model.trainable_variables, single_model.trainable_variables))
diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in pairs)
moved = max(float(np.max(np.abs(b.numpy() - b0))) for (_, b), b0 in zip(pairs, before))

print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "history": history,
    "evaluate": evaluate,
    "numpy": {"loss_income": bce(y["ctr"], pred["ctr"]), "loss_marital": bce(y["cvr"], pred["cvr"])},
    "controller_replicas": replicas,
    "max_weight_diff_vs_single_device": diff,
    "max_weight_change": moved,
}))
