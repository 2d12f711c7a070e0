"""Loss-weighting schemes: per-objective losses in, per-objective weights out.

Every scheme is a Keras layer with one interface:

* ``build({objective: shape})`` creates whatever state it needs (called by
  :class:`~tfmtl.training.MultiObjectiveModel` at construction, so inside the
  caller's ``tf.distribute`` scope);
* ``call(losses, training)`` maps ``{objective: scalar loss}`` to
  ``{objective: scalar weight}``;
* ``penalty()`` is an extra term added to the total loss (0 unless the scheme
  learns its weights);
* ``combine(losses, training)`` gives ``(sum_k q_k * L_k + penalty, weights)``.

Losses passed in are per-replica mini-batch means. Schemes that *measure* a loss
(the PID controller) are given the replica-averaged value by the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.training.controller import PIDController

__all__ = ["Weighting", "StaticWeights", "UncertaintyWeighting", "PIDWeighting"]


class Weighting(keras.layers.Layer):
    """Base class of the weighting schemes (see the module docstring for the interface)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.objectives: list[str] = []

    def build(self, input_shape):
        # ``input_shape`` is ``{objective: TensorShape([])}``: only the names matter.
        if not isinstance(input_shape, Mapping):
            raise TypeError(f"{type(self).__name__} is built from a {{objective: shape}} dict, got {input_shape!r}")
        self.objectives = list(input_shape)
        super().build(input_shape)

    def call(self, losses: Mapping[str, tf.Tensor], training=None) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def penalty(self) -> tf.Tensor:
        """Extra loss term (a scalar), e.g. the log-variance regulariser of uncertainty weighting."""
        return tf.constant(0.0)

    def combine(self, losses: Mapping[str, tf.Tensor], training=None) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """``(total, weights)`` with ``total = sum_k weights[k] * losses[k] + penalty()``."""
        weights = self(dict(losses), training=training)
        total = tf.add_n([weights[name] * losses[name] for name in losses]) + self.penalty()
        return total, weights

    def _check_names(self, names, what: str) -> None:
        unknown = sorted(set(names) - set(self.objectives))
        if unknown:
            raise ValueError(f"{type(self).__name__}: {what} {unknown} are not objectives {self.objectives}")


@register
class StaticWeights(Weighting):
    """Fixed weights: ``q_k = weights[k]`` (1.0 for objectives not listed).

    >>> w = StaticWeights({"ctr": 1.0, "cvr": 0.5})
    >>> w.build({"ctr": [], "cvr": []})
    >>> round(float(w.combine({"ctr": tf.constant(0.2), "cvr": tf.constant(0.4)})[0]), 6)
    0.4
    """

    def __init__(self, weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.weights_by_objective = {str(k): float(v) for k, v in (weights or {}).items()}

    def build(self, input_shape):
        super().build(input_shape)
        self._check_names(self.weights_by_objective, "weights for")

    def call(self, losses, training=None):
        return {name: tf.constant(self.weights_by_objective.get(name, 1.0)) for name in losses}

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": dict(self.weights_by_objective)}


@register
class UncertaintyWeighting(Weighting):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, 2018), learned with the model.

    Each objective gets a trainable log-variance ``s_k``; the total loss is

        sum_k exp(-s_k) * L_k + s_k

    so ``q_k = exp(-s_k)`` and, at the optimum of ``s_k``, ``q_k = 1 / L_k``. (The paper's
    ``1/2`` factors for regression are absorbed into ``s_k``.) Weights keep their
    gradient path to ``s_k``; the optimiser trains them with the model.

    Args:
      initial_log_variance: starting ``s_k`` (0: every weight starts at 1).

    >>> w = UncertaintyWeighting()
    >>> w.build({"ctr": [], "cvr": []})
    >>> [round(float(q), 3) for q in w({"ctr": tf.constant(0.3), "cvr": tf.constant(0.6)}).values()]
    [1.0, 1.0]
    """

    def __init__(self, initial_log_variance: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_log_variance = float(initial_log_variance)
        self.log_variances: dict[str, tf.Variable] = {}

    def build(self, input_shape):
        super().build(input_shape)
        self.log_variances = {
            name: self.add_weight(name=f"log_variance_{name}", shape=(), trainable=True,
                                  initializer=keras.initializers.Constant(self.initial_log_variance))
            for name in self.objectives}

    def call(self, losses, training=None):
        return {name: tf.exp(-self.log_variances[name]) for name in losses}

    def penalty(self) -> tf.Tensor:
        return tf.add_n(list(self.log_variances.values()))

    def get_config(self) -> dict:
        return {**super().get_config(), "initial_log_variance": self.initial_log_variance}


@register
class PIDWeighting(Weighting):
    """MoRec's objective coordinator: a PID-controlled accuracy weight plus preference weights.

        q_acc(t) = controller.update(L_acc(t))       (training; evaluation reads the last weight)
        q_obj    = auxiliary_scale * p_obj           (every other objective)

    The controller raises ``q_acc`` while the accuracy loss sits above its set point (the
    loss a single-objective model converges to) and lowers it below, so the other
    objectives get the room accuracy can spare.

    Args:
      accuracy_objective: the objective the controller watches.
      controller: a :class:`~tfmtl.training.PIDController` (or its config dict).
      preferences: ``{objective: p}`` over the other objectives (default: uniform
        ``1 / n``); need not sum to one.
      auxiliary_scale: MoRec's ``lambda`` multiplying every preference weight
        (0.2 in the paper's code; 1.0 gives ``q_obj = p_obj``).

    >>> w = PIDWeighting("ctr", PIDController(set_point=0.5), preferences={"revenue": 1.0}, auxiliary_scale=0.2)
    >>> w.build({"ctr": [], "revenue": []})
    >>> q = w({"ctr": tf.constant(0.7), "revenue": tf.constant(1.0)}, training=True)
    >>> round(float(q["ctr"]), 6), round(float(q["revenue"]), 2)
    (0.005698, 0.2)
    """

    def __init__(self, accuracy_objective: str, controller: PIDController | Mapping,
                 preferences: Mapping[str, float] | None = None, auxiliary_scale: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.accuracy_objective = str(accuracy_objective)
        if isinstance(controller, Mapping):
            controller = keras.saving.deserialize_keras_object(controller) if "class_name" in controller \
                else PIDController(**controller)
        self.controller = controller
        self.preferences = None if preferences is None else {str(k): float(v) for k, v in preferences.items()}
        self.auxiliary_scale = float(auxiliary_scale)

    @classmethod
    def morec(cls, accuracy_objective: str, set_point: float, preferences: Mapping[str, float] | None = None, *,
              alpha_min: float, alpha_max: float | None = None, **kwargs) -> PIDWeighting:
        """MoRec's objective coordinator as the paper defines it.

        Eq. 13: every non-accuracy objective's weight is its preference, ``q_obj = p_obj``
        (``auxiliary_scale = 1``); Eq. 14: the accuracy weight comes from
        :meth:`PIDController.morec` (``Kp = 0.01``, ``Ki = 0.001``, sigmoid P, ``+ alpha_min``).
        The official code additionally multiplies the auxiliary losses by ``lambda = 0.2``
        (``morec_lambda``); pass ``auxiliary_scale=0.2`` for that.

        >>> w = PIDWeighting.morec("ctr", set_point=0.5, preferences={"revenue": 0.3, "fair": 0.7}, alpha_min=0.2)
        >>> w.build({"ctr": [], "revenue": [], "fair": []})
        >>> q = w({"ctr": tf.constant(0.7), "revenue": tf.constant(1.0), "fair": tf.constant(1.0)}, training=True)
        >>> [round(float(q[k]), 6) for k in ("ctr", "revenue", "fair")]
        [0.205698, 0.3, 0.7]
        """
        controller = PIDController.morec(set_point, alpha_min=alpha_min, alpha_max=alpha_max)
        kwargs.setdefault("auxiliary_scale", 1.0)
        return cls(accuracy_objective, controller, preferences=preferences, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        if self.accuracy_objective not in self.objectives:
            raise ValueError(f"accuracy objective {self.accuracy_objective!r} is not among {self.objectives}")
        others = [name for name in self.objectives if name != self.accuracy_objective]
        if self.preferences is None:
            self._q = {name: self.auxiliary_scale / len(others) for name in others}
        else:
            self._check_names(self.preferences, "preferences for")
            if self.accuracy_objective in self.preferences:
                raise ValueError("the accuracy objective's weight comes from the controller, not from preferences")
            self._q = {name: self.auxiliary_scale * self.preferences.get(name, 0.0) for name in others}

    def call(self, losses, training=None):
        weights = {name: tf.constant(self._q[name]) for name in losses if name != self.accuracy_objective}
        weights[self.accuracy_objective] = self.controller(losses[self.accuracy_objective], training=training)
        return {name: weights[name] for name in losses}

    def get_config(self) -> dict:
        return {**super().get_config(), "accuracy_objective": self.accuracy_objective,
                "controller": keras.saving.serialize_keras_object(self.controller),
                "preferences": self.preferences, "auxiliary_scale": self.auxiliary_scale}
