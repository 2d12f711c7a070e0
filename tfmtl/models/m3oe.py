"""M3oE (Zhang et al., SIGIR 2024): multi-domain, multi-task mixture of experts with AutoML structure weights.

``input -> StarDense (shared * domain kernel) + skip -> M3oEExperts (shared /
domain / task experts, two-level fusion) -> one tower per (domain, task)``.

Outputs: one sigmoid output per task, routed by the domain id: the task-t output
of an example comes from its own domain's (domain, t) tower. Labels, losses and
metrics are therefore per task as for any tfmtl model; per-domain metrics come
from grouping predictions by the domain column.

Structure weights (``structure_update``):

* ``"off"``: frozen at their initial value;
* ``"joint"``: trained with the main optimizer on the training loss;
* ``"bilevel"`` (default): a first-order DARTS step. The main optimizer never
  touches them (they are non-trainable);
  :class:`~tfmtl.training.StructureWeightUpdate`, added by ``M3oE.fit``
  (:class:`~tfmtl.training.BilevelStructureFit`), takes an optimizer step of
  their own on a validation batch every ``structure_update_every`` training batches. The official code
  does one such step per epoch on a training batch; a held-out batch is the
  point of the bilevel scheme, so ``validation_data`` is used when given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.features import FeatureSpec
from tfmtl.layers import MLP
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.domain import STRUCTURE_NAMES, DomainTaskTowers, M3oEExperts, StarDense
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model
from tfmtl.models.star import domain_ids
from tfmtl.training.domain_loss import domain_task_bce
from tfmtl.training.structure_weights import BilevelStructureFit, StructureWeightUpdate

STRUCTURE_MODES = ("off", "joint", "bilevel")
LOSS_MODES = ("per_task", "domain_task")


@register_model("m3oe")
@register
class M3oE(BilevelStructureFit, MultiTaskModel):
    """M3oE over the spec's features, routed by the spec's domain field.

    Args:
      domain_feature: the domain field (categorical with a vocabulary; vocabulary
        position = domain index).
      num_experts: shared experts (the paper: 4).
      star_units: widths of the STAR-style domain layer and the MLP after it
        (``()`` skips it); a linear skip from the input joins its output.
      expert_units: widths of every expert (shared, domain and task).
      tower_units: hidden widths of each (domain, task) tower.
      gate_units: hidden widths of the shared-expert gates (``()``: linear).
      structure_update: ``"off"``, ``"joint"`` or ``"bilevel"`` (module docstring).
      structure_init: initial raw structure weight (value ``sigmoid(init)``).
      structure_learning_rate, structure_update_every: the bilevel step's Adam
        learning rate and period in training batches.

      structure_update_every: the bilevel step's period in training batches, or ``"epoch"``
        (one step at the end of every epoch, as the official code).
      structure_batches: where the bilevel step's batch comes from when ``fit`` gets no
        ``structure_data``: ``"validation"`` (``validation_data``, tfmtl's choice) or
        ``"train"`` (the official code: a training batch).
      star_activation: activation after the STAR layer (``None`` in the official code).
      star_domain_initializer: initializer of the STAR domain kernels (official: Xavier).
      stop_gate_gradient: the shared-expert gates read ``stop_gradient`` of their input.
      loss: ``"per_task"`` (each task's mean BCE over all domains) or ``"domain_task"`` (the
        sum over (domain, task) pairs of each pair's mean BCE, the official code's).

    :meth:`paper` is M3oE as its paper and official code define it (``docs/papers.md``);
    the constructor's defaults are tfmtl's variant.

    Example:

    >>> from tfmtl.datasets import synthetic_domains
    >>> df, spec = synthetic_domains.multidomain_frame(300, num_domains=3, num_tasks=2)
    >>> model = M3oE(spec, num_experts=2, star_units=[8], expert_units=[8], tower_units=[4])
    >>> model.compile(); _ = model.fit(df, epochs=1, verbose=0)
    >>> sorted(model.predict(df, verbose=0)), sorted(model.structure_values())
    (['task_0', 'task_1'], ['bal_d', 'bal_t', 'exp_d', 'exp_t'])
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, domain_feature: str = "domain",
                 num_experts: int = 4, star_units: Sequence[int] = (512, 256), expert_units: Sequence[int] = (256, 64),
                 tower_units: Sequence[int] = (64,), gate_units: Sequence[int] = (),
                 structure_update: str = "bilevel", structure_init: float = 1.0,
                 structure_learning_rate: float = 1e-3, structure_update_every: int | str = 10,
                 structure_batches: str = "validation", star_activation: str | None = "relu",
                 star_domain_initializer="ones", stop_gate_gradient: bool = False, loss: str = "per_task",
                 batch_norm: bool = False, dropout: float = 0.0, **kwargs):
        every = {} if structure_update_every == "epoch" else dict(structure_update_every=structure_update_every)
        if structure_update_every != "epoch" and isinstance(structure_update_every, str):
            raise ValueError(f"M3oE: structure_update_every must be >= 1 or 'epoch', got {structure_update_every!r}")
        check_arguments("M3oE", counts=dict(num_experts=num_experts, **every),
                        units=dict(expert_units=expert_units),
                        optional_units=dict(star_units=star_units, tower_units=tower_units, gate_units=gate_units),
                        rates=dict(dropout=dropout))
        if structure_batches not in ("validation", "train"):
            raise ValueError(f"M3oE: structure_batches must be 'validation' or 'train', got {structure_batches!r}")
        if loss not in LOSS_MODES:
            raise ValueError(f"M3oE: loss must be one of {LOSS_MODES}, got {loss!r}")
        if structure_update not in STRUCTURE_MODES:
            raise ValueError(f"M3oE: structure_update must be one of {STRUCTURE_MODES}, got {structure_update!r}")
        super().__init__(spec, tasks, domain_feature=domain_feature, num_experts=num_experts,
                         star_units=list(star_units), expert_units=list(expert_units), tower_units=list(tower_units),
                         gate_units=list(gate_units), structure_update=structure_update,
                         structure_init=structure_init, structure_learning_rate=structure_learning_rate,
                         structure_update_every=structure_update_every, structure_batches=structure_batches,
                         star_activation=star_activation,
                         star_domain_initializer=keras.initializers.serialize(
                             keras.initializers.get(star_domain_initializer)),
                         stop_gate_gradient=stop_gate_gradient, loss=loss, batch_norm=batch_norm, dropout=dropout,
                         **kwargs)

    @classmethod
    def paper(cls, spec, tasks: Sequence[str] | None = None, **kwargs) -> M3oE:
        """M3oE as its paper's setup and official code define it (Applied-Machine-Learning-Lab/M3oE):

        * ``fcn_dims = [512, 256, 256, 64]``: STAR layer 512 (``x (W_d * W_shared) + b_d + b_shared``,
          no activation, every kernel Xavier-uniform), MLP 256 (+ skip from the input), then **one**
          expert layer 256 -> 64 (``star_units=(512, 256)``, ``expert_units=(64,)``), 4 shared experts;
        * the shared-expert gates read ``stop_gradient`` of their input (``gate(emb.detach())``);
        * loss: the sum over (domain, task) pairs of each pair's mean BCE;
        * structure weights ``sigmoid(1)`` at start, one Adam step per epoch on a training batch.

        Any argument can still be given (e.g. smaller widths for a test); the defaults above are
        the preset.
        """
        spec = FeatureSpec.coerce(spec)
        feature = spec.feature(kwargs.get("domain_feature", "domain"))
        num_domains = len(getattr(feature, "vocabulary", None) or [None])
        # Xavier-uniform per domain kernel [d_in, units]: Keras' Glorot on the stacked [D, d_in, units]
        # tensor would divide the fans' sum by D as well.
        xavier_per_domain = keras.initializers.VarianceScaling(scale=float(num_domains), mode="fan_avg",
                                                               distribution="uniform")
        preset = dict(num_experts=4, star_units=(512, 256), expert_units=(64,), tower_units=(64,), gate_units=(),
                      structure_update="bilevel", structure_init=1.0, structure_update_every="epoch",
                      structure_batches="train", star_activation=None, star_domain_initializer=xavier_per_domain,
                      stop_gate_gradient=True, loss="domain_task")
        return cls(spec, tasks, **{**preset, **kwargs})


    def task_logits(self, features, num_tasks, *, domain_feature, num_experts, star_units, expert_units, tower_units,
                    gate_units, structure_update, structure_init, structure_learning_rate, structure_update_every,
                    structure_batches, star_activation, star_domain_initializer, stop_gate_gradient, loss,
                    batch_norm, dropout):
        domain, num_domains = domain_ids(features, domain_feature)
        x = features.vector
        if star_units:
            h = StarDense(num_domains, star_units[0], activation=star_activation,
                          domain_kernel_initializer=keras.initializers.get(star_domain_initializer),
                          name="star")([x, domain])
            if len(star_units) > 1:
                h = MLP(star_units[1:], batch_norm=batch_norm, dropout=dropout, name="star_mlp")(h)
            # The official model adds an MLP skip from the raw input around the STAR block.
            skip = MLP(star_units[-1:], batch_norm=batch_norm, name="star_skip")(x)
            x = keras.layers.Add(name="star_plus_skip")([h, skip])
        fused = M3oEExperts(num_domains, num_tasks, num_experts, expert_units, gate_units=gate_units,
                            structure_trainable=structure_update == "joint", structure_init=structure_init,
                            batch_norm=batch_norm, dropout=dropout, stop_gate_gradient=stop_gate_gradient,
                            name="m3oe")([x, domain])
        return DomainTaskTowers(num_domains, num_tasks, tower_units, batch_norm=batch_norm, dropout=dropout,
                                name="towers")([fused, domain])

    # ------------------------------------------------------ structure weights
    @property
    def structure_update(self) -> str:
        return self._init_config["structure_update"]

    @property
    def structure_learning_rate(self) -> float:
        return self._init_config["structure_learning_rate"]

    @property
    def structure_update_every(self) -> int:
        return self._init_config["structure_update_every"]

    @property
    def structure_batches(self) -> str:
        return self._init_config.get("structure_batches", "validation")

    @property
    def structure_weights(self) -> list[tf.Variable]:
        """The raw structure variables (``exp_d, exp_t, bal_d, bal_t``)."""
        return self.get_layer("m3oe").structure_weights

    def structure_values(self) -> dict[str, float]:
        """Effective structure weights, ``sigmoid(raw)``."""
        return self.get_layer("m3oe").structure_values()

    def domain_index(self, x) -> tf.Tensor:
        """``int32 [batch]`` domain index of a batch of model inputs (the rule of ``domain_ids``)."""
        spec, name = self.spec, self._init_config["domain_feature"]
        position = [f.name for f in spec.fields].index(name)
        ids = self.get_layer("preprocessing")(x)["ids"]
        return tf.cast(tf.maximum(ids[:, position] - 1, 0), tf.int32)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        """Keras' loss (and its metrics); with ``loss="domain_task"`` the value trained on is
        :func:`~tfmtl.training.domain_loss.domain_task_bce` plus the layers' losses."""
        compiled = super().compute_loss(x, y, y_pred, sample_weight)
        if self._init_config.get("loss", "per_task") != "domain_task":
            return compiled
        if sample_weight is not None:
            raise ValueError("M3oE(loss='domain_task') does not take sample weights (the official loss has none)")
        num_domains = len(self.spec.feature(self._init_config["domain_feature"]).vocabulary)
        names = list(y) if isinstance(y, dict) else list(self.label_map)
        total = domain_task_bce({n: y[n] for n in names}, {n: y_pred[n] for n in names}, self.domain_index(x),
                                num_domains)
        return total + tf.add_n(self.losses) if self.losses else total

    def gate_weights(self, x, batch_size: int | None = None) -> np.ndarray:
        """Shared-expert gate weights ``[N, T, E]`` of each example's own domain.

        ``x``: a DataFrame or a dataset of feature batches.
        """
        layer = self.get_layer("m3oe")
        return self.probe(layer(layer.input, return_gates=True)[1], x, batch_size)


__all__ = ["M3oE", "LOSS_MODES", "STRUCTURE_MODES", "STRUCTURE_NAMES", "StructureWeightUpdate"]
