"""The two entry points: :func:`export_saved_model` (a versioned directory) and :func:`save_signatures`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from tfmtl.export.checks import check_model_name, check_raw_inputs, check_version, next_version, resolve_spec
from tfmtl.export.signatures import Extras, RawFn, build_signatures, call_model
from tfmtl.export.warmup import DEFAULT_WARMUP_RECORDS, Warmup, warmup_rows
from tfmtl.export.writer import check_free, write_atomically, write_saved_model
from tfmtl.features import FeatureSpec


def export_saved_model(model: tf.Module, export_dir_base: str, model_name: str, *, version: int | None = None,
                       spec: FeatureSpec | Mapping | None = None, raw_fn: RawFn | None = None,
                       warmup: Warmup = None, track: Sequence[Any] = (),
                       warmup_records: int = DEFAULT_WARMUP_RECORDS) -> str:
    """Exports ``model`` to ``<export_dir_base>/<model_name>/<version>/`` and returns that path.

    The version directory appears at once (written next to it, then renamed) or
    not at all; an existing version is never overwritten.

    Args:
      model: the trained model (a tfmtl ``MultiTaskModel``, or any Keras model or
        ``tf.Module`` together with ``spec`` and ``raw_fn``).
      export_dir_base: the directory TF Serving's ``--model_base_path`` parent.
      model_name: ``[A-Za-z0-9][A-Za-z0-9._-]*``; the model's directory and the
        ``model_spec.name`` of the warmup requests.
      version: a non-negative integer; default: the largest existing version + 1, or 1.
      spec: the feature spec of the raw inputs; default ``model.spec``.
      raw_fn: ``{feature: [batch] raw tensor} -> {output: [batch] or [batch, 1]
        probability}``; default ``model`` itself. In a TFX pipeline:
        ``lambda raw: model(tft_layer(raw))`` with ``track=[tft_layer]``.
      warmup: rows for the warmup requests: a DataFrame of raw features, ``None``
        (rows made up from the spec's vocabularies and means) or ``False`` (none).
      track: objects ``raw_fn`` uses beyond ``model`` (e.g. the TFT layer), saved with it.
      warmup_records: the number of warmup requests (one example each), <= 1000.
    """
    model_dir = os.path.join(os.fspath(export_dir_base), check_model_name(model_name))
    version = next_version(model_dir) if version is None else check_version(version)
    return save_signatures(model, os.path.join(model_dir, str(version)), spec, raw_fn, track=track, warmup=warmup,
                           warmup_records=warmup_records, model_name=model_name)


def save_signatures(obj: tf.Module, path: str, spec: FeatureSpec | Mapping | None = None,
                    raw_fn: RawFn | None = None, outputs: Sequence[str] | None = None, *,
                    track: Sequence[Any] = (), warmup: Warmup = None,
                    warmup_records: int = DEFAULT_WARMUP_RECORDS, model_name: str | None = None,
                    extra_signatures: Mapping[str, Any] | None = None) -> str:
    """Writes a SavedModel with the serving signatures at ``path`` (no version subdirectory).

    ``path`` must not exist; it appears at once (written to a temporary directory
    next to it, then renamed). On a remote file system (``gs://...``, where a
    directory cannot be renamed atomically) the model is written locally and
    copied with ``saved_model.pb`` last.

    Args:
      obj: the object owning the variables and lookup tables ``raw_fn`` uses (the model).
      outputs: the outputs to serve, each with classify and regress signatures;
        default: every output of ``raw_fn``.
      model_name: ``model_spec.name`` of the warmup requests; default ``obj.name``.
      extra_signatures: more ``{name: concrete function}`` to save (e.g. the TFX
        pipeline's ``transform_features`` for TFMA); their names must not clash.
      Others: as :func:`export_saved_model`.
    """
    if not isinstance(obj, tf.Module):
        raise TypeError(f"export needs a Keras model or tf.Module, got {type(obj).__name__}")
    spec = resolve_spec(obj, spec)
    extras: Extras = {}
    if raw_fn is None:
        extras = check_raw_inputs(obj, spec)
        raw_fn = call_model(obj)
    rows = warmup_rows(spec, warmup, warmup_records, obj, extras)
    path = os.fspath(path)
    check_free(path)
    signatures, methods = build_signatures(raw_fn, spec, outputs, extras)
    clash = sorted(set(extra_signatures or {}) & set(signatures))
    if clash:
        raise ValueError(f"extra_signatures {clash} clash with the serving signatures")
    signatures.update(extra_signatures or {})
    name = model_name if model_name is not None else str(getattr(obj, "name", ""))
    write_atomically(path, lambda staging: write_saved_model(staging, obj, track, signatures, methods,
                                                                  rows, name))
    return path


__all__ = ["export_saved_model", "save_signatures"]
