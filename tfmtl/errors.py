"""Which exceptions are the user's mistakes: the command lines print them as one line and exit 2.

Everything else is a fault of the program: one line, exit 1, the traceback kept in the run's log.
``pipeline`` imports this too, so ``tfmtl train`` and ``python -m pipeline run`` draw the line in one place.
"""

from __future__ import annotations

import json

USAGE_STATUS = 2  # argparse's status for a bad command line
FAULT_STATUS = 1


class UsageError(Exception):
    """A user's mistake found after the command line was parsed (a bad combination of flags, a bad file)."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types raised for bad input: bad paths, unreadable files, bad specs and bad flag values."""
    import pandas as pd

    from tfmtl.features import SpecError
    from tfmtl.training import WarmStartError
    from tfmtl.training.tuning import SearchSpaceError

    return (UsageError, SpecError, WarmStartError, SearchSpaceError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError, pd.errors.EmptyDataError, pd.errors.ParserError, json.JSONDecodeError,
            UnicodeDecodeError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (a file error names its path, a parser error its line)."""
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror or error}: {error.filename}"
    elif isinstance(error, UnicodeDecodeError):
        text = f"not a text file: {error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())
