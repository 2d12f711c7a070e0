"""A Keras model wrapper whose ``train_step`` optimises a weighted sum of objective losses.

An *objective* is a named loss on one of the wrapped model's outputs, computed with
its own sample weights. Several objectives may share an output: MoRec's revenue,
fairness and alignment objectives are the accuracy loss under sample weights from
the adaptive sampler (:mod:`tfmtl.training.sampler`), keyed by objective name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras, register, without_autograph
from tfmtl.training.group_auc import batch_features
from tfmtl.training.weighting import StaticWeights, Weighting

__all__ = ["MultiObjectiveModel"]

LossLike = Any  # a loss identifier, a keras.losses.Loss or a callable(y_true, y_pred) -> [B]


class _LastValue(keras.metrics.Metric):
    """Reports the most recent value it was given (a loss weight in force), not an average."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        # Every replica writes the same value: read back the mean, i.e. that value.
        self.value = self.add_weight(name="value", initializer="zeros", aggregation=tf.VariableAggregation.MEAN)

    def update_state(self, value, sample_weight=None):
        return self.value.assign(tf.cast(tf.reshape(value, []), self.dtype))

    def result(self):
        return tf.identity(self.value)


class _Trackers:
    """The step metrics: ``loss``, ``loss_<objective>`` (means), ``q_<objective>`` (last values).

    A plain (non-trackable) holder, so that metric state stays out of ``model.weights``
    and checkpoints, as Keras' own compiled metrics do.
    """

    def __init__(self, objectives):
        self.total = keras.metrics.Mean(name="loss")
        self.losses = {name: keras.metrics.Mean(name=f"loss_{name}") for name in objectives}
        self.weights = {name: _LastValue(name=f"q_{name}") for name in objectives}

    def all(self) -> list:
        return [self.total, *self.losses.values(), *self.weights.values()]


@register
class MultiObjectiveModel(keras.Model):
    """Wraps any Keras model with dict outputs and trains it on weighted objective losses.

    Each training step computes every objective's loss (mean over the batch of the
    per-example loss times the objective's sample weights, as Keras'
    ``sum_over_batch_size``), asks the weighting scheme for the weights ``q_k``,
    takes one optimiser step on ``sum_k q_k * L_k + penalty + model regularisers``,
    and reports ``loss`` (the total), ``loss_<objective>`` (epoch means) and
    ``q_<objective>`` (the weight in force) as metrics, so ``fit`` history, callbacks
    and TensorBoard see them; ``evaluate`` reports the same without updating any
    controller.

    Data: ``(x, y)`` or ``(x, y, sample_weight)`` with ``y`` a dict keyed by output
    name. ``sample_weight`` is one ``[B]`` tensor for all objectives, or a dict keyed
    by objective name (falling back to output name; missing means uniform). ``x`` may
    be a DataFrame when the wrapped model has ``make_dataset`` (tfmtl models do).

    Args:
      model: a Keras model returning ``{output_name: [B, 1]}`` (or any per-example shape).
      objectives: ``{objective: (output_name, loss)}``; a bare ``loss`` means the output
        has the objective's name. Losses are Keras identifiers, ``keras.losses.Loss``
        instances or ``fn(y_true, y_pred) -> [B]``.
      accuracy_objective: the primary objective (the one a PID weighting controls);
        default: the first objective.
      weighting: a :class:`~tfmtl.training.Weighting` (default: all weights 1).

    Example:

    >>> inputs = keras.Input([3], name="x")
    >>> body = keras.layers.Dense(4, activation="relu")(inputs)
    >>> outputs = {t: keras.layers.Dense(1, activation="sigmoid", name=t)(body) for t in ("ctr", "cvr")}
    >>> base = keras.Model(inputs, outputs)
    >>> model = MultiObjectiveModel(base, {"ctr": "binary_crossentropy", "cvr": "binary_crossentropy"},
    ...                             weighting=StaticWeights({"cvr": 0.5}))
    >>> model.compile(optimizer="adam")
    >>> x = {"x": tf.random.normal([8, 3])}
    >>> y = {"ctr": tf.ones([8, 1]), "cvr": tf.zeros([8, 1])}
    >>> sorted(model.fit(x, y, epochs=1, verbose=0).history)
    ['loss', 'loss_ctr', 'loss_cvr', 'q_ctr', 'q_cvr']
    """

    def __init__(self, model: keras.Model, objectives: Mapping[str, Any], accuracy_objective: str | None = None,
                 weighting: Weighting | None = None, **kwargs):
        super().__init__(**kwargs)
        if not objectives:
            raise ValueError("at least one objective is needed")
        self.model = model
        self.objectives: dict[str, tuple[str, Any]] = {}
        for name, spec in objectives.items():
            output, loss = spec if isinstance(spec, (tuple, list)) else (name, spec)
            self.objectives[str(name)] = (str(output), keras.losses.get(loss))
        self.accuracy_objective = accuracy_objective or next(iter(self.objectives))
        if self.accuracy_objective not in self.objectives:
            raise ValueError(f"accuracy_objective {accuracy_objective!r} is not among {list(self.objectives)}")
        output_names = getattr(model, "output_names", None)
        if output_names:
            missing = sorted({out for out, _ in self.objectives.values()} - set(output_names))
            if missing:
                raise ValueError(f"outputs {missing} are not outputs of the wrapped model {list(output_names)}")
        self.weighting = weighting if weighting is not None else StaticWeights()
        # Weighting state (log-variances, controller) must exist before any traced step.
        self.weighting.build({name: tf.TensorShape([]) for name in self.objectives})

        self._trackers = _Trackers(self.objectives)

    # ----------------------------------------------------------------- model
    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    @property
    def metrics(self):
        metrics = self._trackers.all()
        if self._is_compiled and self.compiled_metrics is not None:
            metrics += self.compiled_metrics.metrics
        return metrics

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile`` without ``loss`` (the objectives are the losses).

        Without ``metrics`` a wrapped tfmtl model's default metrics (its ``default_metrics``:
        an AUC per output) are kept for the outputs the objectives train, so ``val_<output>_auc``
        is logged as for the unwrapped model and ``convergence_callbacks()`` can decide on it.
        """
        if loss is not None:
            raise ValueError("MultiObjectiveModel takes its losses from `objectives`; compile it without `loss`")
        if metrics is None and hasattr(self.model, "default_metrics"):
            trained = {output for output, _ in self.objectives.values()}
            metrics = {output: m for output, m in self.model.default_metrics().items() if output in trained} or None
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    # ---------------------------------------------------------------- losses
    def objective_losses(self, y: Mapping[str, tf.Tensor], y_pred: Mapping[str, tf.Tensor],
                         sample_weight=None) -> dict[str, tf.Tensor]:
        """``{objective: scalar}``: per-example loss x sample weight, summed, / batch size."""
        losses = {}
        for name, (output, loss_fn) in self.objectives.items():
            pred = y_pred[output]
            per_example = _per_example_loss(loss_fn, y[output], pred)
            weight = _objective_weight(sample_weight, name, output)
            batch = tf.cast(tf.shape(per_example)[0], per_example.dtype)
            if weight is not None:
                per_example = per_example * tf.cast(tf.reshape(weight, [-1]), per_example.dtype)
            losses[name] = tf.reduce_sum(per_example) / tf.maximum(batch, 1.0)
        return losses

    def _weighted_total(self, losses, training: bool):
        measured = dict(losses)
        replica = tf.distribute.get_replica_context()
        if training and replica is not None and replica.num_replicas_in_sync > 1:
            # The controller must see the global-batch loss, identical on every replica.
            acc = self.accuracy_objective
            measured[acc] = replica.all_reduce(tf.distribute.ReduceOp.MEAN, losses[acc])
        weights = self.weighting(measured, training=training)
        total = tf.add_n([weights[name] * losses[name] for name in losses]) + self.weighting.penalty()
        if self.losses:  # regularisers of the wrapped model and of the weighting
            total += tf.add_n(self.losses)
        return total, weights

    def _record(self, total, losses, weights):
        self._trackers.total.update_state(total)
        for name in self.objectives:
            self._trackers.losses[name].update_state(losses[name])
            self._trackers.weights[name].update_state(weights[name])

    # ----------------------------------------------------------------- steps
    @without_autograph
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            losses = self.objective_losses(y, y_pred, sample_weight)
            total, weights = self._weighted_total(losses, training=True)
            # Gradients are summed over replicas: scale so the step is that of the global mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = total / replicas if replicas > 1 else total
        self.optimizer.minimize(scaled, self.trainable_variables, tape=tape)
        with batch_features(x):
            return self._finish_step(total, losses, weights, y, y_pred, sample_weight)

    @without_autograph
    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        losses = self.objective_losses(y, y_pred, sample_weight)
        total, weights = self._weighted_total(losses, training=False)
        with batch_features(x):  # for the group metrics (GroupAUC(group=...))
            return self._finish_step(total, losses, weights, y, y_pred, sample_weight)

    def _finish_step(self, total, losses, weights, y, y_pred, sample_weight):
        self._record(total, losses, weights)
        if self._is_compiled and self.compiled_metrics is not None:
            shared = None if isinstance(sample_weight, Mapping) else sample_weight
            self.compiled_metrics.update_state(y, y_pred, shared)
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------ DataFrames
    def _maybe_dataset(self, data, **kwargs):
        if isinstance(data, pd.DataFrame) and hasattr(self.model, "make_dataset"):
            return self.model.make_dataset(data, **kwargs)
        return data

    def fit(self, x=None, y=None, batch_size=None, *args, validation_data=None, shuffle=True, **kwargs):
        """``keras.Model.fit``; ``x`` and ``validation_data`` may be DataFrames (see class docstring)."""
        if isinstance(x, pd.DataFrame):
            x = self._maybe_dataset(x, **({"batch_size": batch_size} if batch_size else {}), shuffle=shuffle)
            batch_size = None
        validation_data = self._maybe_dataset(validation_data)
        return super().fit(x, y, batch_size, *args, validation_data=validation_data, shuffle=shuffle, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        if isinstance(x, pd.DataFrame):
            x, batch_size = self._maybe_dataset(x, **({"batch_size": batch_size} if batch_size else {})), None
        return super().evaluate(x, y, batch_size, *args, **kwargs)

    def predict(self, x, batch_size=None, *args, **kwargs):
        if isinstance(x, pd.DataFrame):
            x, batch_size = self._maybe_dataset(x, with_labels=False,
                                                **({"batch_size": batch_size} if batch_size else {})), None
        return super().predict(x, batch_size, *args, **kwargs)

    # --------------------------------------------------------- serialisation
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "objectives": {name: {"output": output, "loss": keras.saving.serialize_keras_object(loss)}
                           for name, (output, loss) in self.objectives.items()},
            "accuracy_objective": self.accuracy_objective,
            "weighting": keras.saving.serialize_keras_object(self.weighting),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects=custom_objects)
        weighting = keras.saving.deserialize_keras_object(config.pop("weighting"), custom_objects=custom_objects)
        objectives = {name: (spec["output"], keras.losses.deserialize(spec["loss"], custom_objects=custom_objects))
                      for name, spec in config.pop("objectives").items()}
        return cls(model, objectives, weighting=weighting, **config)


def _per_example_loss(loss_fn, y_true, y_pred) -> tf.Tensor:
    """``[B]`` unreduced loss; extra per-example axes are averaged (as Keras does)."""
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    # Labels ``[B]`` against a ``[B, 1]`` head: without this a bare loss function (e.g.
    # ``"binary_crossentropy"``) broadcasts to ``[B, B]`` and silently trains on nonsense.
    if y_true.shape.rank is not None and y_pred.shape.rank == y_true.shape.rank + 1 and y_pred.shape[-1] == 1:
        y_true = tf.expand_dims(y_true, -1)
    if isinstance(loss_fn, keras.losses.Loss):
        values = loss_fn.call(y_true, y_pred)  # ``call`` skips the reduction of ``__call__``
    else:
        values = loss_fn(y_true, y_pred)
    values = tf.convert_to_tensor(values)
    if values.shape.rank is not None and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return tf.cast(values, tf.float32)


def _objective_weight(sample_weight, objective: str, output: str):
    if sample_weight is None or not isinstance(sample_weight, Mapping):
        return sample_weight
    if objective in sample_weight:
        return sample_weight[objective]
    return sample_weight.get(output)
