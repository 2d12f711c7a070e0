"""Command-line runs that show progress on the terminal and keep every library log in a file.

TensorFlow, XLA, Beam and TFX write to the process's file descriptors 1 and 2 from C++, from
Python logging and from worker subprocesses (CUDA plugin probes, Beam worker notices, deprecation
warnings, Keras progress bars). ``capture_output`` points both descriptors at a log file, so all of
that lands there, complete and in order, and hands back a stream to the real terminal for the
lines a person wants to read. Nothing is dropped: on an error the log's last lines are printed
with its path.

Example::

    with capture_output("runs/demo/logs/pipeline.log") as console:
        import tensorflow as tf                   # its C++ start-up lines go to the log
        print("Trainer done", file=console)       # this line goes to the terminal
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

TAIL_LINES = 30


def silence_known_noise() -> None:
    """Warnings that say nothing about the user's run, filtered where Python raises them.

    google.api_core warns on every import under Python 3.10 (TFX 1.16 needs 3.10), and TensorFlow's
    C++ INFO/WARNING lines (oneDNN notices, CPU feature hints) are off unless the user set a level.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core(\.|$)")
    # The same for child processes (Beam's workers), unless the user chose their own filters.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning:google.api_core._python_version_support")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def log_tail(path: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def capture_output(path: str) -> Iterator[TextIO]:
    """Redirect file descriptors 1 and 2 (this process, C++ code and child processes) to ``path``.

    Yields a line-buffered text stream to the original stdout. On an exception the log's tail and
    path go to the original stderr before the exception propagates.

    Args:
        path: the log file; its folder is created, an existing file is appended to.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    # Python's own streams too (they need not be fds 1 and 2: pytest, notebooks); append mode keeps the
    # order of their lines and the descriptor writes.
    sys.stdout = sys.stderr = open(path, "a", buffering=1)
    try:
        yield console
    except BaseException:
        sys.stdout.flush()
        os.write(saved_err, f"--- last lines of {path} ---\n{log_tail(path)}--- full log: {path}\n".encode())
        raise
    finally:
        sys.stdout.close()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        console.close()
