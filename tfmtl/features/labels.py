"""Task labels from the command line: ``--label NAME[=COLUMN[:POSITIVE,...]]``, one parser for both CLIs.

``--label clicked`` is a 0/1 column called ``clicked``; ``--label click=clicked`` names the task ``click``
and reads the 0/1 column ``clicked``; ``--label income_50k=income:>50K,>50K.`` is 1 where ``income`` is
``>50K`` or ``>50K.``. The name ends at the first ``=`` and the column at the first ``:`` after it, so a
positive value may hold ``=``, ``:``, ``>`` or ``.``; a ``,`` inside a value is written ``\\,`` (and a
backslash ``\\\\``). Values are strings on the command line: :func:`typed_labels` matches them to the
column's dtype (``stars:4,5`` on an integer column), since ``Series.isin`` does not equate ``"4"`` and ``4``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from tfmtl.features.schema import Label, SpecError

LABEL_SYNTAX = "NAME, NAME=COLUMN (a 0/1 column) or NAME=COLUMN:POSITIVE[,POSITIVE...]"


def parse_label(text: str) -> Label:
    """The :class:`Label` a ``--label`` value describes; :class:`SpecError` naming what is malformed."""
    name, has_column, rest = text.partition("=")
    if not name.strip():
        raise SpecError(f"{text!r}: the label name is empty (expected {LABEL_SYNTAX})")
    if name != name.strip():
        raise SpecError(f"{text!r}: the label name {name!r} has spaces around it")
    if not has_column:
        return Label(name)
    column, has_positive, values = rest.partition(":")
    if not column:
        raise SpecError(f"{text!r}: the column after '=' is empty (expected {LABEL_SYNTAX})")
    if not has_positive:
        return Label(name, column)
    positive = _split_values(values)
    if not positive or any(value == "" for value in positive):
        raise SpecError(f"{text!r}: empty positive value after ':' (expected {LABEL_SYNTAX}; "
                        "a ',' inside a value is written '\\,')")
    return Label(name, column, tuple(positive))


def label_argument(text: str) -> Label:
    """argparse ``type=`` of ``--label``: a malformed value is a usage error (exit 2) that names the flag."""
    try:
        return parse_label(text)
    except SpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def typed_labels(labels: Sequence[Label | str], frame: pd.DataFrame) -> list[Label]:
    """``labels`` checked against the training rows, their positive values in each column's dtype.

    Raises :class:`SpecError` naming the label and the column when the column is missing, a positive value
    does not fit a numeric column, or the rows hold no positive or no negative example (nothing to learn).
    """
    typed = []
    for label in labels:
        label = label if isinstance(label, Label) else Label(label)
        if label.column not in frame.columns:
            raise SpecError(f"label '{label.name}': column '{label.column}' is not in the data "
                            f"(columns: {', '.join(map(str, frame.columns[:20]))})")
        column = frame[label.column]
        if label.positive is not None:
            label = Label(label.name, label.column, tuple(_as_dtype(label, value, column) for value in label.positive))
            positives = column.isin(label.positive)
            if not positives.any():
                seen = ", ".join(map(repr, column.dropna().unique()[:5].tolist()))
                raise SpecError(f"label '{label.name}': column '{label.column}' has no positive values "
                                f"({', '.join(map(repr, label.positive))}); it holds {seen}")
        else:
            values = pd.to_numeric(column, errors="coerce")
            if values.isna().any() or not values.isin([0, 1]).all():
                seen = ", ".join(map(repr, column.dropna().unique()[:5].tolist()))
                raise SpecError(f"label '{label.name}': column '{label.column}' must hold 0/1 values, it holds "
                                f"{seen}; name the positive values: --label {label.name}={label.column}:VALUE,...")
            positives = values == 1
        if positives.all():
            raise SpecError(f"label '{label.name}': every row of column '{label.column}' is positive; "
                            "a task needs negative examples too")
        if not positives.any():
            raise SpecError(f"label '{label.name}': column '{label.column}' has no positive (1) rows")
        typed.append(label)
    return typed


def _split_values(text: str) -> list[str]:
    # ',' separates values; '\,' is a comma inside one and '\\' a backslash.
    values, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def _as_dtype(label: Label, value, column: pd.Series):
    """A command-line value in the column's dtype (a value that is already typed, from a spec file, stays)."""
    if not isinstance(value, str):
        return value
    if pd.api.types.is_bool_dtype(column):
        if value.lower() not in ("true", "false", "1", "0"):
            raise SpecError(f"label '{label.name}': column '{label.column}' is boolean, got positive value {value!r}")
        return value.lower() in ("true", "1")
    if pd.api.types.is_numeric_dtype(column):
        try:
            number = float(value)
        except ValueError:
            raise SpecError(f"label '{label.name}': column '{label.column}' is numeric ({column.dtype}), got "
                            f"positive value {value!r}") from None
        return int(number) if pd.api.types.is_integer_dtype(column) and number.is_integer() else number
    return value
