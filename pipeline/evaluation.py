"""The Evaluator's TFMA config: per-task AUC, loss and calibration, group AUC, slices, and the blessing.

Group AUC (the per-user AUC, weighted) is :class:`GroupAUC`, a TFMA query-based metric: with
``group_feature`` the config adds a ``MetricsSpec`` whose ``query_key`` is that feature, TFMA hands
the metric each user's examples together, and the metric scores every row it was handed with
tfmtl's :func:`~tfmtl.training.group_auc` (the maths of the Keras :class:`~tfmtl.training.GroupAUC`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.utils import util as tfma_util

from pipeline.signatures import EVAL_FEATURES_SIGNATURE, EVAL_SIGNATURE

CANDIDATE, BASELINE = "candidate", "baseline"
# Metric class names as TFMA registers them; "AUC" carries the thresholds.
_METRICS = ("ExampleCount", "AUC", "BinaryCrossEntropy", "Calibration", "MeanLabel", "MeanPrediction",
            "CalibrationPlot")


GROUP_AUC_NAME = "gauc"


class GroupAUC(tfma.metrics.Metric):
    """TFMA's group AUC: needs the ``query_key`` of its ``MetricsSpec`` (the group feature, e.g. ``user_id``).

    Args:
      weighting: ``"impressions"``, ``"clicks"`` or ``"uniform"`` (see :mod:`tfmtl.training.group_auc`).
      name: the metric's name in TFMA's results (``gauc``).
    """

    def __init__(self, weighting: str = "impressions", name: str = GROUP_AUC_NAME):
        from tfmtl.training.group_auc import GAUC_WEIGHTINGS

        if weighting not in GAUC_WEIGHTINGS:
            raise ValueError(f"GroupAUC: weighting must be one of {GAUC_WEIGHTINGS}, got {weighting!r}")
        super().__init__(_group_auc_computations, weighting=weighting, name=name)


metric_types.register_metric(GroupAUC)


def _group_auc_computations(weighting: str = "impressions", name: str = GROUP_AUC_NAME, eval_config=None,
                            model_names=None, output_names=None, sub_keys=None, example_weighted: bool = False,
                            query_key: str = "") -> metric_types.MetricComputations:
    if not query_key:
        raise ValueError("GroupAUC: the MetricsSpec needs query_key=<the group feature, e.g. user_id>")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=[metric_types.CombinedFeaturePreprocessor(feature_keys=[query_key])],
                combiner=_GroupAUCCombiner(key, eval_config, model_name, output_name, example_weighted, query_key,
                                           weighting)))
    return computations


class _GroupAUCCombiner(beam.CombineFn):
    """Keeps every row (group, label, prediction, weight); the GAUC is computed once at the end."""

    def __init__(self, key, eval_config, model_name, output_name, example_weighted, query_key, weighting):
        self._key, self._eval_config = key, eval_config
        self._model_name, self._output_name = model_name, output_name
        self._example_weighted, self._query_key, self._weighting = example_weighted, query_key, weighting

    def create_accumulator(self) -> list:
        return []

    def add_input(self, accumulator: list, element: metric_types.StandardMetricInputs) -> list:
        labels, predictions, weights = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._model_name, output_name=self._output_name,
            example_weighted=self._example_weighted, flatten=False))
        query = np.asarray(tfma_util.get_by_keys(element.combined_features, [self._query_key])).reshape(-1)
        predictions = np.asarray(predictions, np.float64).reshape(-1)
        if query.size == 0:
            return accumulator  # an example without a group: no user to rank it within
        accumulator.append((str(query[0]), np.asarray(labels, np.float64).reshape(-1), predictions,
                            np.broadcast_to(np.asarray(weights, np.float64).reshape(-1), predictions.shape)))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        return [row for accumulator in accumulators for row in accumulator]

    def extract_output(self, accumulator: list) -> dict:
        from tfmtl.training.group_auc import group_auc

        if not accumulator:
            return {self._key: float("nan")}
        groups = np.concatenate([np.full(len(p), q, object) for q, _, p, _ in accumulator])
        labels, predictions, weights = (np.concatenate([row[i] for row in accumulator]) for i in (1, 2, 3))
        return {self._key: group_auc(labels, predictions, groups.astype(str), weights, weighting=self._weighting)}


def eval_config(output_labels: Mapping[str, str], *, slice_features: Sequence[str] = (), min_auc: float = 0.5,
                max_auc_drop: float = 0.0, group_feature: str | None = None,
                group_weighting: str = "impressions") -> tfma.EvalConfig:
    """A TFMA config that blesses a model when every task passes both AUC thresholds.

    Args:
      output_labels: ``{model output: label name}`` of the trained outputs (ESMM's
        ``cvr`` has no label and is not evaluated).
      slice_features: features to slice by (besides the overall slice); values are
        the clean raw values from the model's ``eval_features`` signature.
      min_auc: the absolute bound every task's AUC must exceed.
      max_auc_drop: how much lower than the last blessed model's AUC a task may be
        (0: no worse). Without a blessed model the change threshold passes.
      group_feature: the feature whose values are the groups of a group AUC per task
        (``gauc``, e.g. ``user_id``), reported, not a blessing condition; ``None``: none.
      group_weighting: the group AUC's weight per group (``impressions``, ``clicks``, ``uniform``).
    """
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_auc}),
        # The difference candidate - baseline must exceed -max_auc_drop (a tiny slack
        # so that a re-run of the same model is not failed by rounding).
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max_auc_drop - 1e-10}))
    metrics = [tfma.MetricConfig(class_name=name, threshold=auc_threshold if name == "AUC" else None)
               for name in _METRICS]
    model_spec = dict(signature_name=EVAL_SIGNATURE, preprocessing_function_names=[EVAL_FEATURES_SIGNATURE],
                      label_keys=dict(output_labels))
    metrics_specs = [tfma.MetricsSpec(metrics=metrics, output_names=list(output_labels))]
    if group_feature:
        GroupAUC(group_weighting)  # checks the weighting here, not in a Beam worker
        metrics_specs.append(tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name=GroupAUC.__name__, module=__name__,
                                       config=json.dumps({"weighting": group_weighting}))],
            output_names=list(output_labels), query_key=group_feature))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name=CANDIDATE, **model_spec),
                     tfma.ModelSpec(name=BASELINE, is_baseline=True, **model_spec)],
        metrics_specs=metrics_specs,
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[name]) for name in slice_features)])
