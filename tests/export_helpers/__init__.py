"""Calls exported signatures in a separate process that imports TensorFlow alone."""

import os
import pickle
import subprocess
import sys

CALL_SIGNATURES = os.path.join(os.path.dirname(__file__), "call_signatures.py")


def call_in_tensorflow_only_process(base, calls: dict) -> dict:
    """``calls``: ``{export path: {signature: inputs}}``; returns what ``call_signatures.py`` reports."""
    request, result = os.path.join(base, "request.pkl"), os.path.join(base, "result.pkl")
    with open(request, "wb") as f:
        pickle.dump(calls, f)
    subprocess.run([sys.executable, CALL_SIGNATURES, request, result], check=True, cwd=str(base))
    with open(result, "rb") as f:
        return pickle.load(f)
