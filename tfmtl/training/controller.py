"""A PID controller that turns a measured loss into a loss weight (MoRec's objective coordinator).

Sign convention (the paper's, and ControlVAE's): the error is

    e(t) = set_point - measured(t)

so ``e < 0`` means the loss is *above* its set point (the objective is doing worse
than expected). Every term is arranged so that positive gains make the weight
**rise while the loss is above the set point and fall while it is below**:

    P(t) = Kp / (1 + exp(e(t)))      (sigmoid_p=True, MoRec/ControlVAE)
         = -Kp * e(t)                (sigmoid_p=False, a plain linear P term)
    S(t) = clip(S(t-1) + e(t), integral_min, integral_max)      (anti-windup)
    I(t) = -Ki * S(t)
    D(t) = -Kd * (e(t) - e(t-1))     (0 on the first step; MoRec drops it: Kd = 0)
    q(t) = clip(P(t) + I(t) + D(t) + q_min, output_min, output_max)

With the sigmoid P term, ``P`` lies in ``(0, Kp)``: ``Kp/2`` at the set point, towards
``Kp`` as the loss climbs above it. The integral ``S`` is the raw sum of errors; the
clamp bounds it (not ``Ki * S``), so ``|I| <= Ki * max(|integral_min|, |integral_max|)``.

:func:`pid_step` is the pure maths (numpy floats/arrays or tensors in, same out);
:class:`PIDController` keeps the state in ``tf.Variable`` s and is safe inside
``tf.function`` and ``jit_compile=True``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register

__all__ = ["PIDState", "pid_step", "PIDController", "MOREC_KP", "MOREC_KI"]

# MoRec (Huang et al., WWW 2024) section 4.1.4: Kp = 0.01, Ki = 0.001 (also the official code's
# defaults, microsoft/UniRec unirec/config/base.yaml ``morec_K_p`` / ``morec_K_i``).
MOREC_KP = 0.01
MOREC_KI = 0.001


class PIDState(NamedTuple):
    """Controller state: ``integral`` (sum of errors, clamped), ``prev_error`` and
    ``has_prev`` (0 before the first update, 1 after; gates the D term)."""

    integral: Any = 0.0
    prev_error: Any = 0.0
    has_prev: Any = 0.0


def _xp(*values):
    """numpy for numpy/Python inputs, TensorFlow as soon as one input is a tensor."""
    return tf if any(isinstance(v, (tf.Tensor, tf.Variable)) for v in values) else np


def _clip(xp, x, lo, hi):
    if lo is None and hi is None:
        return x
    if xp is np:
        return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    if lo is not None:
        x = tf.maximum(x, tf.cast(lo, x.dtype))
    if hi is not None:
        x = tf.minimum(x, tf.cast(hi, x.dtype))
    return x


def pid_step(measured, state: PIDState, *, set_point: float, kp: float = 0.01, ki: float = 0.001,
             kd: float = 0.0, q_min: float = 0.0, sigmoid_p: bool = True, output_min: float | None = None,
             output_max: float | None = None, integral_min: float | None = None,
             integral_max: float | None = None):
    """One controller update: ``(weight, new_state)`` from the measured loss (see module docstring).

    Works on Python/numpy numbers (returns numpy) and on tensors (returns tensors).

    >>> q, s = pid_step(0.7, PIDState(), set_point=0.5, kp=0.01, ki=0.001)
    >>> round(float(q), 6)    # 0.01 / (1 + exp(-0.2)) + 0.001 * 0.2
    0.005698
    """
    xp = _xp(measured, *state)
    integral, prev_error, has_prev = state
    if xp is tf:
        measured = tf.convert_to_tensor(measured, tf.float32)
        integral, prev_error, has_prev = (tf.cast(tf.convert_to_tensor(v), measured.dtype)
                                          for v in (integral, prev_error, has_prev))
    error = set_point - measured
    if sigmoid_p:
        # Kp * sigmoid(-e): bounded, so one bad batch cannot blow the weight up.
        p_term = kp / (1.0 + xp.exp(error))
    else:
        p_term = -kp * error
    integral = _clip(xp, integral + error, integral_min, integral_max)
    i_term = -ki * integral
    d_term = -kd * (error - prev_error) * has_prev
    output = _clip(xp, p_term + i_term + d_term + q_min, output_min, output_max)
    one = xp.ones_like(error) if xp is tf else 1.0
    return output, PIDState(integral, error, one)


@register
class PIDController(keras.layers.Layer):
    """PID controller of a loss weight, with its state in non-trainable ``tf.Variable`` s.

    ``update(loss)`` runs one :func:`pid_step` and returns the new weight (a scalar
    tensor); ``weight`` is the last output, ``reset()`` restarts the controller.
    Under a ``tf.distribute`` strategy pass the same (all-reduced) loss on every
    replica: the variables aggregate with ``ONLY_FIRST_REPLICA``.

    Args:
      set_point: the expected loss (MoRec: the loss a single-objective model reaches).
      kp, ki, kd: gains (MoRec: 0.01, 0.001, 0).
      q_min: constant added to the output (the weight's floor when the I term is 0).
      sigmoid_p: ``Kp / (1 + exp(e))`` P term (default) or the linear ``-Kp * e``.
      output_min, output_max: clamp of the weight; ``output_min`` defaults to ``q_min``.
      integral_min, integral_max: anti-windup clamp of the error sum ``S``.
      initial_weight: the weight before the first update (default ``q_min`` clamped).

    Example:

    >>> c = PIDController(set_point=0.5, kp=0.01, ki=0.001)
    >>> round(float(c.update(0.7)), 6), round(float(c.update(0.3)), 6)
    (0.005698, 0.004502)
    """

    def __init__(self, set_point: float, kp: float = 0.01, ki: float = 0.001, kd: float = 0.0,
                 q_min: float = 0.0, sigmoid_p: bool = True, output_min: float | None = None,
                 output_max: float | None = None, integral_min: float | None = None,
                 integral_max: float | None = None, initial_weight: float | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.set_point = float(set_point)
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.q_min = float(q_min)
        self.sigmoid_p = bool(sigmoid_p)
        self.output_min = self.q_min if output_min is None else float(output_min)
        self.output_max = None if output_max is None else float(output_max)
        self.integral_min = None if integral_min is None else float(integral_min)
        self.integral_max = None if integral_max is None else float(integral_max)
        if self.output_max is not None and self.output_max < self.output_min:
            raise ValueError(f"output_max={output_max} < output_min={self.output_min}")
        if None not in (self.integral_min, self.integral_max) and self.integral_max < self.integral_min:
            raise ValueError(f"integral_max={integral_max} < integral_min={integral_min}")
        if initial_weight is None:
            initial_weight = float(_clip(np, self.q_min, self.output_min, self.output_max))
        self.initial_weight = float(initial_weight)
        # The state does not depend on any input shape: build now, so the variables exist
        # (inside the caller's strategy scope) before any traced/XLA step touches them.
        self.build(None)

    @classmethod
    def morec(cls, set_point: float, alpha_min: float, alpha_max: float | None = None, **kwargs) -> PIDController:
        """MoRec's objective coordinator, Eq. 14, with the paper's gains (section 4.1.4):

            alpha_acc(t) = Kp / (1 + exp(e(t))) - Ki * sum_{s<=t} e(s) + alpha_min,
            e(t) = L_expected - L_acc(t),   Kp = 0.01, Ki = 0.001, no D term.

        Args:
          set_point: the expected accuracy loss ``L_expected`` (MoRec: per data set and
            backbone, the loss the pretrained single-objective model reaches).
          alpha_min: the weight's floor (Eq. 14's ``alpha_min``; the official code's
            ``morec_beta_min``, which it also uses as a lower clamp, as done here).
          alpha_max: optional upper clamp (the official code's ``morec_beta_max``).
          **kwargs: other :class:`PIDController` arguments (e.g. ``name``).

        >>> c = PIDController.morec(set_point=0.5, alpha_min=0.2)
        >>> round(float(c.update(0.7)), 6)    # 0.01 / (1 + e^-0.2) + 0.001 * 0.2 + 0.2
        0.205698
        """
        for key in ("kp", "ki", "kd", "sigmoid_p", "q_min"):
            if key in kwargs:
                raise ValueError(f"PIDController.morec fixes {key!r} to the paper's value; "
                                 "build PIDController(...) directly to change it")
        return cls(set_point=set_point, kp=MOREC_KP, ki=MOREC_KI, kd=0.0, q_min=alpha_min, sigmoid_p=True,
                   output_max=alpha_max, **kwargs)

    @classmethod
    def linear(cls, set_point: float, kp: float = 100.0, ki: float = 2.0, q_min: float = 1.0,
               **kwargs) -> PIDController:
        """tfmtl's variant (not the paper's): a linear P term ``-Kp * e`` around ``q_min``.

        MoRec's sigmoid P term moves by at most ``Kp / 4`` per unit of error (0.0025 with the
        paper's ``Kp``), so with losses that sit within a few percent of their set point the
        weight is ``alpha_min + Kp/2`` almost throughout; the linear term with a large ``Kp``
        reacts to those small errors. Defaults are the README census recipe's.

        >>> round(float(PIDController.linear(set_point=0.12).update(0.13)), 4)   # 1 + 100*0.01 + 2*0.01
        2.02
        """
        return cls(set_point=set_point, kp=kp, ki=ki, q_min=q_min, sigmoid_p=False, **kwargs)

    def build(self, input_shape=None):
        def state(name, value, dtype="float32"):
            return self.add_weight(name=name, shape=(), dtype=dtype, trainable=False,
                                   initializer=keras.initializers.Constant(value),
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

        self.integral = state("integral", 0.0)
        self.prev_error = state("prev_error", 0.0)
        self.has_prev = state("has_prev", 0.0)
        self.last_weight = state("weight", self.initial_weight)
        self.steps = state("steps", 0, dtype="int64")
        super().build(input_shape)

    @property
    def gains(self) -> dict:
        """The keyword arguments of :func:`pid_step` this controller uses."""
        return {"set_point": self.set_point, "kp": self.kp, "ki": self.ki, "kd": self.kd, "q_min": self.q_min,
                "sigmoid_p": self.sigmoid_p, "output_min": self.output_min, "output_max": self.output_max,
                "integral_min": self.integral_min, "integral_max": self.integral_max}

    @property
    def weight(self) -> tf.Tensor:
        """The weight in force: the last output (``initial_weight`` before any update)."""
        return tf.identity(self.last_weight)

    @property
    def state(self) -> PIDState:
        return PIDState(tf.identity(self.integral), tf.identity(self.prev_error), tf.identity(self.has_prev))

    def update(self, measured_loss) -> tf.Tensor:
        """Feeds one measured loss (a scalar; gradients are stopped) and returns the new weight."""
        measured = tf.stop_gradient(tf.cast(tf.reshape(measured_loss, []), tf.float32))
        weight, new = pid_step(measured, self.state, **self.gains)
        self.integral.assign(new.integral)
        self.prev_error.assign(new.prev_error)
        self.has_prev.assign(new.has_prev)
        self.last_weight.assign(weight)
        self.steps.assign_add(1)
        return weight

    def call(self, measured_loss, training=None):
        """``update(measured_loss)`` when training, else the current weight (no state change)."""
        if training:
            return self.update(measured_loss)
        return self.weight

    def reset(self) -> None:
        """Back to the initial state (zero integral, no previous error, ``initial_weight``)."""
        for var, value in ((self.integral, 0.0), (self.prev_error, 0.0), (self.has_prev, 0.0),
                           (self.last_weight, self.initial_weight), (self.steps, 0)):
            var.assign(tf.cast(value, var.dtype))

    def get_config(self) -> dict:
        gains = self.gains
        return {**super().get_config(), **gains, "initial_weight": self.initial_weight}
