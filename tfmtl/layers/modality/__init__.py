"""Multi-modal item encoding (MAMEX, arXiv 2508.08042): per-modality MoE, modality gate, missing modalities.

* :class:`ModalityMoE`: one modality's mixture of experts (softmax or top-k
  gate) with a load-balance loss.
* :class:`ModalityFusion`: fuses M modality embeddings by a learnable gate
  (with a balance regulariser), a masked mean or a masked concatenation;
  missing modalities get zero weight and the others renormalise.
* :class:`TextEncoder`: raw text -> mean-pooled token embeddings (Keras
  ``TextVectorization``), for a text modality without precomputed embeddings.

A modality is *missing* for an example when its mask is False: by convention
a numeric modality with any NaN, a text modality with an empty string
(:func:`modality_mask`).
"""

from tfmtl.layers.modality.fusion import FUSION_MODES, ModalityFusion
from tfmtl.layers.modality.moe import ModalityMoE
from tfmtl.layers.modality.ops import (
    kl_to_target,
    load_balance_loss,
    masked_softmax,
    modality_balance_loss,
    modality_mask,
)
from tfmtl.layers.modality.text import TextEncoder, text_vocabulary

__all__ = ["FUSION_MODES", "ModalityFusion", "ModalityMoE", "TextEncoder", "kl_to_target", "load_balance_loss",
           "masked_softmax", "modality_balance_loss", "modality_mask", "text_vocabulary"]
