"""The Trainer module: ``run_fn`` builds any registered tfmtl model on the Transform output.

``custom_config`` (see :mod:`pipeline.config`) names the model and its keyword
arguments; the model takes the encoded inputs the Transform graph writes
(``encoded_inputs=True``), so pipeline and ``model.fit`` models share the body,
the towers and the losses. The serving model goes through :mod:`tfmtl.export`
with the Transform layer in front (see :mod:`pipeline.signatures`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipeline import signatures
from pipeline.config import TrainingConfig, read_trainer_config
from pipeline.distribution import choose_strategy, is_chief, precision_policy, strategy_name
from pipeline.transform import fitted_spec
from tfmtl import export
from tfmtl.compat import keras
from tfmtl.features import FeatureSpec, encoded_names
from tfmtl.models import build_model
from tfmtl.optimizers import Adam
from tfmtl.training import base_model, best_epoch, with_weighting

# In fn_args.model_run_dir, beside the TensorBoard logs: the trained Keras model and what the fit did.
KERAS_MODEL_FILE, REPORT_FILE = "model.keras", "training.json"
EVAL_BATCH_SIZE = 1024


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (``Trainer(run_fn="pipeline.trainer.run_fn")``)."""
    spec, training, statistics = read_trainer_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    spec = fitted_spec(spec, tft_output, statistics)
    keras.utils.set_random_seed(training.seed)
    strategy = choose_strategy(training.distribution)
    with precision_policy(training.mixed_precision):
        with strategy.scope():
            model = _build(spec, training)
        label_map = base_model(model).label_map
        # Per replica batch times replicas: each device keeps the configured batch.
        batch_size = training.batch_size * strategy.num_replicas_in_sync
        train_steps = fn_args.train_steps
        train = _dataset(fn_args.train_files, fn_args.data_accessor, tft_output, spec, label_map, batch_size,
                         shuffle=True, repeat=train_steps is not None, seed=training.seed)
        evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, spec, label_map,
                              EVAL_BATCH_SIZE, shuffle=False, repeat=False)
        chief = is_chief(strategy)
        model_run_dir = fn_args.model_run_dir if chief else tempfile.mkdtemp(prefix="tfmtl-worker-")
        # Train to convergence: stop when the monitored eval AUC (or loss) stops improving, keep the best
        # epoch's (averaged) weights.
        callbacks = [*training.convergence_callbacks(),
                     keras.callbacks.TensorBoard(log_dir=model_run_dir, update_freq="epoch", profile_batch=0)]
        history = model.fit(
            train, epochs=training.epochs,
            steps_per_epoch=math.ceil(train_steps / training.epochs) if train_steps else None,
            validation_data=evaluation, validation_steps=fn_args.eval_steps, callbacks=callbacks, verbose=2)
        # Every task saves (saving may need the other workers); only the chief's copy is the model.
        serving_dir = fn_args.serving_model_dir if chief else os.path.join(model_run_dir, "serving")
        model.save(os.path.join(model_run_dir, KERAS_MODEL_FILE))
        export_serving_model(base_model(_plain_copy(model, spec, training, strategy)), tft_output, spec, serving_dir)
        _write_report(os.path.join(model_run_dir, REPORT_FILE), strategy, batch_size, history.history, training)


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


def _build(spec: FeatureSpec, training: TrainingConfig) -> keras.Model:
    model = build_model(training.model, spec, training.tasks, encoded_inputs=True, **training.model_kwargs)
    extra = sorted(set(model.input_names) - set(encoded_names(spec)))
    if extra:
        raise ValueError(f"model '{training.model}' needs inputs {extra} beyond the feature spec; the pipeline "
                         "only feeds the Transform output")
    expected = training.output_labels(spec)
    if model.label_map != expected:
        raise ValueError(f"model '{training.model}' trains outputs {model.label_map}, the Evaluator expects {expected}")
    model = with_weighting(model, training.weighting, **training.weighting_args)
    model.compile(optimizer=Adam(training.learning_rate))
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
    copy = _build(spec, training)
    copy.set_weights(model.get_weights())
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


def _write_report(path: str, strategy: tf.distribute.Strategy, batch_size: int, history: Mapping[str, list],
                  training: TrainingConfig) -> None:
    report = {"strategy": strategy_name(strategy), "replicas": strategy.num_replicas_in_sync,
              "global_batch_size": batch_size, "mixed_precision": training.mixed_precision,
              "history": {name: [float(v) for v in values] for name, values in history.items()}}
    if history.get("loss"):  # how many epochs ran and the one whose weights were kept (the last without a stop)
        report["epochs_run"] = len(history["loss"])
        report["best_epoch"] = best_epoch(history, training.monitor) if training.patience else report["epochs_run"]
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(report, indent=1))
