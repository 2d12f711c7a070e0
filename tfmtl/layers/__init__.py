"""Keras layers for multi-task ranking models; each module holds one concept."""

from tfmtl.layers.aitm import AITM, AITMCalibrator, AITMHead, calibrator_penalty
from tfmtl.layers.embedding import FieldEmbedding
from tfmtl.layers.esmm import ESMMHead
from tfmtl.layers.experts import ExpertGates, MixtureOfExperts, mix_experts
from tfmtl.layers.extraction import CGC, PLE
from tfmtl.layers.fm import (
    FactorizationMachine,
    FMFirstOrder,
    FMSecondOrder,
    SharedFactorizationMachine,
    bi_interaction,
    fm_second_order,
)
from tfmtl.layers.grouped import GroupedDense, GroupedMLP
from tfmtl.layers.mlp import MLP
from tfmtl.layers.sequence import SelfAttentionEncoder, SequencePooling, TargetAttention
from tfmtl.layers.towers import TaskTowers

__all__ = [
    "AITM",
    "AITMCalibrator",
    "AITMHead",
    "CGC",
    "ESMMHead",
    "ExpertGates",
    "FMFirstOrder",
    "FactorizationMachine",
    "FMSecondOrder",
    "FieldEmbedding",
    "GroupedDense",
    "GroupedMLP",
    "MLP",
    "MixtureOfExperts",
    "PLE",
    "SharedFactorizationMachine",
    "SelfAttentionEncoder",
    "SequencePooling",
    "TargetAttention",
    "TaskTowers",
    "bi_interaction",
    "calibrator_penalty",
    "fm_second_order",
    "mix_experts",
]

# Multi-domain (M3oE, STAR) and multi-modal (MAMEX) layers.
from tfmtl.layers.domain import DomainExpertMixing, DomainTaskTowers, M3oEExperts, StarDense  # noqa: E402
from tfmtl.layers.modality import ModalityFusion, ModalityMoE, TextEncoder, text_vocabulary  # noqa: E402

__all__ += [
    "DomainExpertMixing",
    "DomainTaskTowers",
    "M3oEExperts",
    "ModalityFusion",
    "ModalityMoE",
    "StarDense",
    "TextEncoder",
    "text_vocabulary",
]
