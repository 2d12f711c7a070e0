"""The model URL grammar of TF Serving's REST API.

::

    /v1/models/{name}[/versions/{n} | /labels/{label}]            GET   status
    /v1/models/{name}[/versions/{n} | /labels/{label}]/metadata   GET   metadata
    /v1/models/{name}[/versions/{n} | /labels/{label}]:{verb}     POST  predict, classify, regress

The raw (still percent-encoded) path is parsed segment by segment, so an
encoded separator such as ``%2F`` or a ``..`` segment cannot smuggle a second
path into a name; a decoded name or label that is not a plain identifier is
rejected with 400 before anything looks it up.

As in TF Serving, the fixed words (``v1``, ``models``, ``versions``,
``labels``, ``metadata`` and the verb) match case-insensitively, and a path
or method outside this grammar is 400 ``Malformed request: <METHOD> <path>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from serving.config import is_valid_name
from serving.errors import InvalidArgument

PREFIX = "/v1/models/"
STATUS = "status"
METADATA = "metadata"
INFERENCE_VERBS = ("predict", "classify", "regress")

_VERSION = re.compile(r"^\d{1,18}$")


@dataclass(frozen=True)
class ModelPath:
    """What a model URL addresses; ``endpoint`` is 'status', 'metadata' or the ``:verb``."""

    name: str
    version: int | None = None
    label: str | None = None
    endpoint: str = STATUS


def malformed(method: str, path: str) -> InvalidArgument:
    """TF Serving's answer to a URL or HTTP method outside its grammar."""
    return InvalidArgument(f"Malformed request: {method} {path}")


def parse_model_path(raw_path: bytes | str, method: str = "GET") -> ModelPath:
    """Parse a raw request path; raise InvalidArgument ('Malformed request', or a bad part)."""
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    path = path.split("?", 1)[0]
    if method == "GET" and path.lower() == PREFIX.rstrip("/"):
        # TF Serving's path grammar matches an empty model name; status and metadata then refuse it.
        raise InvalidArgument("Missing model name in request.")
    if not path.lower().startswith(PREFIX):
        raise malformed(method, path)
    rest = path[len(PREFIX):]
    verb = None
    if ":" in rest:
        rest, verb = rest.split(":", 1)
        if not verb or "/" in verb:
            raise malformed(method, path)
        verb = _decode(verb, "method").lower()
    segments = rest.split("/")
    name = _check_name(_decode(segments[0], "model name"), "model name")
    tail = segments[1:]
    version = label = None
    tail = [t.lower() if i % 2 == 0 else t for i, t in enumerate(tail)]  # keywords, not the values
    if len(tail) >= 2 and tail[0] == "versions":
        text = _decode(tail[1], "version")
        if not text.isdigit():
            raise malformed(method, path)
        if not _VERSION.match(text):
            raise InvalidArgument(f"Failed to convert version: {text!r} is too large")
        version = int(text)
        tail = tail[2:]
    elif len(tail) >= 2 and tail[0] == "labels":
        label = _check_name(_decode(tail[1], "label"), "label")
        tail = tail[2:]
    if tail == ["metadata"] and verb is None:
        return ModelPath(name, version, label, METADATA)
    if tail:
        raise malformed(method, path)
    return ModelPath(name, version, label, verb or STATUS)


def _decode(segment: str, what: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument(f"the {what} in the URL is not valid percent-encoded UTF-8") from None


def _check_name(text: str, what: str) -> str:
    if not text:
        raise InvalidArgument(f"the {what} in the URL is empty")
    if not is_valid_name(text):
        raise InvalidArgument(f"{what} {text!r} is invalid: names are letters, digits, '_', '-' and '.', and "
                              f"may not contain separators or be '.' or '..'")
    return text
