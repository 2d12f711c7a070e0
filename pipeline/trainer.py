"""The Trainer module: ``run_fn`` builds any registered tfmtl model on the Transform output.

``custom_config`` (see :mod:`pipeline.config`) names the model and its keyword
arguments; the model takes the encoded inputs the Transform graph writes
(``encoded_inputs=True``), so pipeline and ``model.fit`` models share the body,
the towers and the losses. The serving model goes through :mod:`tfmtl.export`
with the Transform layer in front (see :mod:`pipeline.signatures`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipeline import signatures
from pipeline.config import TrainingConfig, read_search, read_trainer_config
from pipeline.distribution import choose_strategy, is_chief, precision_policy, strategy_name
from pipeline.transform import fitted_spec
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.features import FeatureSpec, encoded_names
from tfmtl.training import TrainingReport, base_model
from tfmtl.training.sharding import unsharded_weights
from tfmtl.training.tuning import HyperparameterSearch

# The Trainer's report (in fn_args.model_run_dir, beside the TensorBoard logs), and the trained Keras model with its
# fitted spec inside the Model artifact, beside Format-Serving: the next span's Trainer warm-starts from it.
REPORT_FILE = "training.json"
KERAS_DIR, KERAS_MODEL_FILE, SPEC_FILE = "Format-Keras", "model.keras", "spec.json"
EVAL_BATCH_SIZE = 1024


def keras_model_dir(serving_model_dir: str) -> str:
    """Where the Trainer keeps the Keras model of the Model artifact whose serving directory is ``serving_model_dir``
    (``fn_args.serving_model_dir`` for this run's, ``fn_args.base_model`` for the base model's)."""
    return os.path.join(os.path.dirname(os.path.normpath(serving_model_dir)), KERAS_DIR)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (``Trainer(run_fn="pipeline.trainer.run_fn")``).

    With a ``base_model`` (the last blessed model) the new model starts from its weights, the
    embedding rows of known values moved to their ids in this run's vocabularies.
    """
    spec, training, tft_output = trainer_inputs(fn_args)
    search = read_search(fn_args.custom_config)
    tuned = tuned_values(search, fn_args.hyperparameters)
    if tuned:
        training = search.apply(training, tuned)
    base = _warm_start_source(fn_args.base_model)
    if base is not None:
        training = dataclasses.replace(training, warm_start=base)
    keras.utils.set_random_seed(training.seed)
    strategy = choose_strategy(training.distribution)
    sharded = isinstance(strategy, tf.distribute.ParameterServerStrategy)
    if sharded and (fn_args.train_steps is None or fn_args.eval_steps is None):
        raise ValueError("distribution 'parameter_server' needs TrainArgs(num_steps=...) and "
                         "EvalArgs(num_steps=...): the workers read repeated datasets, so an epoch has no end")
    with precision_policy(training.mixed_precision):
        with strategy.scope():
            model = _build(spec, training)
        # Per replica batch times replicas: each device keeps the configured batch.
        batch_size = training.batch_size * strategy.num_replicas_in_sync
        train, evaluation, fit_steps = fit_data(fn_args, tft_output, spec, training, batch_size,
                                                repeat_eval=sharded)
        chief = is_chief(strategy)
        model_run_dir = fn_args.model_run_dir if chief else tempfile.mkdtemp(prefix="tfmtl-worker-")
        # The run's convergence (stop when the eval AUC or loss stops improving, keep the best epoch's averaged
        # weights), then TensorBoard.
        report = training.fit(
            model, train, evaluation,
            callbacks=[keras.callbacks.TensorBoard(log_dir=model_run_dir, update_freq="epoch", profile_batch=0)],
            **fit_steps)
        # Every task saves (saving may need the other workers); only the chief's copy is the model.
        serving_dir = fn_args.serving_model_dir if chief else os.path.join(model_run_dir, "serving")
        plain = _plain_copy(model, spec, training, strategy)
        # A sharded model's .keras file would hold each shard as a weight of its own: save the plain copy.
        _save_keras(plain if sharded else model, spec, keras_model_dir(serving_dir))
        export_serving_model(base_model(plain), tft_output, spec, serving_dir)
        _write_report(os.path.join(model_run_dir, REPORT_FILE), strategy, batch_size, report, training, tuned)


def trainer_inputs(fn_args: tfx.components.FnArgs) -> tuple[FeatureSpec, TrainingConfig, tft.TFTransformOutput]:
    """The spec fitted to the Transform output, the training config and the Transform output, from the
    Trainer's (or the Tuner's) ``custom_config`` and ``transform_graph``."""
    spec, training, statistics = read_trainer_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    return fitted_spec(spec, tft_output, statistics), training, tft_output


def fit_data(fn_args: tfx.components.FnArgs, tft_output: tft.TFTransformOutput, spec: FeatureSpec,
             training: TrainingConfig, batch_size: int,
             repeat_eval: bool = False) -> tuple[tf.data.Dataset, tf.data.Dataset, dict]:
    """The train and eval datasets of the Transform output, and the step counts ``fit`` takes with them
    (``TrainArgs.num_steps`` spread over the epochs; ``EvalArgs.num_steps``). ``repeat_eval`` repeats the
    eval data (ParameterServerStrategy: each worker reads its own copy, so a one-pass dataset runs out)."""
    label_map = training.output_labels(spec)
    train_steps = fn_args.train_steps
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tft_output, spec, label_map, batch_size,
                     shuffle=True, repeat=train_steps is not None, seed=training.seed)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, spec, label_map,
                          EVAL_BATCH_SIZE, shuffle=False, repeat=repeat_eval)
    steps = {"steps_per_epoch": math.ceil(train_steps / training.epochs) if train_steps else None,
             "validation_steps": fn_args.eval_steps}
    return train, evaluation, steps


def tuned_values(search: HyperparameterSearch | None, hyperparameters: Mapping | None) -> dict:
    """The Tuner's best values for the run (``{}`` without a Tuner upstream).

    ``hyperparameters`` is ``fn_args.hyperparameters``: KerasTuner's config of the best trial, as
    TFX's Tuner writes it (``{"space": [...], "values": {...}}``).
    """
    if not hyperparameters:
        return {}
    if search is None:
        raise ValueError("the Trainer got hyperparameters but its custom_config has no search space: build the "
                         "pipeline with create_pipeline(..., search=HyperparameterSearch(...))")
    return search.decode(hyperparameters["values"])


def _warm_start_source(base_serving_dir: str | None) -> str | None:
    """The base model's ``.keras`` file, or ``None`` without a base model (the first run) or without a Keras copy
    (a model exported before the Trainer kept one: it trains from scratch, and the report says so)."""
    if not base_serving_dir:
        return None
    path = os.path.join(keras_model_dir(base_serving_dir), KERAS_MODEL_FILE)
    if not tf.io.gfile.exists(path):
        logging.warning("base model %s has no Keras copy at %s: training from scratch", base_serving_dir, path)
        return None
    return path


def _save_keras(model: keras.Model, spec: FeatureSpec, directory: str) -> None:
    # Keras writes .keras files through the local file system: save locally, then copy (gs:// model URIs too).
    tf.io.gfile.makedirs(directory)
    with tempfile.TemporaryDirectory(prefix="tfmtl-keras-") as local:
        model.save(os.path.join(local, KERAS_MODEL_FILE))
        spec.save(os.path.join(local, SPEC_FILE))
        for name in (KERAS_MODEL_FILE, SPEC_FILE):
            tf.io.gfile.copy(os.path.join(local, name), os.path.join(directory, name), overwrite=True)


def export_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput, spec: FeatureSpec,
                         path: str) -> str:
    """Writes the serving SavedModel (raw features and tf.Example through the Transform layer) at ``path``."""
    tft_layer = tft_output.transform_features_layer()
    raw_feature_spec = tft_output.raw_feature_spec()
    encoded = list(encoded_names(spec))
    return export.save_signatures(
        model, path, spec,
        raw_fn=signatures.raw_fn(model, tft_layer, raw_feature_spec, encoded),
        track=[tft_layer],
        extra_signatures=signatures.eval_signatures(model, tft_layer, spec, raw_feature_spec, encoded))


def _build(spec: FeatureSpec, training: TrainingConfig, seed: bool = True) -> keras.Model:
    model = training.build(spec, encoded_inputs=True, seed=seed)
    extra = sorted(set(base_model(model).input_names) - set(encoded_names(spec)))
    if extra:
        raise ValueError(f"model '{training.model}' needs inputs {extra} beyond the feature spec; the pipeline "
                         "only feeds the Transform output")
    return model


def _plain_copy(model: keras.Model, spec: FeatureSpec, training: TrainingConfig,
                strategy: tf.distribute.Strategy) -> keras.Model:
    """The trained model with ordinary variables, for export.

    Signatures traced over distributed variables cannot always be saved
    (MultiWorkerMirroredStrategy: "ConcreteFunction that uses distributed variables
    in certain way cannot be saved"), so a distributed model is rebuilt outside the
    strategy and given the trained weights.
    """
    if strategy is tf.distribute.get_strategy():  # the default strategy: nothing distributed
        return model
    copy = _build(spec, dataclasses.replace(training, warm_start=None), seed=False)
    copy.set_weights(unsharded_weights(model))  # a sharded table's shards joined (ParameterServerStrategy)
    return copy


def _dataset(files: list[str], data_accessor, tft_output: tft.TFTransformOutput, spec: FeatureSpec,
             label_map: Mapping[str, str], batch_size: int, *, shuffle: bool, repeat: bool,
             seed: int | None = None) -> tf.data.Dataset:
    """``(encoded features, {output: [batch, 1] label}[, weights])`` batches of transformed examples."""
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=shuffle, shuffle_seed=seed,
                                             num_epochs=None if repeat else 1)
    dataset = data_accessor.tf_dataset_factory(files, options, tft_output.transformed_metadata.schema)
    # Multi-worker: every worker reads all files and keeps its share (works with one file per split).
    sharding = tf.data.Options()
    sharding.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(sharding)
    encoded = list(encoded_names(spec))
    weight = spec.weight_column

    def split(features):
        x = {name: features[name] for name in encoded}
        y = {output: tf.reshape(features[label], [-1, 1]) for output, label in label_map.items()}
        return (x, y, features[weight]) if weight else (x, y)

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _write_report(path: str, strategy: tf.distribute.Strategy, batch_size: int, report: TrainingReport,
                  training: TrainingConfig, tuned: Mapping) -> None:
    content = {"strategy": strategy_name(strategy), "replicas": strategy.num_replicas_in_sync,
               "global_batch_size": batch_size, "mixed_precision": training.mixed_precision,
               "hyperparameters": dict(tuned) or None, **report.to_dict()}
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(content, indent=1))

