"""Shared ending of the benchmark scripts: reload or run, then write JSON + Markdown (+ PNG) atomically."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path beside ``path`` (same extension, so matplotlib picks the format) renamed to ``path``
    when the block succeeds and removed when it fails: readers never see a half-written result."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, extension = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{extension}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_json(path: str, data, indent: int | None = 1) -> None:
    """``data`` as JSON at ``path``, atomically."""
    write_atomically(path, json.dumps(data, indent=indent))


# Arguments that may differ between a run and the runs it is appended to.
_PER_INVOCATION = {"seeds", "out", "append", "report_only", "variants", "models"}


def appended(path: str, fresh: dict, seeds) -> dict:
    """The results saved at ``path`` to continue: its ``config`` must equal ``fresh["config"]`` except
    for the seeds and which models run; ``config["seeds"]`` becomes the union of both seed lists."""
    with open(path) as f:
        previous = json.load(f)
    old, new = previous["config"], fresh["config"]
    differing = sorted(k for k in (set(old) | set(new)) - _PER_INVOCATION if old.get(k) != new.get(k))
    if differing:
        sys.exit(f"--append: {path} was run with other settings: "
                 + ", ".join(f"{k} {old.get(k)!r} there, {new.get(k)!r} now" for k in differing))
    previous["config"]["seeds"] = sorted(set(old["seeds"]) | set(seeds))
    return previous


def save_figure(figure, path: str, **savefig_kwargs) -> None:
    """``figure.savefig`` to ``path``, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, **savefig_kwargs)


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
    write_json(out + ".json", results)
    write_atomically(out + ".md", markdown)
    if plot is not None:
        plot(out + ".png")
    print(markdown)
