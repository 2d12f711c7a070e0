"""A tfmtl model with a loss weighting scheme chosen by name: what ``tfmtl train`` and the TFX Trainer use.

:func:`with_weighting` wraps a model in a :class:`~tfmtl.training.MultiObjectiveModel`
with one binary cross-entropy objective per trained output, weighted by the scheme
named in :data:`WEIGHTINGS`. Plain data in, so a CLI flag or the pipeline's JSON
config can choose it:

* ``"none"``: the model itself (Keras' own compiled losses);
* ``"static"``: fixed weights (``weights``; missing outputs weigh 1);
* ``"uncertainty"``: learned homoscedastic-uncertainty weights (Kendall et al.);
* ``"pid"``: MoRec's PID-controlled accuracy weight; ``set_point`` (the loss the
  accuracy objective alone converges to) is required, ``weights`` are the other
  objectives' preferences.
"""

from __future__ import annotations

from collections.abc import Mapping

from tfmtl._keras import keras
from tfmtl.training.controller import PIDController
from tfmtl.training.multi_objective import MultiObjectiveModel
from tfmtl.training.weighting import PIDWeighting, StaticWeights, UncertaintyWeighting, Weighting

WEIGHTINGS = ("none", "static", "uncertainty", "pid")


def make_weighting(weighting: str, objectives: list[str], *, accuracy_objective: str | None = None,
                   weights: Mapping[str, float] | None = None, set_point: float | None = None, kp: float = 0.01,
                   ki: float = 0.001, kd: float = 0.0, auxiliary_scale: float = 0.2) -> Weighting | None:
    """The weighting scheme named ``weighting`` over ``objectives`` (``None`` for ``"none"``).

    Args:
      weighting: one of :data:`WEIGHTINGS`.
      objectives: the objective names.
      accuracy_objective: the objective a PID controller watches (default: the first).
      weights: ``"static"``: ``{objective: weight}``; ``"pid"``: the other objectives' preferences.
      set_point: ``"pid"`` only, required: the accuracy loss to hold.
      kp, ki, kd: ``"pid"``: the controller's gains (MoRec: 0.01, 0.001, 0).
      auxiliary_scale: ``"pid"``: MoRec's ``lambda`` on the preference weights.

    Raises:
      ValueError: an unknown ``weighting``, an ``accuracy_objective`` or ``weights`` key that is not
        an objective, or ``"pid"`` without ``set_point``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    objectives = [str(name) for name in objectives]
    if accuracy_objective is not None and accuracy_objective not in objectives:
        raise ValueError(f"accuracy_objective {accuracy_objective!r} is not among the objectives {objectives}")
    unknown = sorted(set(weights or {}) - set(objectives))
    if unknown:
        raise ValueError(f"weights name {unknown}, which are not among the objectives {objectives}")
    if weighting == "none":
        return None
    if weighting == "static":
        return StaticWeights(dict(weights or {}))
    if weighting == "uncertainty":
        return UncertaintyWeighting()
    if set_point is None:
        raise ValueError("weighting 'pid' needs set_point (the loss the accuracy objective alone converges to)")
    accuracy = accuracy_objective or objectives[0]
    preferences = None if weights is None else {k: v for k, v in weights.items() if k != accuracy}
    return PIDWeighting(accuracy, PIDController(set_point=set_point, kp=kp, ki=ki, kd=kd),
                        preferences=preferences, auxiliary_scale=auxiliary_scale)


def with_weighting(model: keras.Model, weighting: str = "none", *, accuracy_objective: str | None = None,
                   **weighting_args) -> keras.Model:
    """``model`` itself for ``"none"``, else a :class:`MultiObjectiveModel` around it.

    The objectives are the model's trained outputs (``model.label_map`` of a tfmtl model,
    else ``model.output_names``), each a binary cross-entropy on its own output.

    Args:
      model: a tfmtl model (or any Keras model with dict outputs of probabilities).
      weighting: one of :data:`WEIGHTINGS`.
      accuracy_objective: as :func:`make_weighting`.
      **weighting_args: the other arguments of :func:`make_weighting`.

    Example:

    >>> from tfmtl.datasets import synthetic
    >>> from tfmtl.models import SharedBottom
    >>> df, spec = synthetic.multitask_frame(200)
    >>> model = with_weighting(SharedBottom(spec), "pid", accuracy_objective="task_a", set_point=0.5)
    >>> type(model).__name__, model.weighting.accuracy_objective
    ('MultiObjectiveModel', 'task_a')
    """
    outputs = list(getattr(model, "label_map", None) or model.output_names)
    scheme = make_weighting(weighting, outputs, accuracy_objective=accuracy_objective, **weighting_args)
    if scheme is None:
        return model
    return MultiObjectiveModel(model, {name: "binary_crossentropy" for name in outputs},
                               accuracy_objective=accuracy_objective, weighting=scheme)


def base_model(model: keras.Model) -> keras.Model:
    """The model a :func:`with_weighting` result wraps (for ``label_map``, export), or ``model`` itself."""
    return model.model if isinstance(model, MultiObjectiveModel) else model


__all__ = ["WEIGHTINGS", "base_model", "make_weighting", "with_weighting"]
