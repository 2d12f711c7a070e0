"""Multi-task models, each a thin composition of tfmtl layers; build by class or by name."""

from tfmtl.models.aitm import AITM
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.deepfm import DeepFM
from tfmtl.models.esmm import ESMM
from tfmtl.models.fsmd import FG, FS, FSMD, Base
from tfmtl.models.mmoe import MMoE
from tfmtl.models.ple import PLE
from tfmtl.models.registry import available_models, build_model, get_model_class, register_model
from tfmtl.models.shared_bottom import SharedBottom
from tfmtl.models.single_task import SingleTask

__all__ = [
    "AITM",
    "ESMM",
    "FG",
    "FS",
    "FSMD",
    "PLE",
    "Base",
    "DeepFM",
    "MMoE",
    "MultiTaskModel",
    "SharedBottom",
    "SingleTask",
    "available_models",
    "build_model",
    "get_model_class",
    "register_model",
]

# Multi-domain (M3oE, STAR) and multi-modal cold-start (MAMEX) models.
from tfmtl.models.m3oe import M3oE, StructureWeightUpdate  # noqa: E402
from tfmtl.models.mamex import MAMEX  # noqa: E402
from tfmtl.models.star import STAR  # noqa: E402

__all__ += ["M3oE", "MAMEX", "STAR", "StructureWeightUpdate"]

# Sequential next-item backbone (MoRec's SASRec-BCE); not a multi-task model, so not in the registry.
from tfmtl.models.sasrec import SASRec, sasrec_bce_loss  # noqa: E402

__all__ += ["SASRec", "sasrec_bce_loss"]
