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
  touches them (they are non-trainable); :class:`StructureWeightUpdate`, added
  by :meth:`M3oE.fit`, takes an optimizer step of their own on a validation
  batch every ``structure_update_every`` training batches. The official code
  does one such step per epoch on a training batch; a held-out batch is the
  point of the bilevel scheme, so ``validation_data`` is used when given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.features import FeatureSpec
from tfmtl.layers import MLP
from tfmtl.layers.domain import STRUCTURE_NAMES, DomainTaskTowers, M3oEExperts, StarDense
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model
from tfmtl.models.star import domain_ids
from tfmtl.training.domain_loss import domain_task_bce

STRUCTURE_MODES = ("off", "joint", "bilevel")
LOSS_MODES = ("per_task", "domain_task")


@register_model("m3oe")
@register
class M3oE(MultiTaskModel):
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
        if structure_update not in STRUCTURE_MODES:
            raise ValueError(f"M3oE: structure_update must be one of {STRUCTURE_MODES}, got {structure_update!r}")
        if structure_update_every != "epoch" and (isinstance(structure_update_every, str)
                                                  or structure_update_every < 1):
            raise ValueError(f"M3oE: structure_update_every must be >= 1 or 'epoch', got {structure_update_every!r}")
        if structure_batches not in ("validation", "train"):
            raise ValueError(f"M3oE: structure_batches must be 'validation' or 'train', got {structure_batches!r}")
        if loss not in LOSS_MODES:
            raise ValueError(f"M3oE: loss must be one of {LOSS_MODES}, got {loss!r}")
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

    def fit(self, x=None, y=None, batch_size=None, *args, callbacks=None, validation_data=None, structure_data=None,
            **kwargs):
        """``MultiTaskModel.fit``; in ``"bilevel"`` mode also adds a :class:`StructureWeightUpdate` callback.

        Its batches come from ``structure_data``, else ``validation_data``, else
        the training data (DataFrames or ``(x, y)`` datasets). Pass your own
        :class:`StructureWeightUpdate` in ``callbacks`` to configure it fully.
        """
        callbacks = list(callbacks or [])
        if self.structure_update == "bilevel" and not any(isinstance(c, StructureWeightUpdate) for c in callbacks):
            sources = ((structure_data, x) if self._init_config.get("structure_batches") == "train"
                       else (structure_data, validation_data, x))
            data = next(d for d in sources if d is not None)
            # Reused across fit() calls on the same data: the structure optimizer keeps its state
            # and its step is traced once (fitting epoch by epoch is common).
            previous = getattr(self, "_structure_callback", None)
            if previous is None or previous.data is not data:
                previous = StructureWeightUpdate(data, learning_rate=self._init_config["structure_learning_rate"],
                                                 every_n_batches=self._init_config["structure_update_every"])
                self._structure_callback = previous
            callbacks.append(previous)
        return super().fit(x, y, batch_size, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)


class StructureWeightUpdate(keras.callbacks.Callback):
    """First-order DARTS step on a model's structure weights, with an optimizer of their own.

    Every ``every_n_batches`` training batches (or, with ``every_n_batches="epoch"``, at
    the end of every epoch, as the official code): one batch from ``data``, the
    summed binary cross-entropy of the model's trained outputs (inference mode,
    so batch-norm statistics are left alone) and one optimizer step on
    ``model.structure_weights`` only.

    Args:
      data: a DataFrame (turned into shuffled batches by ``model.make_dataset``)
        or a ``tf.data.Dataset`` of ``(x, y)`` / ``(x, y, sample_weight)``; it is repeated.
      learning_rate: Adam learning rate (ignored with ``optimizer``).
      every_n_batches: update period.
      batch_size: batch size for a DataFrame.
    """

    def __init__(self, data, learning_rate: float = 1e-3, every_n_batches: int | str = 10,
                 optimizer: keras.optimizers.Optimizer | None = None, batch_size: int = 1024, seed: int | None = None):
        super().__init__()
        if every_n_batches != "epoch" and (isinstance(every_n_batches, str) or every_n_batches < 1):
            raise ValueError(f"every_n_batches must be >= 1 or 'epoch', got {every_n_batches!r}")
        self.data = data
        self.every_n_batches = every_n_batches if every_n_batches == "epoch" else int(every_n_batches)
        self.optimizer = optimizer or keras.optimizers.Adam(learning_rate)
        self.batch_size = batch_size
        self.seed = seed
        self.steps = 0
        self._iterator = None
        self._update = None
        self._model = None
        self._batches = 0

    def on_train_begin(self, logs=None):
        if self._update is not None and self._model is self.model:
            return  # a later fit() of the same model: keep the iterator, optimizer state and traced step
        self._model = self.model
        variables = list(self.model.structure_weights)
        dataset = self.data
        if isinstance(dataset, pd.DataFrame):
            dataset = self.model.make_dataset(dataset, batch_size=self.batch_size, shuffle=True, seed=self.seed)
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(f"StructureWeightUpdate: data must be a DataFrame or tf.data.Dataset, "
                            f"got {type(self.data).__name__}")
        self._iterator = iter(dataset.repeat())
        self.optimizer.build(variables)
        step = lambda batch: self._step(variables, batch)  # noqa: E731
        # Follow the model: eager when it runs eagerly (debugging, tiny tests), else one traced function.
        # Traced as written, like the model's own steps (see tfmtl._keras.without_autograph).
        self._update = step if self.model.run_eagerly else tf.function(step, reduce_retracing=True, autograph=False)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self.every_n_batches != "epoch" and self._batches % self.every_n_batches == 0:
            self._update(next(self._iterator))
            self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_batches == "epoch":
            self._update(next(self._iterator))
            self.steps += 1

    def _step(self, variables, batch):
        x, y = batch[0], batch[1]
        sample_weight = batch[2] if len(batch) > 2 else None
        with tf.GradientTape() as tape:
            # Non-trainable variables are not watched by default.
            tape.watch(variables)
            predictions = self.model(x, training=False)
            loss = tf.add_n([_mean_bce(y[name], predictions[name], sample_weight) for name in y])
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return loss


def _mean_bce(y_true, y_pred, sample_weight=None) -> tf.Tensor:
    losses = keras.losses.binary_crossentropy(y_true, y_pred)  # [B]
    if sample_weight is None:
        return tf.reduce_mean(losses)
    sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), losses.dtype)
    return tf.reduce_sum(losses * sample_weight) / tf.maximum(tf.reduce_sum(sample_weight), 1e-12)


__all__ = ["M3oE", "LOSS_MODES", "STRUCTURE_MODES", "STRUCTURE_NAMES", "StructureWeightUpdate"]
