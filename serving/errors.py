"""Canonical serving errors and their HTTP statuses.

Every failure the server reports is a :class:`ServingError` carrying a canonical
status code (the same names TF Serving and gRPC use) and a message for the
client. The REST layer turns it into ``{"error": message}`` with the matching
HTTP status, so the mapping lives in exactly one place.
"""

from __future__ import annotations

# Canonical code name -> HTTP status, as TF Serving's REST layer maps them.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# Numeric TensorFlow error codes (tf.errors.*.error_code) -> canonical names.
_TF_CODE_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# TF error messages carry whole graph stack traces; clients need the first lines. Every message is cut
# there too: one that quotes a client's megabyte-long name would otherwise pass gRPC's 16 KB metadata
# limit, and the client would see RESOURCE_EXHAUSTED instead of the error.
_MAX_MESSAGE_CHARS = 2000
# How much of one client-sent value (a name, a label, a JSON value) a message quotes.
MAX_QUOTED_CHARS = 200


def quoted(text: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` for an error message: as it is, or its first ``limit`` characters and how many more there were."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _capped(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[:_MAX_MESSAGE_CHARS] + f" ... ({len(message) - _MAX_MESSAGE_CHARS} more characters)"


class ServingError(Exception):
    """An error reported to the client: a canonical ``code`` and a ``message`` (at most ~2,000 characters)."""

    code = "INTERNAL"

    def __init__(self, message: str):
        message = _capped(message)
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class ResourceExhausted(ServingError):
    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(ServingError):
    code = "FAILED_PRECONDITION"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class Unimplemented(ServingError):
    code = "UNIMPLEMENTED"


class DeadlineExceeded(ServingError):
    code = "DEADLINE_EXCEEDED"


class Internal(ServingError):
    code = "INTERNAL"


class PayloadTooLarge(ServingError):
    """The request body is over the configured limit (HTTP 413, no canonical code)."""

    code = "RESOURCE_EXHAUSTED"

    @property
    def http_status(self) -> int:
        return 413


class _Coded(ServingError):
    """A ServingError with a code chosen at run time (from a TensorFlow error)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def tf_code_name(error: Exception) -> str:
    """The canonical code name of a TensorFlow error (``UNKNOWN`` for anything else)."""
    tf_code = getattr(error, "error_code", None)
    return _TF_CODE_NAMES.get(tf_code, "UNKNOWN") if isinstance(tf_code, int) else "UNKNOWN"


def from_tf_error(error: Exception, *, during: str = "running the model") -> ServingError:
    """Map an exception raised while running a SavedModel to a ServingError.

    Argument errors from the graph (a bad shape, an assertion) are the client's
    fault and stay 400; resource and unimplemented errors keep their meaning; a
    NOT_FOUND from inside the graph (a missing file, a missing table) is an
    internal failure of the model, not an unknown model, so it becomes 500.
    """
    if isinstance(error, ServingError):
        return error
    name = tf_code_name(error)
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    text = _capped(text.strip())
    if name in ("INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION"):
        return _Coded(name, text)
    if name in ("RESOURCE_EXHAUSTED", "UNIMPLEMENTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
        return _Coded(name, text)
    return Internal(f"internal error while {during}: {text}")
