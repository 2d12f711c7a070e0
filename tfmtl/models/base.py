"""The base of every tfmtl model: spec -> inputs -> embeddings -> body -> task outputs.

A model family only says how per-task logits come from the input vector
(:meth:`MultiTaskModel.task_logits`); the base builds the inputs and
preprocessing from the feature spec, adds the optional FM term and the output
head, and makes ``compile``/``fit``/``evaluate``/``predict`` accept pandas
DataFrames. Models are functional Keras models, so they save and load as
``.keras`` files and export as SavedModels like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras, without_autograph
from tfmtl.features import (
    CategoricalFeature,
    FeaturePreprocessing,
    FeatureSpec,
    ListFeature,
    SpecError,
    dataframe_to_dataset,
    feature_inputs,
)
from tfmtl.layers import ESMMHead, FactorizationMachine, FieldEmbedding, SharedFactorizationMachine
from tfmtl.layers.dcn import CrossNetwork
from tfmtl.layers.numeric import PeriodicEmbedding, PiecewiseLinearEmbedding
from tfmtl.layers.sequence import SequencePooling, TargetAttention
from tfmtl.optimizers import default_optimizer
from tfmtl.training.group_auc import batch_features
from tfmtl.training.run import DEFAULT_BATCH_SIZE  # fit's batch when a DataFrame comes without one

ESMM_OUTPUTS = ("ctr", "cvr", "ctcvr")
CROSS_MODES = (None, "stacked", "parallel")
INFERENCE_BATCH_SIZE = 1024  # evaluate / predict / validation: no gradient, so larger is only faster


FM_MODES = ("shared", "per_task")


def _fm_mode(fm) -> str | None:
    """``fm`` argument -> ``"shared"``, ``"per_task"`` or ``None`` (``True`` means ``"per_task"``)."""
    if fm is None or fm is False:
        return None
    if fm is True:
        return "per_task"
    if fm in FM_MODES:
        return fm
    raise SpecError(f"fm must be False, True, 'shared' or 'per_task', got {fm!r}")


class EncodedFeatures:
    """What a model body sees: ids ``[B, F]``, dense ``[B, N]``, embeddings ``[B, F', D]``
    (``None`` without fields; the F id fields first, then embedded numerics, pooled lists
    and history-attention interest vectors) and ``vector``, their concatenation ``[B, F'*D + N]``;
    ``spec`` (to find a field by name) and ``extra``, the non-spec inputs a model
    declares in :meth:`MultiTaskModel.extra_inputs` (``{}`` by default)."""

    def __init__(self, ids, dense, embeddings, vector, spec=None, extra=None):
        self.ids, self.dense, self.embeddings, self.vector = ids, dense, embeddings, vector
        self.spec, self.extra = spec, dict(extra or {})


class MultiTaskModel(keras.Model):
    """Base class: one sigmoid output per task, or the ESMM ``ctr/cvr/ctcvr`` head.

    Args:
      spec: the :class:`~tfmtl.features.FeatureSpec` (or its config dict).
      tasks: label names to predict (default: all labels of the spec). With the
        ESMM head: ``[click_label, click_and_conversion_label]``.
      fm: add DeepFM's FM logits to every task: ``"shared"`` (DeepFM's FM as the FSMD
        paper keeps it: one FM over all fields, dense features included, the same term
        for every task; :class:`~tfmtl.layers.SharedFactorizationMachine`),
        ``"per_task"`` or ``True`` (tfmtl's variant: per-task first-order and cross
        weights, dense features linear only; :class:`~tfmtl.layers.FactorizationMachine`),
        ``False``/``None`` (no FM).
      encoded_inputs: take already-encoded inputs (TFX Transform output)
        instead of raw features.
      embeddings_regularizer: regulariser of the field embeddings (e.g. ``"l2"``).
      cross: a DCN-v2 cross network (:class:`~tfmtl.layers.dcn.CrossNetwork`) on the
        input vector: ``"stacked"`` feeds its output to the body (experts, MLP)
        instead of the input vector; ``"parallel"`` adds a per-task linear logit of
        its output beside the body's (DCN-v2's parallel structure). ``None``: none.
      cross_layers: number of cross layers.
      cross_projection_dim: rank of the low-rank cross kernels (``None``: full rank).
      history_attention: ``{list feature: candidate feature}``: DIN target attention
        (:class:`~tfmtl.layers.TargetAttention`, Zhou et al., KDD 2018) over the list's
        sequence of embeddings against the candidate's embedding; the interest vector
        joins the fields (FM crosses, experts, gates). The list must share the
        candidate's table (``ListFeature(..., shares=candidate)``). A list feature with
        ``pooling=None`` must be named here; a pooled one may be (it then gives both).
      attention_units: hidden widths of the attention MLP (the paper: 80, 40).
    """

    esmm_head = False

    def __init__(self, spec: FeatureSpec | Mapping, tasks: Sequence[str] | None = None, *, fm: bool | str = False,
                 encoded_inputs: bool = False, embeddings_regularizer=None, cross: str | None = None,
                 cross_layers: int = 2, cross_projection_dim: int | None = None,
                 history_attention: Mapping[str, str] | None = None, attention_units: Sequence[int] = (80, 40),
                 name: str | None = None, **body_config: Any):
        spec = FeatureSpec.coerce(spec)
        if cross not in CROSS_MODES:
            raise ValueError(f"{type(self).__name__}: cross must be one of {CROSS_MODES}, got {cross!r}")
        tasks = self._resolve_tasks(spec, tasks)
        inputs = feature_inputs(spec, encoded=encoded_inputs)
        history_attention = _check_history_attention(spec, history_attention, type(self).__name__)
        attention_units = [int(u) for u in attention_units]
        features = _encode(spec, inputs, encoded_inputs, embeddings_regularizer, history_attention, attention_units)
        extra = self.extra_inputs(**body_config)
        clash = sorted(set(extra) & set(inputs))
        if clash:
            raise SpecError(f"{type(self).__name__}: extra inputs {clash} clash with feature inputs")
        inputs, features.extra = {**inputs, **extra}, extra
        fm = _fm_mode(fm)
        crossed = None
        if cross:
            crossed = CrossNetwork(cross_layers, cross_projection_dim, name="cross")(features.vector)
            if cross == "stacked":
                features.vector = crossed
        logits = self.task_logits(features, len(tasks), **body_config)
        if cross == "parallel":
            cross_logits = keras.layers.Dense(len(tasks), name="cross_logits")(crossed)
            logits = keras.layers.Add(name="cross_plus_deep")([logits, cross_logits])
        if fm:
            if features.embeddings is None:
                raise SpecError(f"fm={fm!r} needs at least one embedded field in the spec")
            layer = SharedFactorizationMachine if fm == "shared" else FactorizationMachine
            fm_logits = layer(spec.field_sizes, len(tasks), name="fm")(
                [features.ids, features.dense, features.embeddings])
            logits = keras.layers.Add(name="fm_plus_deep")([logits, fm_logits])
        outputs = self._head(logits, tasks)
        super().__init__(inputs=inputs, outputs=outputs, name=name or _snake(type(self).__name__))
        self.spec = spec
        self.tasks = list(tasks)
        self._init_config = {"spec": spec.get_config(), "tasks": list(tasks), "fm": fm,
                             "encoded_inputs": encoded_inputs,
                             "embeddings_regularizer": keras.regularizers.serialize(
                                 keras.regularizers.get(embeddings_regularizer)),
                             "cross": cross,
                             **({"cross_layers": cross_layers,
                                 "cross_projection_dim": cross_projection_dim} if cross else {}),
                             **({"history_attention": history_attention, "attention_units": attention_units}
                                if history_attention else {}),
                             **body_config}

    # ------------------------------------------------------ for subclasses
    def extra_inputs(self, **body_config) -> dict[str, Any]:
        """Keras inputs beyond the spec's features (e.g. modality embeddings, raw text); none by default.

        They become model inputs and reach :meth:`task_logits` as ``features.extra``;
        a model that declares some also gives their values in :meth:`extra_arrays`.
        """
        return {}

    def task_logits(self, features: EncodedFeatures, num_tasks: int, **body_config) -> tf.Tensor:
        """Per-task logits ``[batch, num_tasks]`` from the encoded features."""
        raise NotImplementedError

    # ------------------------------------------------------------- outputs
    @property
    def label_map(self) -> dict[str, str]:
        """``{trained output name: label name}``; ESMM's ``cvr`` has no label of its own."""
        if self.esmm_head:
            return {"ctr": self.tasks[0], "ctcvr": self.tasks[1]}
        return {task: task for task in self.tasks}

    @classmethod
    def _resolve_tasks(cls, spec: FeatureSpec, tasks) -> list[str]:
        tasks = list(spec.label_names if tasks is None else ([tasks] if isinstance(tasks, str) else tasks))
        if not tasks:
            raise SpecError(f"{cls.__name__}: no tasks; give tasks=[...] or labels in the spec")
        for task in tasks:
            spec.label(task)  # raises with the known labels
        if cls.esmm_head and len(tasks) != 2:
            raise SpecError(f"{cls.__name__}: needs tasks=[click_label, click_and_conversion_label], got {tasks}")
        reserved = set(spec.feature_names) | {"preprocessing", "embedding", "fm"}
        clash = sorted(set(tasks) & reserved)
        if clash:
            raise SpecError(f"{cls.__name__}: task names {clash} clash with feature or layer names")
        return tasks

    def _head(self, logits, tasks):
        if self.esmm_head:
            probabilities = ESMMHead(name="esmm")(logits)
            return {name: keras.layers.Activation("linear", name=name)(probabilities[name]) for name in ESMM_OUTPUTS}
        return {task: keras.layers.Activation("sigmoid", name=task)(logits[:, i : i + 1])
                for i, task in enumerate(tasks)}

    # ------------------------------------------------------- Keras steps
    # Keras' own steps, traced without AutoGraph (see tfmtl._keras.without_autograph).
    # The batch's features reach the group metrics (GroupAUC(group="user_id")) through batch_features.
    @without_autograph
    def train_step(self, data):
        with batch_features(data):
            return super().train_step(data)

    @without_autograph
    def test_step(self, data):
        with batch_features(data):
            return super().test_step(data)

    @without_autograph
    def predict_step(self, data):
        return super().predict_step(data)

    # --------------------------------------------------------- DataFrames
    def make_dataset(self, df: pd.DataFrame, *, with_labels: bool = True, batch_size: int = DEFAULT_BATCH_SIZE,
                     shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
        """The ``tf.data.Dataset`` this model trains on, from a DataFrame."""
        return dataframe_to_dataset(self.spec, df, self.label_map if with_labels else None, batch_size=batch_size,
                                    shuffle=shuffle, seed=seed,
                                    extra_features=self.extra_arrays(df) if isinstance(df, pd.DataFrame) else None)

    def extra_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Values of the :meth:`extra_inputs` for ``df``'s rows ``{name: [N, ...]}``; none by default."""
        return {}

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like ``keras.Model.compile``; by default binary cross-entropy and AUC per trained output.

        ``"adam"`` (the default) is :class:`tfmtl.optimizers.Adam`: Keras' Adam with a fused update.
        """
        if loss is None:
            loss = {output: keras.losses.BinaryCrossentropy(name=f"{output}_bce") for output in self.label_map}
        if metrics is None:
            metrics = self.default_metrics()
        super().compile(optimizer=default_optimizer(optimizer), loss=loss, metrics=metrics, **kwargs)

    def default_metrics(self) -> dict[str, list[keras.metrics.Metric]]:
        """``compile``'s default metrics: a ROC AUC per trained output, logged ``<output>_auc``.

        :func:`tfmtl.training.convergence_callbacks` decides on their validation mean by default.
        """
        return {output: [keras.metrics.AUC(name="auc", num_thresholds=1000)] for output in self.label_map}

    def fit(self, x=None, y=None, batch_size=None, *args, validation_data=None, shuffle=True, **kwargs):
        """``keras.Model.fit`` that also takes DataFrames for ``x`` and ``validation_data``."""
        if isinstance(x, pd.DataFrame):
            _no_y(y)
            x = self.make_dataset(x, batch_size=batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle)
            batch_size = None
        if isinstance(validation_data, pd.DataFrame):
            validation_data = self.make_dataset(validation_data, batch_size=INFERENCE_BATCH_SIZE)
        return super().fit(x, y, batch_size, *args, validation_data=validation_data, shuffle=shuffle, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        if isinstance(x, pd.DataFrame):
            _no_y(y)
            x, batch_size = self.make_dataset(x, batch_size=batch_size or INFERENCE_BATCH_SIZE), None
        return super().evaluate(x, y, batch_size, *args, **kwargs)

    def predict(self, x, batch_size=None, *args, **kwargs):
        """Predictions ``{output: [N, 1]}``; ``x`` may be a DataFrame (labels not needed)."""
        if isinstance(x, pd.DataFrame):
            x, batch_size = self.make_dataset(x, with_labels=False,
                                              batch_size=batch_size or INFERENCE_BATCH_SIZE), None
        return super().predict(x, batch_size, *args, **kwargs)

    def probe(self, tensor, x, batch_size: int | None = None):
        """Values of an internal Keras ``tensor`` of this model for every example of ``x``.

        ``x``: a DataFrame or a dataset of feature batches. Batch by batch, eagerly: a
        diagnostic (gate or modality weights) should not pay for tracing a predict function.
        """
        probe = keras.Model(self.inputs, tensor)
        if isinstance(x, pd.DataFrame):
            x = self.make_dataset(x, with_labels=False, batch_size=batch_size or INFERENCE_BATCH_SIZE)
        return np.concatenate([probe(batch, training=False).numpy() for batch in x])

    # ------------------------------------------------------ serialisation
    def get_config(self) -> dict:
        return {**self._init_config, "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Files saved before the config always named `cross` left it out when it was None.
        return cls(**{"cross": None, **config})

    def compile_from_config(self, config):
        # Keras skips models with a custom compile(); ours only fills defaults, so restore it.
        from tf_keras.src.saving import saving_lib

        self.compile(**saving_lib.deserialize_keras_object(config))
        if self.built and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)


def _check_history_attention(spec: FeatureSpec, history_attention, model: str) -> dict[str, str]:
    pairs = dict(history_attention or {})
    for sequence, candidate in pairs.items():
        feature = spec.feature(sequence)
        if not isinstance(feature, ListFeature):
            raise SpecError(f"{model}: history_attention: '{sequence}' is not a list feature")
        owner = spec.table_owner(feature)
        if not isinstance(spec.feature(candidate), CategoricalFeature) or owner.name != candidate:
            raise SpecError(f"{model}: history_attention: '{sequence}' must share the table of the categorical "
                            f"candidate '{candidate}' (ListFeature(..., shares='{candidate}')); it uses "
                            f"'{owner.name}''s")
    unused = [f.name for f in spec.lists if f.pooling is None and f.name not in pairs]
    if unused:
        raise SpecError(f"{model}: list features {unused} have pooling=None (a sequence); give them a pooling "
                        "or name them in history_attention={sequence: candidate}")
    return pairs


def _encode(spec, inputs, encoded_inputs, embeddings_regularizer, history_attention=None,
            attention_units=(80, 40)) -> EncodedFeatures:
    encoded = FeaturePreprocessing(spec, encoded=encoded_inputs, name="preprocessing")(inputs)
    ids, dense = encoded["ids"], encoded["dense"]
    parts, fields = [], []
    table = None
    if spec.fields:
        table = FieldEmbedding(spec.field_sizes, spec.embedding_dim, embeddings_regularizer=embeddings_regularizer,
                               name="embedding")
        fields.append(table(ids))
    fields += _numeric_fields(spec, dense)
    if spec.lists:
        fields += _list_fields(spec, encoded["lists"], table, fields[0] if table else None, embeddings_regularizer,
                               history_attention or {}, attention_units)
    embeddings = None
    if fields:
        embeddings = fields[0] if len(fields) == 1 else keras.layers.Concatenate(axis=1, name="fields")(fields)
        parts.append(keras.layers.Flatten(name="flat_embeddings")(embeddings))
    if spec.numeric:
        parts.append(dense)
    vector = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="input_vector")(parts)
    return EncodedFeatures(ids, dense, embeddings, vector, spec=spec)


def _list_fields(spec, lists, table, field_embeddings, embeddings_regularizer, history_attention,
                 attention_units) -> list:
    """One ``[B, 1, D]`` field per pooled list and per history attention, in spec order.

    A list's ids index its own table (``list_embedding``, one packed table for all
    lists that own one) or the table of the feature it ``shares`` (``embedding``);
    ``-1`` marks padding, masked in the pooling and the attention.
    """
    own = spec.list_tables
    list_table = None
    if own:
        list_table = FieldEmbedding([f.num_ids for f in own], spec.embedding_dim,
                                    embeddings_regularizer=embeddings_regularizer, name="list_embedding")
    dim = spec.embedding_dim
    out = []
    for feature in spec.lists:
        owner = spec.table_owner(feature)
        if isinstance(owner, CategoricalFeature):
            layer, position = table, spec.fields.index(owner)
        else:
            layer, position = list_table, own.index(owner)
        ids = lists[feature.name]
        sequence = layer(ids, field=position)  # [B, T, D]
        mask = tf.greater_equal(ids, 0)
        if feature.pooling:
            pooled = SequencePooling(feature.pooling, name=f"{feature.name}_pooling")(sequence, mask=mask)
            out.append(keras.layers.Reshape((1, dim), name=f"{feature.name}_field")(pooled))
        if feature.name in history_attention:
            candidate = field_embeddings[:, spec.fields.index(spec.feature(history_attention[feature.name])), :]
            interest = TargetAttention(attention_units, name=f"{feature.name}_attention")(sequence, candidate,
                                                                                         mask=mask)
            out.append(keras.layers.Reshape((1, dim), name=f"{feature.name}_interest")(interest))
    return out


def _numeric_fields(spec, dense) -> list:
    """PLE and periodic field embeddings ``[B, K, D]`` of the standardised numeric values.

    They are computed from ``dense``, the standardised values that the Keras and the
    Transform preprocessing emit identically, with the spec's edges moved onto that
    scale: one implementation, inside the model, for training and serving.
    """
    position = {f.name: i for i, f in enumerate(spec.numeric)}
    out = []
    for encoding, layer_name in (("ple", "ple_embedding"), ("periodic", "periodic_embedding")):
        chosen = [f for f in spec.embedded_numeric if f.encoding == encoding]
        if not chosen:
            continue
        columns = [position[f.name] for f in chosen]
        if encoding == "ple":
            layer = PiecewiseLinearEmbedding([f.standardised_edges() for f in chosen], spec.embedding_dim,
                                             columns=columns, name=layer_name)
        else:
            settings = {(f.frequencies, f.sigma) for f in chosen}
            if len(settings) > 1:
                raise SpecError(f"periodic features need one (frequencies, sigma), got {sorted(settings)}")
            frequencies, sigma = settings.pop()
            layer = PeriodicEmbedding(len(chosen), spec.embedding_dim, frequencies, sigma, columns=columns,
                                      name=layer_name)
        out.append(layer(dense))
    return out


def _no_y(y):
    if y is not None:
        raise ValueError("with a DataFrame as x, labels come from the spec's label columns; do not pass y")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i and not name[i - 1].isupper() else c.lower()
                   for i, c in enumerate(name))
