"""Small census slices as the ExampleGen sees them, and a Transform output built with TFT Beam in memory.

The Transform output has the layout the TFX components write (``transform_graph/``,
``transformed_examples/Split-{train,eval}/``), so the Trainer's ``run_fn`` runs on
it with ``FnArgs`` built as the Trainer executor builds them, without a pipeline.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfmtl.datasets import census

TRAIN_ROWS, EVAL_ROWS = 400, 200
SMALL_MMOE = {"num_experts": 2, "expert_units": [8], "tower_units": [4]}
# The tests' short run, said here rather than through a shorter default (TrainingRun's cap is 30 epochs).
SHORT_RUN = {"epochs": 3, "patience": 1, "lr_patience": 0}
SHORT_RUN_FLAGS = ["--epochs", "3", "--patience", "1", "--lr-patience", "0"]


def raw_frame(name: str, rows: int) -> pd.DataFrame:
    """Census rows typed as CsvExampleGen types them: numbers as numbers, strings with their leading space."""
    return pd.read_csv(os.path.join(census.DATA_DIR, name), nrows=rows, keep_default_na=False)


def raw_feature_spec(frame: pd.DataFrame) -> dict[str, tf.io.VarLenFeature]:
    """What SchemaGen(infer_feature_shape=False) gives the Transform: a VarLen feature per column."""
    kinds = {"i": tf.int64, "f": tf.float32}
    return {c: tf.io.VarLenFeature(kinds.get(frame[c].dtype.kind, tf.string)) for c in frame.columns}


def serialize(frame: pd.DataFrame) -> list[bytes]:
    examples = []
    for row in frame.itertuples(index=False):
        features = {}
        for name, value in zip(frame.columns, row):
            if isinstance(value, str):
                features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
            elif isinstance(value, (int, np.integer)):
                features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            else:
                features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        examples.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return examples


@dataclasses.dataclass
class TransformOutput:
    directory: str
    spec: object
    train: pd.DataFrame  # raw, as the ExampleGen sees it
    eval: pd.DataFrame
    statistics: str

    @property
    def transform_graph(self) -> str:
        return os.path.join(self.directory, "transform_graph")

    @property
    def transformed_examples(self) -> str:
        return os.path.join(self.directory, "transformed_examples")

    def fn_args(self, custom_config: dict, out_dir: str, train_steps: int | None = None):
        """``FnArgs`` as the Trainer executor makes them for this Transform output."""
        from tfx.components.trainer import fn_args_utils
        from tfx.types import standard_artifacts
        from tfx.utils import json_utils

        examples = standard_artifacts.Examples()
        examples.uri = self.transformed_examples
        examples.split_names = '["train", "eval"]'
        graph = standard_artifacts.TransformGraph()
        graph.uri = self.transform_graph
        fn_args = fn_args_utils.get_common_fn_args(
            {"examples": [examples], "transform_graph": [graph]},
            {"train_args": json_utils.dumps({"num_steps": train_steps} if train_steps else {}), "eval_args": "{}",
             "custom_config": json_utils.dumps(custom_config)})
        fn_args.serving_model_dir = os.path.join(out_dir, "Format-Serving")
        fn_args.model_run_dir = os.path.join(out_dir, "model_run")
        return fn_args


def build_transform_output(directory: str, spec, train: pd.DataFrame, evaluation: pd.DataFrame,
                           statistics: str = "spec") -> TransformOutput:
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx_bsl.public import tfxio

    from pipeline.config import transform_config
    from pipeline.transform import PANDAS_NA_VALUES, preprocessing_fn

    config = transform_config(spec, statistics, PANDAS_NA_VALUES)
    # Serialized tf.Examples through TFXIO, as the Transform component reads the ExampleGen output.
    schema = schema_utils.schema_from_feature_spec(raw_feature_spec(train))
    source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["tfmtl", "tests"],
                                       schema=schema)
    output = TransformOutput(directory, spec, train, evaluation, statistics)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=directory)):
        train_data = pipeline | "Train" >> beam.Create(serialize(train)) | "DecodeTrain" >> source.BeamSource()
        eval_data = pipeline | "Eval" >> beam.Create(serialize(evaluation)) | "DecodeEval" >> source.BeamSource()
        adapter = source.TensorAdapterConfig()
        (train_out, metadata), transform_fn = (train_data, adapter) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config))
        eval_out, _ = ((eval_data, adapter), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(output.transform_graph)
        for split, rows in (("train", train_out), ("eval", eval_out)):
            coder = tft.coders.ExampleProtoCoder(metadata.schema)
            _ = (rows | f"Encode{split}" >> beam.Map(coder.encode)
                 | f"Write{split}" >> beam.io.WriteToTFRecord(
                     os.path.join(output.transformed_examples, f"Split-{split}", "data"), file_name_suffix=".gz"))
    # The raw schema, where the Transform component keeps it (TFTransformOutput.raw_feature_spec reads it).
    raw_metadata = dataset_metadata.DatasetMetadata(schema)
    metadata_io.write_metadata(raw_metadata, os.path.join(output.transform_graph, "metadata"))
    return output


@pytest.fixture(scope="session")
def census_raw():
    """(train, eval) raw frames and the spec fitted on the clean train rows (as the Keras path fits it)."""
    train = raw_frame("train.csv.gz", TRAIN_ROWS)
    evaluation = raw_frame("test.csv.gz", EVAL_ROWS)
    clean = census.read_census_csv(os.path.join(census.DATA_DIR, "train.csv.gz"), nrows=TRAIN_ROWS)
    return train, evaluation, census.census_spec(clean, numeric_buckets=3)


@pytest.fixture(scope="session")
def transform_output(census_raw, tmp_path_factory):
    train, evaluation, spec = census_raw
    return build_transform_output(str(tmp_path_factory.mktemp("transform")), spec, train, evaluation)
