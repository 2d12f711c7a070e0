"""MAMEX (arXiv 2508.08042): multi-modal adaptive mixture of experts for item cold start.

``user/context features (spec) -> MLP -> c``;
``each item modality -> its own ModalityMoE -> e_m``;
``ModalityFusion(e_1..e_M, masks, c) -> item z``; towers on ``[c, z, c * z]``.

The item side needs no item id, so an item never seen in training is scored
from its content alone. Modalities are model inputs beyond the feature spec
(:meth:`~tfmtl.models.base.MultiTaskModel.extra_inputs`), each one of:

* ``{"name": ..., "columns": [...]}``: a precomputed numeric vector (DataFrame
  columns, or one ``[batch, len(columns)]`` input named ``name``); any NaN
  marks the modality missing for that example;
* ``{"name": ..., "text_column": ..., "vocabulary": [...]}``: raw text encoded
  in the model by :class:`~tfmtl.layers.modality.TextEncoder`; an empty string
  marks it missing.

``fusion="concat"`` or ``"mean"`` with ``num_experts=1`` gives the plain
concatenation / averaging baselines with the same encoders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmtl._keras import keras, register
from tfmtl.features import SpecError
from tfmtl.layers import MLP, TaskTowers
from tfmtl.layers._checks import check_arguments
from tfmtl.layers.modality import FUSION_MODES, ModalityFusion, ModalityMoE, TextEncoder, text_vocabulary
from tfmtl.models.base import MultiTaskModel
from tfmtl.models.registry import register_model


def modality_specs(modalities: Mapping[str, str | Sequence[str]], texts: pd.DataFrame | None = None,
                   max_tokens: int = 5000, sequence_length: int = 16) -> list[dict]:
    """MAMEX ``modalities`` from ``{name: text column | [numeric columns]}``.

    Text vocabularies are built from ``texts`` (the training frame) with
    :func:`~tfmtl.layers.modality.text_vocabulary`.

    >>> modality_specs({"genres": ["g_a", "g_b"]})
    [{'name': 'genres', 'columns': ['g_a', 'g_b']}]
    """
    specs = []
    for name, columns in modalities.items():
        if isinstance(columns, str):
            if texts is None:
                raise ValueError(f"modality '{name}' is text: pass the training frame as texts=")
            vocabulary = text_vocabulary(texts[columns].fillna("").astype(str).tolist(), max_tokens)
            specs.append({"name": name, "text_column": columns, "vocabulary": vocabulary,
                          "sequence_length": sequence_length})
        else:
            specs.append({"name": name, "columns": list(columns)})
    return specs


def _check_modalities(modalities) -> list[dict]:
    modalities = [dict(m) for m in modalities]
    if not modalities:
        raise ValueError("MAMEX: at least one modality is required")
    names = [m.get("name") for m in modalities]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"MAMEX: modality names must be distinct non-empty strings, got {names}")
    for m in modalities:
        if ("columns" in m) == ("text_column" in m):
            raise ValueError(f"MAMEX: modality '{m['name']}' needs exactly one of columns or text_column")
        if "columns" in m and not m["columns"]:
            raise ValueError(f"MAMEX: modality '{m['name']}' has no columns")
        if "text_column" in m and "vocabulary" not in m:
            raise ValueError(f"MAMEX: text modality '{m['name']}' needs a vocabulary (see modality_specs)")
    return modalities


@register_model("mamex")
@register
class MAMEX(MultiTaskModel):
    """Multi-modal adaptive mixture of experts for cold-start items.

    Args:
      modalities: list of modality dicts (module docstring; :func:`modality_specs`).
      units: width U of every modality embedding and of the user vector.
      num_experts, top_k, expert_units: each :class:`ModalityMoE` (``top_k=None``: dense softmax gate).
      load_balance_weight: weight of each modality MoE's load-balance loss.
      fusion: ``"gate"`` (MAMEX), ``"mean"`` or ``"concat"``.
      gate_units: hidden widths of the modality gate's per-modality scorer.
      gate_context: condition the modality gate on the user vector too (tfmtl's variant;
        the paper's gate scores each modality from the item content only: :meth:`paper`).
      balance_weight: weight of the modality-balance regulariser.
      modality_dropout: training-time rate of hiding a present modality.
      text_embedding_dim: token embedding width of text modalities.
      user_units: MLP from the spec features to the user vector (its last width is set to U).
      tower_units: hidden widths of each task tower.

    Example:

    >>> from tfmtl.datasets import synthetic_domains
    >>> df, spec, columns = synthetic_domains.multimodal_frame(300)
    >>> model = MAMEX(spec, modalities=modality_specs(columns), units=8, user_units=[8], tower_units=[4])
    >>> model.compile(); _ = model.fit(df, epochs=1, verbose=0)
    >>> model.modality_weights(df.head(3)).shape
    (3, 3)
    """

    def __init__(self, spec, tasks: Sequence[str] | None = None, *, modalities: Sequence[Mapping], units: int = 32,
                 num_experts: int = 4, top_k: int | None = 2, expert_units: Sequence[int] = (),
                 load_balance_weight: float = 0.01, fusion: str = "gate", gate_units: Sequence[int] = (16,),
                 gate_context: bool = True, balance_weight: float = 0.01, modality_dropout: float = 0.0,
                 text_embedding_dim: int = 16, user_units: Sequence[int] = (64,), tower_units: Sequence[int] = (64,),
                 dropout: float = 0.0, **kwargs):
        check_arguments("MAMEX", counts=dict(units=units, num_experts=num_experts,
                                             text_embedding_dim=text_embedding_dim),
                        optional_units=dict(expert_units=expert_units, gate_units=gate_units, user_units=user_units,
                                            tower_units=tower_units),
                        rates=dict(dropout=dropout, modality_dropout=modality_dropout))
        if fusion not in FUSION_MODES:
            raise ValueError(f"MAMEX: fusion must be one of {FUSION_MODES}, got {fusion!r}")
        if top_k is not None and top_k > num_experts:
            top_k = num_experts
        super().__init__(spec, tasks, modalities=_check_modalities(modalities), units=units, num_experts=num_experts,
                         top_k=top_k, expert_units=list(expert_units), load_balance_weight=load_balance_weight,
                         fusion=fusion, gate_units=list(gate_units), gate_context=gate_context,
                         balance_weight=balance_weight, modality_dropout=modality_dropout,
                         text_embedding_dim=text_embedding_dim, user_units=list(user_units),
                         tower_units=list(tower_units), dropout=dropout, **kwargs)

    @classmethod
    def paper(cls, spec, tasks: Sequence[str] | None = None, *, modalities: Sequence[Mapping],
              **kwargs) -> MAMEX:
        """MAMEX as the paper defines it (arXiv 2508.08042): the modality gate "adaptively
        weights the contribution of each modality based on its content characteristics", so
        its scores come from the modality embeddings alone (``gate_context=False``), after
        per-modality MoEs with a sparse top-k gate (``top_k=2``), ``fusion="gate"``.
        Other arguments as the constructor; the user-conditioned gate is ``gate_context=True``.

        >>> from tfmtl.datasets import synthetic_domains
        >>> df, spec, columns = synthetic_domains.multimodal_frame(100)
        >>> MAMEX.paper(spec, modalities=modality_specs(columns), units=8).get_config()["gate_context"]
        False
        """
        for key, value in (("gate_context", False), ("fusion", "gate")):
            if kwargs.get(key, value) != value:
                raise ValueError(f"MAMEX.paper fixes {key}={value!r}; use MAMEX(...) for other settings")
            kwargs[key] = value
        kwargs.setdefault("top_k", 2)
        return cls(spec, tasks, modalities=modalities, **kwargs)

    def extra_inputs(self, *, modalities, **_) -> dict:
        inputs = {}
        for m in modalities:
            if "columns" in m:
                inputs[m["name"]] = keras.Input(shape=(len(m["columns"]),), name=m["name"], dtype="float32")
            else:
                inputs[m["name"]] = keras.Input(shape=(), name=m["name"], dtype="string")
        return inputs

    def task_logits(self, features, num_tasks, *, modalities, units, num_experts, top_k, expert_units,
                    load_balance_weight, fusion, gate_units, gate_context, balance_weight, modality_dropout,
                    text_embedding_dim, user_units, tower_units, dropout):
        user = MLP(list(user_units[:-1]) + [units], dropout=dropout, name="user_mlp")(features.vector)
        embeddings, masks = [], []
        for m in modalities:
            raw = features.extra[m["name"]]
            if "text_column" in m:
                present = tf.strings.length(tf.strings.strip(raw)) > 0
                x = TextEncoder(m["vocabulary"], text_embedding_dim, m.get("sequence_length", 16),
                                name=f"{m['name']}_text")(raw)
            else:
                present = tf.reduce_all(tf.math.is_finite(raw), axis=-1)
                x = raw
            moe = ModalityMoE(num_experts, units, top_k=top_k, expert_units=expert_units,
                              load_balance_weight=load_balance_weight, name=f"{m['name']}_moe")
            embeddings.append(moe(x, present=present))
            masks.append(present)
        stacked = tf.stack(embeddings, axis=1)  # [B, M, U]
        mask = tf.stack(masks, axis=1)  # [B, M]
        fusion_inputs = [stacked, mask, user] if gate_context and fusion == "gate" else [stacked, mask]
        item = ModalityFusion(len(modalities), mode=fusion, gate_units=gate_units, balance_weight=balance_weight,
                              modality_dropout=modality_dropout, name="fusion")(fusion_inputs)
        if fusion == "concat":
            item = keras.layers.Dense(units, name="concat_projection")(item)
        interaction = keras.layers.Multiply(name="user_x_item")([user, item])
        hidden = keras.layers.Concatenate(name="tower_input")([user, item, interaction])
        return TaskTowers(num_tasks, tower_units, dropout=dropout, name="towers")(hidden)

    # ------------------------------------------------------------ modalities
    @property
    def modalities(self) -> list[dict]:
        return self._init_config["modalities"]

    @property
    def modality_names(self) -> list[str]:
        return [m["name"] for m in self.modalities]

    def modality_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """The modality inputs of ``df``: float32 ``[N, d]`` (NaN = missing) or text ``[N]``."""
        arrays = {}
        for m in self.modalities:
            wanted = m["columns"] if "columns" in m else [m["text_column"]]
            missing = [c for c in wanted if c not in df.columns]
            if missing:
                raise SpecError(f"modality '{m['name']}': column(s) {missing[:5]} are missing from the DataFrame")
            if "columns" in m:
                arrays[m["name"]] = df[m["columns"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
            else:
                arrays[m["name"]] = df[m["text_column"]].fillna("").astype(str).to_numpy(object)
        return arrays

    def extra_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """The modality inputs, for :meth:`make_dataset`."""
        return self.modality_arrays(df)

    def modality_weights(self, x, batch_size: int | None = None) -> np.ndarray:
        """Fusion weights ``[N, M]`` per example, in :attr:`modality_names` order (missing: 0).

        ``x``: a DataFrame or a dataset of feature batches.
        """
        layer = self.get_layer("fusion")
        return self.probe(layer(layer.input, return_weights=True)[1], x, batch_size)


def hide_modality(df: pd.DataFrame, modality: Mapping) -> pd.DataFrame:
    """A copy of ``df`` with ``modality`` missing for every row (NaN columns / empty text)."""
    df = df.copy()
    if "columns" in modality:
        df[list(modality["columns"])] = np.nan
    else:
        df[modality["text_column"]] = ""
    return df


__all__ = ["MAMEX", "hide_modality", "modality_specs"]
