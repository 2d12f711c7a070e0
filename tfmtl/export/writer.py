"""Writing a SavedModel atomically: only the resources the signatures use, TF Serving's method names."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfmtl.export.warmup import write_warmup

SAVED_MODEL_FILE = "saved_model.pb"


def write_saved_model(path: str, obj: tf.Module, track: Sequence[Any], signatures: dict, methods: dict[str, str],
                       warmup_rows: dict[str, np.ndarray] | None, model_name: str) -> None:
    root = tf.Module()
    # Only what the signatures use: no optimizer slots, no Keras layer traces to load.
    root.resources = _used_resources(obj, signatures.values())
    root.track = list(track)
    try:
        tf.saved_model.save(root, path, signatures=signatures)
    except (AssertionError, ValueError) as error:  # TF 2.16 reports an untracked capture as AssertionError
        if "untracked" not in str(error):
            raise
        raise ValueError("the signatures use a variable or table that neither the model nor `track` owns; pass "
                         "the object that owns it (e.g. the TFT layer) in track=[...]. "
                         f"TensorFlow said: {error}") from error
    _set_method_names(path, methods)
    if warmup_rows is not None:
        write_warmup(path, warmup_rows, model_name)


def _used_resources(owner: tf.Module, functions) -> list:
    """The variables, tables and assets reachable from ``owner`` that ``functions`` capture."""
    captured = {id(tensor) for function in functions for tensor in function.captured_inputs}
    return [node for node in tf.train.TrackableView(owner).descendants() if id(_handle(node)) in captured]


def _handle(node) -> tf.Tensor | None:
    if isinstance(node, tf.Variable):
        return node.handle
    if isinstance(node, tf.saved_model.experimental.TrackableResource):
        return node.resource_handle
    if isinstance(node, tf.saved_model.Asset):
        return node.asset_path
    return None


def _set_method_names(path: str, methods: Mapping[str, str]) -> None:
    # tf.saved_model.save marks every signature "predict"; TF Serving's Classify
    # and Regress APIs only run signatures with their own method name.
    pb_path = os.path.join(path, SAVED_MODEL_FILE)
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with open(pb_path, "wb") as f:
        f.write(saved_model.SerializeToString())
    _refresh_fingerprint(path)


def _refresh_fingerprint(path: str) -> None:
    # fingerprint.pb hashes saved_model.pb: recompute it (TF's own writer), or drop a stale one.
    fingerprint = os.path.join(path, "fingerprint.pb")
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:
        if os.path.exists(fingerprint):
            os.remove(fingerprint)
        return
    fingerprinting_utils.write_fingerprint(path)


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Runs ``write(staging_dir)`` and moves the result to ``path``; on failure nothing is left."""
    if _is_remote(path):
        staging = tempfile.mkdtemp(prefix="tfmtl-export-")
        try:
            write(staging)
            _copy_tree(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    parent, base = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    # Same directory, same file system: rename is atomic. A dot name is never a version.
    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        write(staging)
        check_free(path)
        try:
            os.rename(staging, path)
        except OSError as error:  # appeared meanwhile (a concurrent export)
            raise FileExistsError(f"{path} already exists; not overwriting it") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_tree(source: str, target: str) -> None:
    """Copies a local SavedModel to a remote path, ``saved_model.pb`` last (what loaders wait for)."""
    files = [os.path.relpath(os.path.join(d, f), source) for d, _, names in os.walk(source) for f in names]
    for relative in sorted(files, key=lambda f: f == SAVED_MODEL_FILE):
        destination = f"{target.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(os.path.dirname(destination))
        tf.io.gfile.copy(os.path.join(source, relative), destination)


def check_free(path: str) -> None:
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} already exists; not overwriting it (export a new version instead)")


def _is_remote(path: str) -> bool:
    return "://" in path


__all__ = ["SAVED_MODEL_FILE", "check_free", "write_atomically", "write_saved_model"]
