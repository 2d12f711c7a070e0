"""argparse types the two command lines share (``tfmtl train`` and ``python -m pipeline``).

A bad value is argparse's usage error (exit 2) naming the flag. Each type imports the library (and
TensorFlow) only when its flag is given, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def json_object(text: str) -> dict:
    """``--model-args`` / ``--model-kwargs``: a JSON object of keyword arguments."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"num_experts\": 4}}', got {text!r}")
    return value


def numeric_encoding(text: str) -> str:
    """``--numeric-encoding``: scalar, ple or periodic (:func:`tfmtl.features.schema.check_numeric_encoding`)."""
    from tfmtl.features.schema import SpecError, check_numeric_encoding

    try:
        check_numeric_encoding(text, "the encoding")
    except SpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# The spec flags of both command lines, each an InferenceOptions field of the same name.
INFERENCE_FLAGS = ("embedding_dim", "numeric_encoding", "numeric_buckets")


def inference_options(args: argparse.Namespace, base):
    """``base`` (an :class:`tfmtl.features.InferenceOptions`) changed by the spec flags the user gave.

    A flag left out is ``None`` and keeps ``base``'s value, so every default stays in one place: the
    library's ``InferenceOptions()`` or a data set's own (``census.CENSUS_INFERENCE``).
    """
    chosen = {name: getattr(args, name, None) for name in INFERENCE_FLAGS}
    return base.replace(**{name: value for name, value in chosen.items() if value is not None})


def label(text: str):
    """``--label NAME[=COLUMN[:POSITIVE,...]]``: a :class:`tfmtl.features.Label` (see :mod:`tfmtl.features.labels`)."""
    from tfmtl.features.labels import label_argument

    return label_argument(text)
