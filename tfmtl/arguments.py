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
    """``--numeric-encoding``: one of :data:`tfmtl.features.spec.NUMERIC_ENCODINGS`."""
    from tfmtl.features.spec import NUMERIC_ENCODINGS

    if text not in NUMERIC_ENCODINGS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(NUMERIC_ENCODINGS)}, got {text!r}")
    return text


def label(text: str):
    """``--label NAME[=COLUMN[:POSITIVE,...]]``: a :class:`tfmtl.features.Label` (see :mod:`tfmtl.features.labels`)."""
    from tfmtl.features.labels import label_argument

    return label_argument(text)
