"""The input files a streamed reader (Parquet, TFRecord) is given: a file, a directory, a glob, or a list."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from tfmtl.features.schema import SpecError


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike], directory_glob: str, kind: str) -> list[str]:
    """The files ``paths`` names, in order: a directory gives its ``directory_glob`` files sorted, a glob its
    matches sorted. No file, or a named file that does not exist, is a :class:`SpecError` naming ``kind``."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[str] = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            files += sorted(f for f in glob.glob(os.path.join(item, directory_glob)) if os.path.isfile(f))
        elif any(c in item for c in "*?["):
            files += sorted(glob.glob(item))
        else:
            files.append(item)
    if not files:
        raise SpecError(f"no {kind} files found in {paths!r}")
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise SpecError(f"{kind} file(s) not found: {missing[:3]}")
    return files
