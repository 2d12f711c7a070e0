"""pipeline/evaluation.py: the TFMA group AUC, on a Beam pipeline of per-user extracts as TFMA builds them."""

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import util as beam_util
from tensorflow_model_analysis.metrics import metric_specs, metric_types, metric_util
from tensorflow_model_analysis.utils import util as tfma_util

from pipeline import evaluation

# User a: AUC 0.75 (a tie counts 1/2), 3 rows, 1 click; b: AUC 0.5, 3 rows, 2 clicks; c: one class, skipped.
ROWS = [("a", 1, 0.8), ("a", 0, 0.8), ("a", 0, 0.3), ("b", 1, 0.2), ("b", 1, 0.9), ("b", 0, 0.5), ("c", 1, 0.4)]


def _per_user_extracts():
    extracts = {}
    for user, label, score in ROWS:
        extracts.setdefault(user, []).append({"labels": np.array([float(label)]), "predictions": np.array([score]),
                                              "example_weights": np.array([1.0]),
                                              "features": {"user_id": np.array([user])}})
    return [tfma_util.merge_extracts(examples) for examples in extracts.values()]  # TFMA groups by query_key


@pytest.mark.parametrize("weighting, expected", [("impressions", (3 * 0.75 + 3 * 0.5) / 6),
                                                 ("clicks", (0.75 + 2 * 0.5) / 3)])
def test_tfma_group_auc_matches_the_hand_calculation(weighting, expected):
    computation = evaluation.GroupAUC(weighting).computations(query_key="user_id")[0]
    key = metric_types.MetricKey(name="gauc")
    with beam.Pipeline() as pipeline:
        result = (pipeline | beam.Create(_per_user_extracts())
                  | beam.Map(metric_util.to_standard_metric_inputs, True)
                  | beam.Map(lambda x: ((), x)) | beam.CombinePerKey(computation.combiner))

        def check(got):
            assert len(got) == 1
            assert got[0][1][key] == pytest.approx(expected)

        beam_util.assert_that(result, check)


def test_eval_config_adds_a_query_spec_that_tfma_resolves():
    config = evaluation.eval_config({"click": "click", "conversion": "conversion"}, group_feature="user_id",
                                    group_weighting="clicks")
    spec = config.metrics_specs[-1]
    assert spec.query_key == "user_id" and list(spec.output_names) == ["click", "conversion"]
    assert json.loads(spec.metrics[0].config) == {"weighting": "clicks"}
    computations = metric_specs.to_computations([spec], config)  # imports the class from its module, as TFMA does
    names = {key.name for c in computations for key in c.keys}
    assert "gauc" in names
    assert len(evaluation.eval_config({"click": "click"}).metrics_specs) == 1  # no group feature: no GAUC
    with pytest.raises(ValueError, match="weighting must be one of"):
        evaluation.eval_config({"click": "click"}, group_feature="user_id", group_weighting="users")
    with pytest.raises(ValueError, match="needs query_key"):
        evaluation.GroupAUC().computations()


def test_create_pipeline_gives_the_evaluator_the_group_feature(tmp_path):
    import os

    import pandas as pd
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    from pipeline.pipeline import create_pipeline
    from tfmtl.datasets import census

    spec = census.census_spec(pd.read_csv(os.path.join(census.DATA_DIR, "train.csv.gz"), nrows=200,
                                          skipinitialspace=True))

    def evaluator_config(**kwargs):
        pipeline = create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), spec,
                                   str(tmp_path / "serving"), **kwargs)
        evaluator = next(c for c in pipeline.components if c.id == "Evaluator")
        return json_format.Parse(evaluator.exec_properties["eval_config"], config_pb2.EvalConfig())

    grouped = evaluator_config(group_feature="state_of_previous_residence")
    [group_spec] = [s for s in grouped.metrics_specs if s.query_key]
    assert group_spec.query_key == "state_of_previous_residence" and group_spec.metrics[0].class_name == "GroupAUC"
    assert not any(s.query_key for s in evaluator_config().metrics_specs)
    with pytest.raises(ValueError, match="group_feature 'user_id' is not a feature of the spec"):
        evaluator_config(group_feature="user_id")
