"""The TFX glue around :mod:`tfmtl.export`: raw features -> Transform layer -> model.

:func:`tfmtl.export.save_signatures` writes the serving signatures from a
``raw_fn`` that takes the spec's raw features (string / int64 / float32, each
``[batch]``). In the pipeline that function runs the Transform graph, whose inputs
have the types and shapes the ExampleGen wrote (CSV integers for numeric
columns, ``VarLenFeature`` columns as SparseTensors), so :func:`raw_fn` converts
between the two.

Two more signatures serve the Evaluator, which reads the ExampleGen's examples
as they are (serialized ``tf.Example`` in the raw schema's types, labels included):

- ``eval_tf_example``: ``examples`` -> the model outputs (``[batch]`` float32), clipped to
  ``[EVAL_EPSILON, 1 - EVAL_EPSILON]`` as Keras' binary cross-entropy clips them: TFMA's
  ``BinaryCrossEntropy`` takes ``log(1 - p)`` unclipped, so one prediction of exactly 1.0 (a
  saturated float32 sigmoid, which the full census demo has) made the task's loss NaN.
- ``eval_features``: ``examples`` -> the labels (0/1 from the Transform graph) and
  the categorical features as clean raw values (leading spaces dropped), which
  TFMA reads for labels and slices (its ``preprocessing_function_names``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import tensorflow as tf

from pipeline.transform import strip_leading_spaces
from tfmtl.compat import without_autograph
from tfmtl.features import CategoricalFeature, FeatureSpec

EVAL_SIGNATURE = "eval_tf_example"
EVAL_FEATURES_SIGNATURE = "eval_features"
EVAL_EPSILON = 1e-7  # Keras' backend epsilon, the clip of its binary cross-entropy

RawFeatureSpec = Mapping[str, tf.io.FixedLenFeature | tf.io.VarLenFeature]


def raw_fn(model: tf.keras.Model, tft_layer, raw_feature_spec: RawFeatureSpec,
           encoded: Iterable[str]) -> Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]:
    """``{feature: [batch] spec-typed raw tensor} -> model outputs``, through the Transform layer."""
    encoded = list(encoded)

    def call(raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return _predict(model, tft_layer(to_transform_inputs(raw, raw_feature_spec)), encoded)

    return call


def eval_signatures(model: tf.keras.Model, tft_layer, spec: FeatureSpec, raw_feature_spec: RawFeatureSpec,
                    encoded: Iterable[str]) -> dict[str, Callable]:
    """``{eval_tf_example, eval_features}`` concrete functions (see the module docstring)."""
    encoded = list(encoded)
    label_columns = {label.column for label in spec.labels} | ({spec.weight_column} - {None})
    feature_spec = {name: raw_feature_spec[name] for name in spec.feature_names}
    labelled_spec = {name: raw_feature_spec[name] for name in [*spec.feature_names, *sorted(label_columns)]
                     if name in raw_feature_spec}
    examples = tf.TensorSpec([None], tf.string, name="examples")

    @tf.function(input_signature=[examples])
    def eval_tf_example(serialized):
        transformed = tft_layer(tf.io.parse_example(serialized, feature_spec))
        return {name: tf.clip_by_value(tf.reshape(tf.cast(value, tf.float32), [-1]), EVAL_EPSILON, 1 - EVAL_EPSILON)
                for name, value in _predict(model, transformed, encoded).items()}

    @tf.function(input_signature=[examples])
    def eval_features(serialized):
        raw = tf.io.parse_example(serialized, labelled_spec)
        transformed = tft_layer(raw)
        outputs = {name: transformed[name] for name in [*spec.label_names, spec.weight_column] if name in transformed}
        for feature in spec.categorical:
            outputs[feature.name] = _clean(raw[feature.name], feature)
        return outputs

    return {EVAL_SIGNATURE: eval_tf_example.get_concrete_function(),
            EVAL_FEATURES_SIGNATURE: eval_features.get_concrete_function()}


def to_transform_inputs(raw: Mapping[str, tf.Tensor], raw_feature_spec: RawFeatureSpec) -> dict[str, tf.Tensor]:
    """Spec-typed ``[batch]`` raw features -> the Transform graph's input types and shapes.

    A list feature ``[batch, width]`` (padded with ``""`` / ``-1``) becomes the var-len
    SparseTensor of its values (the Transform splits string values on ``"|"``, so a
    CSV-encoded list column in the raw schema takes them too).

    A missing float (NaN) becomes an absent value where the raw schema allows
    one (``VarLenFeature``, what ``SchemaGen(infer_feature_shape=False)`` writes).
    """
    inputs = {}
    for name, value in raw.items():
        feature = raw_feature_spec[name]
        if value.shape.rank == 2:  # a list feature [batch, width]: its non-pad values, var-len
            inputs[name] = _list_input(value, feature, name)
            continue
        present = ~tf.math.is_nan(value) if value.dtype.is_floating else tf.ones_like(value, tf.bool)
        value = _cast(tf.where(present, value, tf.zeros_like(value)) if value.dtype.is_floating else value,
                      feature.dtype)
        if isinstance(feature, tf.io.VarLenFeature):
            rows = tf.cast(tf.where(present)[:, 0], tf.int64)
            indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
            inputs[name] = tf.SparseTensor(indices, tf.boolean_mask(value, present),
                                           [tf.shape(value, out_type=tf.int64)[0], 1])
        elif isinstance(feature, tf.io.FixedLenFeature):
            inputs[name] = tf.reshape(value, [-1, *feature.shape])
        else:
            raise TypeError(f"raw feature '{name}': {type(feature).__name__} is not supported by the serving glue")
    return inputs


def _list_input(value: tf.Tensor, feature, name: str) -> tf.SparseTensor:
    """A padded raw list ``[batch, width]`` -> the SparseTensor of its non-pad values, as a var-len feature parses."""
    if not isinstance(feature, tf.io.VarLenFeature):
        raise TypeError(f"raw feature '{name}' is a list; the raw schema must make it a VarLenFeature, got "
                        f"{type(feature).__name__}")
    pad = tf.constant("" if value.dtype == tf.string else -1, value.dtype)
    real = tf.ragged.boolean_mask(value, tf.not_equal(value, pad))
    return tf.ragged.map_flat_values(_cast, real, feature.dtype).to_sparse()


def _cast(value: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    if value.dtype == dtype:
        return value
    if value.dtype == tf.string:
        return tf.strings.to_number(value, dtype)
    if dtype == tf.string:
        return tf.strings.as_string(value)
    if value.dtype.is_floating and dtype.is_integer:
        # CSV columns of whole numbers are INT in the raw schema; the spec serves them as float32.
        return tf.cast(tf.round(value), dtype)
    return tf.cast(value, dtype)


@without_autograph  # AutoGraph would rewrite Keras' own call path (see tfmtl.compat.without_autograph)
def _predict(model: tf.keras.Model, transformed: Mapping[str, tf.Tensor], encoded: list[str]) -> dict:
    return model({name: transformed[name] for name in encoded}, training=False)


def _clean(value, feature: CategoricalFeature) -> tf.Tensor:
    if isinstance(value, tf.SparseTensor):
        default = "" if value.dtype == tf.string else -1
        value = tf.sparse.to_dense(tf.sparse.reset_shape(value, [value.dense_shape[0], 1]), default)
    value = tf.reshape(value, [-1])
    return strip_leading_spaces(value) if value.dtype == tf.string else value
