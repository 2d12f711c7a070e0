"""Daily spans: ``{SPAN}`` / ``{VERSION}`` input patterns, the span a run reads, and the next span's spec.

A span is one batch of logs (a day, an hour), stored as its own files, for example
``<data>/span-3/train/*.csv`` and ``<data>/span-3/eval/*.csv``; a span may be re-delivered
as versions (``span-3/v-2/...``). The ExampleGen reads one span per run: the latest one
(the default), or the one given (``--span``). To train on several spans, ``--span-range A:B``
ingests span ``B`` and feeds the Transform and the Trainer every span from ``A`` to ``B`` that
earlier runs of the pipeline ingested (TFX's ``SpanRangeStrategy``); the Evaluator always
compares the candidate with the blessed model on the newest span.

The next span's spec is the last run's spec grown over the new span's train rows
(:func:`tfmtl.training.grown_spec`): known values keep their ids and new values get new ids,
so the Trainer can carry the embedding rows of the last blessed model over
(:func:`tfmtl.training.warm_start`).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import pandas as pd

from tfmtl.features import FeatureSpec
from tfmtl.training import grown_spec

SPAN_SPEC, VERSION_SPEC = "{SPAN}", "{VERSION}"
# TFX's placeholders: {SPAN} or {SPAN:width} (zero-padded), the same for {VERSION}.
_SPAN = re.compile(r"\{SPAN(?::(\d+))?\}")
_VERSION = re.compile(r"\{VERSION(?::(\d+))?\}")
_DATE = re.compile(r"\{(YYYY|MM|DD)\}")


class SpanError(ValueError):
    """A span pattern, span number or span range that cannot be used: the message names the flag and the problem."""


@dataclasses.dataclass(frozen=True)
class SpanFiles:
    """The files one span (at its latest version) holds for one split pattern."""

    span: int
    version: int | None
    files: tuple[str, ...]


def has_span(pattern: str | None) -> bool:
    """Whether ``pattern`` holds a ``{SPAN}`` placeholder."""
    return bool(pattern) and bool(_SPAN.search(pattern))


def check_patterns(train_pattern: str | None, eval_pattern: str | None) -> bool:
    """Checks the two split patterns; returns whether they are span patterns.

    Both or neither hold ``{SPAN}`` (the ExampleGen picks one span for all splits), each at
    most once; ``{VERSION}`` only with ``{SPAN}``; the date placeholders are not supported.
    """
    if (train_pattern is None) != (eval_pattern is None):
        raise SpanError("give both --train-pattern and --eval-pattern, or neither (hash split)")
    if train_pattern is None:
        return False
    for flag, pattern in (("--train-pattern", train_pattern), ("--eval-pattern", eval_pattern)):
        if not pattern.strip():
            raise SpanError(f"{flag} is empty")
        if os.path.isabs(pattern):
            raise SpanError(f"{flag} '{pattern}' must be relative to --data (the ExampleGen's input directory)")
        if _DATE.search(pattern):
            raise SpanError(f"{flag} '{pattern}': date placeholders ({{YYYY}}, {{MM}}, {{DD}}) are not supported; "
                            f"number the spans with {SPAN_SPEC}")
        spans, versions = len(_SPAN.findall(pattern)), len(_VERSION.findall(pattern))
        if spans > 1 or versions > 1:
            raise SpanError(f"{flag} '{pattern}' holds {SPAN_SPEC} or {VERSION_SPEC} more than once")
        if versions and not spans:
            raise SpanError(f"{flag} '{pattern}' holds {VERSION_SPEC} without {SPAN_SPEC}")
        leftover = re.sub(r"[*?\[\]]", "", _VERSION.sub("", _SPAN.sub("", pattern)))
        if "{" in leftover or "}" in leftover:
            raise SpanError(f"{flag} '{pattern}': unknown placeholder; only {SPAN_SPEC}, {{SPAN:width}}, "
                            f"{VERSION_SPEC} and {{VERSION:width}} are understood")
    if has_span(train_pattern) != has_span(eval_pattern):
        raise SpanError(f"--train-pattern and --eval-pattern must both hold {SPAN_SPEC} or neither "
                        f"(got '{train_pattern}' and '{eval_pattern}'): a run reads one span for every split")
    if bool(_VERSION.search(train_pattern)) != bool(_VERSION.search(eval_pattern)):
        raise SpanError(f"--train-pattern and --eval-pattern must both hold {VERSION_SPEC} or neither")
    return has_span(train_pattern)


def parse_span_range(text: str) -> tuple[int, int]:
    """``"A:B"`` -> ``(A, B)``, ``0 <= A <= B`` (argparse ``type=``)."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = int(parts[0]), int(parts[1])
    except ValueError:
        raise SpanError(f"--span-range must be A:B (two span numbers), got '{text}'") from None
    if start < 0 or end < start:
        raise SpanError(f"--span-range {text}: need 0 <= A <= B")
    return start, end


def check_span_choice(span: int | None, span_range: tuple[int, int] | None, span_patterns: bool) -> None:
    """``--span`` and ``--span-range`` exclude each other and need ``{SPAN}`` patterns."""
    if span is not None and span_range is not None:
        raise SpanError("give --span or --span-range, not both")
    if (span is not None or span_range is not None) and not span_patterns:
        raise SpanError(f"--span and --span-range need --train-pattern and --eval-pattern with {SPAN_SPEC}")
    if span is not None and span < 0:
        raise SpanError(f"--span must be >= 0, got {span}")


def ingested_span(span: int | None, span_range: tuple[int, int] | None) -> int | None:
    """The span the ExampleGen reads: ``span``, the range's last, or ``None`` for the latest there is."""
    return span_range[1] if span_range is not None else span


def as_glob(pattern: str) -> str:
    """The glob of every span and version ``pattern`` can match."""
    return _VERSION.sub("*", _SPAN.sub("*", pattern))


def find_span(data_root: str, pattern: str, span: int | None = None) -> SpanFiles:
    """The files of ``span`` (default: the latest span) at its latest version, as the ExampleGen picks them."""
    regex, position = "", 0
    for match in re.finditer(f"{_SPAN.pattern}|{_VERSION.pattern}", pattern):
        regex += _glob_regex(pattern[position:match.start()])
        width = match.group(1) or match.group(2)
        digits = rf"\d{{{width}}}" if width else r"\d+"
        regex += f"(?P<span>{digits})" if match.group(0).startswith("{SPAN") else f"(?P<version>{digits})"
        position = match.end()
    regex += _glob_regex(pattern[position:])
    glob_pattern = as_glob(pattern)
    found: dict[tuple[int, int | None], list[str]] = {}
    root = os.path.abspath(data_root)
    for path in glob.glob(os.path.join(root, glob_pattern)):
        match = re.fullmatch(regex, os.path.relpath(path, root))
        if match and os.path.isfile(path):
            version = match.groupdict().get("version")
            found.setdefault((int(match["span"]), None if version is None else int(version)), []).append(path)
    spans = sorted({key[0] for key in found})
    if not spans:
        raise SpanError(f"no files under '{data_root}' match the span pattern '{pattern}'")
    chosen = spans[-1] if span is None else span
    if chosen not in spans:
        raise SpanError(f"span {chosen} has no files matching '{pattern}' under '{data_root}' (spans there: "
                        f"{_short(spans)})")
    version = max((key[1] for key in found if key[0] == chosen), key=lambda v: -1 if v is None else v)
    return SpanFiles(chosen, version, tuple(sorted(found[(chosen, version)])))


def next_spec(previous_spec_path: str, train_rows: pd.DataFrame) -> FeatureSpec:
    """The last run's spec (``<run dir>/spec.json``) grown over the new span's train rows: known values keep their
    ids, values first seen in this span get new ids, statistics and labels stay the last run's."""
    return grown_spec(FeatureSpec.load(previous_spec_path), train_rows)


def _glob_regex(literal: str) -> str:
    """The regex of a glob fragment: ``*`` and ``?`` within one path component, ``[...]`` as is."""
    out, index = "", 0
    while index < len(literal):
        char = literal[index]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = literal.find("]", index + 1)
            if end < 0:
                out += re.escape(char)
            else:
                out += literal[index:end + 1]
                index = end
        else:
            out += re.escape(char)
        index += 1
    return out


def _short(values: list[int]) -> str:
    return ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")
