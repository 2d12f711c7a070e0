"""``create_pipeline``: the one definition of the tfmtl TFX pipeline, for every runner.

ExampleGen (CSV, Parquet or TFRecord) -> StatisticsGen -> SchemaGen (or a curated
schema) -> ExampleValidator -> ValidationGate -> Transform -> [Tuner ->] Trainer (warm-started from
the last blessed model) -> Evaluator (against the last blessed model) -> Pusher (only when
blessed).

With ``{SPAN}`` split patterns (see :mod:`pipeline.spans`) the ExampleGen reads one span
per run (the latest, or the one given); with a span range the Transform and the Trainer
read every span of the range that earlier runs ingested.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen  # not in tfx.v1: the custom-executor gen
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.dsl.components.base import base_component, executor_spec

from pipeline import evaluation, spans
from pipeline.config import TrainingConfig, trainer_config, transform_config
from pipeline.gates import ValidationGate
from pipeline.transform import PANDAS_NA_VALUES, SPEC_STATISTICS
from tfmtl.features import FeatureSpec
from tfmtl.training.tuning import HyperparameterSearch

FORMATS = ("csv", "parquet", "tfrecord")
PREPROCESSING_FN = "pipeline.transform.preprocessing_fn"
RUN_FN = "pipeline.trainer.run_fn"
TUNER_FN = "pipeline.tuner.tuner_fn"


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    spec: FeatureSpec,
    serving_root: str,
    *,
    training: TrainingConfig | None = None,
    search: HyperparameterSearch | None = None,
    data_format: str = "csv",
    train_pattern: str | None = None,
    eval_pattern: str | None = None,
    span: int | None = None,
    span_range: tuple[int, int] | None = None,
    warm_start: bool | None = None,
    schema_path: str | None = None,
    statistics: str = SPEC_STATISTICS,
    train_steps: int | None = None,
    eval_steps: int | None = None,
    slice_features: Sequence[str] = (),
    group_feature: str | None = None,
    min_auc: float = 0.5,
    max_auc_drop: float = 0.0,
    model_name: str | None = None,
    metadata_connection_config=None,
    beam_pipeline_args: Sequence[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline; runners (local, Kubeflow V2 / Vertex) only differ in how they run it.

    Args:
      pipeline_name: ``[a-z0-9][a-z0-9-]*`` (Kubeflow V2 accepts no other).
      pipeline_root: where artefacts go (a local path or ``gs://...``).
      data_root: the ExampleGen's input directory.
      spec: the feature spec (vocabularies, statistics, labels) the Keras path uses too.
      serving_root: the Pusher writes ``<serving_root>/<model_name>/<version>``.
      training: model name, model kwargs and fit settings (default: MMoE).
      search: a search space over ``training``: TFX's Tuner runs it before the Trainer, on the same
        Transform output, and the Trainer trains with the best trial's values (:mod:`pipeline.tuner`).
      data_format: ``csv``, ``parquet`` or ``tfrecord`` (serialized ``tf.Example``).
      train_pattern, eval_pattern: file globs under ``data_root`` for the two
        splits; without them all files are hash-split 4:1 into train and eval. With
        ``{SPAN}`` (and ``{VERSION}``) the ExampleGen reads one span: ``span``, the
        last of ``span_range``, or else the latest span under ``data_root``.
      span: the span to read (``None``: the latest).
      span_range: ``(first, last)``: the ExampleGen reads span ``last``; the Transform and
        the Trainer read every span from ``first`` to ``last`` that runs of this pipeline ingested.
      warm_start: start the Trainer from the last blessed model (its ``base_model``) when
        there is one; the Evaluator compares with that model either way. ``None``: for
        ``{SPAN}`` input (each run a new span), not for fixed files (a re-run of the same
        files stays cached instead of training on them again).
      schema_path: a curated ``schema.pbtxt`` (ImportSchemaGen); without it
        SchemaGen infers the schema from this run's statistics, so validation
        only catches what the inferred schema pins down. Use the schema of a
        good run (see ``docs/pipeline.md``) to catch type, new and missing columns.
      statistics: ``"spec"`` or ``"analyzers"``, see :mod:`pipeline.transform`.
      train_steps, eval_steps: TFX ``TrainArgs`` / ``EvalArgs`` ``num_steps``; ``None``
        trains ``training.epochs`` passes and evaluates the whole eval split.
      slice_features: features the Evaluator also slices by.
      group_feature: a feature whose values group the rows (``user_id``): the Evaluator also
        reports each task's group AUC (``gauc``, :func:`pipeline.evaluation.eval_config`).
      min_auc, max_auc_drop: the blessing thresholds (:func:`pipeline.evaluation.eval_config`).
      model_name: the served model's name (default: ``training.model``).
    """
    training = training or TrainingConfig()
    model_name = model_name or training.model
    if group_feature is not None and group_feature not in spec.feature_names:
        raise ValueError(f"group_feature '{group_feature}' is not a feature of the spec (features: "
                         f"{spec.feature_names[:20]})")
    if data_format not in FORMATS:
        raise ValueError(f"data_format must be one of {FORMATS}, got {data_format!r}")
    span_patterns = spans.check_patterns(train_pattern, eval_pattern)
    spans.check_span_choice(span, span_range, span_patterns)
    warm_start = span_patterns if warm_start is None else warm_start

    example_gen = _example_gen(data_format, data_root, train_pattern, eval_pattern,
                               spans.ingested_span(span, span_range))
    training_examples = example_gen.outputs["examples"]
    span_resolver = None
    if span_range is not None:
        # Every Examples artefact the ExampleGen wrote in any run (a plain channel: not only this run's), filtered
        # by span; after this run's ExampleGen, so its span is among them.
        span_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
            config={"range_config": tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
                start_span_number=span_range[0], end_span_number=span_range[1]))},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id, output_key="examples"),
        ).with_id("span_range_resolver")
        span_resolver.add_upstream_node(example_gen)
        training_examples = span_resolver.outputs["examples"]
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    else:
        # VarLen features: a value may be missing, and the serving glue can say so.
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                       schema=schema_gen.outputs["schema"])
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=training_examples,
        schema=gate.outputs["validated_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        # pandas' missing-value strings only matter where the Keras path reads CSV with pandas.
        custom_config=transform_config(spec, statistics, PANDAS_NA_VALUES if data_format == "csv" else None),
        # StatisticsGen already profiles the raw data; skip TFDV on the transformed data.
        disable_statistics=True)
    # The last blessed model: the Trainer's warm start and the Evaluator's baseline (the served model).
    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    trainer_custom_config = trainer_config(spec, training, statistics, search)
    tuner = None
    if search is not None:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=gate.outputs["validated_schema"],
            train_args=tfx.proto.TrainArgs(num_steps=train_steps),
            eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
            custom_config=trainer_custom_config)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=gate.outputs["validated_schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        base_model=baseline_resolver.outputs["model"] if warm_start else None,
        custom_config=trainer_custom_config)
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=evaluation.eval_config(training.output_labels(spec), slice_features=slice_features,
                                           min_auc=min_auc, max_auc_drop=max_auc_drop, group_feature=group_feature))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=os.path.join(serving_root, model_name))))

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, *([span_resolver] if span_resolver else []), statistics_gen, schema_gen,
                    example_validator, gate, transform, *([tuner] if tuner else []), baseline_resolver, trainer,
                    evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or []))


def _example_gen(data_format: str, data_root: str, train_pattern: str | None = None,
                 eval_pattern: str | None = None, span: int | None = None) -> base_component.BaseComponent:
    """The ExampleGen of ``create_pipeline``: globs per split, or a 4:1 hash split without them; with ``{SPAN}``
    patterns, span ``span`` (``None``: the latest)."""
    # TFX reads span ``start_span_number`` of a static range: one span per run.
    range_config = None if span is None else tfx.proto.RangeConfig(
        static_range=tfx.proto.StaticRange(start_span_number=span, end_span_number=span))
    if train_pattern is None:
        input_config, output_config = None, tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=4),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)]))
    else:
        input_config, output_config = tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern=train_pattern),
            tfx.proto.Input.Split(name="eval", pattern=eval_pattern)]), None
    if data_format == "csv":
        return tfx.components.CsvExampleGen(input_base=data_root, input_config=input_config,
                                            output_config=output_config, range_config=range_config)
    if data_format == "tfrecord":
        return tfx.components.ImportExampleGen(input_base=data_root, input_config=input_config,
                                               output_config=output_config, range_config=range_config)
    return FileBasedExampleGen(
        input_base=data_root, input_config=input_config, output_config=output_config, range_config=range_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor)).with_id("ParquetExampleGen")
