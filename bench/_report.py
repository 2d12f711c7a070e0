"""Shared ending of the benchmark scripts: reload or run, then write JSON + Markdown (+ PNG) atomically."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written result."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def run_or_reload(args, run: Callable[[object], dict], data_ready: Callable[[], bool] = lambda: True,
                  missing_data: str = "") -> dict:
    """``--report-only`` reloads ``<out>.json``; otherwise the benchmark runs (after checking its data)."""
    if args.report_only:
        with open(args.out + ".json") as f:
            return json.load(f)
    if not data_ready():
        sys.exit(missing_data)
    return run(args)


def save_report(out: str, results: dict, markdown: str, plot: Callable[[str], None] | None = None) -> None:
    """``<out>.json`` and ``<out>.md``, then ``<out>.png`` through ``plot(path)``; prints the Markdown."""
    write_atomically(out + ".json", json.dumps(results, indent=1))
    write_atomically(out + ".md", markdown)
    if plot is not None:
        plot(out + ".png")
    print(markdown)
