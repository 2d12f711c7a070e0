"""Multi-objective training (MoRec's tri-level scheme) for any tfmtl / Keras model with dict outputs.

* outer level: :class:`PIDController` and the weighting schemes (:class:`StaticWeights`,
  :class:`UncertaintyWeighting`, :class:`PIDWeighting`);
* middle level: :class:`AdaptiveSampler` with :class:`RevenueSampling`,
  :class:`FairnessSampling` and :class:`AlignmentSampling`;
* inner level: :class:`MultiObjectiveModel`, whose ``train_step`` takes the weighted step;
* :func:`with_weighting`: a model with a weighting scheme chosen by name (the CLI and the TFX Trainer);
* :func:`convergence_callbacks`: early stopping after a learning-rate cut on a plateau (``model.fit``,
  the CLI and the TFX Trainer);
* structure weights (M3oE): :class:`StructureWeightUpdate` and the :class:`BilevelStructureFit` model mixin;
* :mod:`tfmtl.training.metrics`: Hit@K, rHit@K, min-Hit@K, Pop-KL, validity, Imp, AUCs;
* :func:`warm_start`: a new span's model from the last one, embedding rows moved to the grown vocabularies
  (:func:`grown_spec`);
* group AUC: the streaming :class:`GroupAUC` metric and :func:`group_auc` (``tfmtl.training.group_auc``);
* :class:`TrainingRun`: the one definition of a training run (model, weighting, compile, convergence, fit,
  validation, report) that ``tfmtl train``, the TFX Trainer and the benchmarks share.
"""

from tfmtl.training import metrics
from tfmtl.training.averaging import WeightAveraging
from tfmtl.training.controller import PIDController, PIDState, pid_step
from tfmtl.training.convergence import MeanOverTasks, best_epoch, convergence_callbacks
from tfmtl.training.group_auc import GAUC_WEIGHTINGS, GroupAUC, group_auc, group_auc_metrics
from tfmtl.training.multi_objective import MultiObjectiveModel
from tfmtl.training.objectives import WEIGHTINGS, base_model, make_weighting, with_weighting
from tfmtl.training.run import TrainingReport, TrainingRun
from tfmtl.training.sampler import (
    AdaptiveSampler,
    AlignmentSampling,
    FairnessSampling,
    RevenueSampling,
    SamplingRule,
    sign_step,
)
from tfmtl.training.structure_weights import BilevelStructureFit, StructureWeightUpdate
from tfmtl.training.warm_start import WarmStartError, WarmStartReport, grown_spec, load_for_warm_start, warm_start
from tfmtl.training.weighting import PIDWeighting, StaticWeights, UncertaintyWeighting, Weighting

__all__ = [
    "metrics",
    "PIDController", "PIDState", "pid_step",
    "convergence_callbacks", "best_epoch", "MeanOverTasks", "WeightAveraging",
    "MultiObjectiveModel",
    "GAUC_WEIGHTINGS", "GroupAUC", "group_auc", "group_auc_metrics",
    "WarmStartError", "WarmStartReport", "grown_spec", "load_for_warm_start", "warm_start",
    "WEIGHTINGS", "base_model", "make_weighting", "with_weighting",
    "TrainingReport", "TrainingRun",
    "AdaptiveSampler", "AlignmentSampling", "FairnessSampling", "RevenueSampling", "SamplingRule", "sign_step",
    "BilevelStructureFit", "StructureWeightUpdate",
    "PIDWeighting", "StaticWeights", "UncertaintyWeighting", "Weighting",
]
