"""The REST app (Starlette): TF Serving's HTTP API over a PredictionService.

Routing, body limits, admission control, JSON in and out, errors as
``{"error": message}`` with the canonical HTTP status, and metrics. Model work
runs in worker threads so the event loop keeps accepting requests.

Every POST outside the metrics path (the inference verbs, and the malformed
requests TF Serving answers 400) is served straight from the ASGI messages,
without Starlette's request, routing and exception layers: they cost about as
much event-loop time per request as the rest of the server, and a batch-1
request is nothing but that overhead. Both paths run the same
:func:`create_app` ``answer`` function, so they answer identically.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import threading
import time
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving import codec, urls
from serving.batching import BatchingOptions
from serving.errors import (
    HTTP_STATUS,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    PayloadTooLarge,
    ServingError,
    quoted,
)
from serving.limits import DEFAULT_MAX_FILL_ELEMENTS, ConcurrencyLimiter
from serving.manager import ModelManager
from serving.metrics import CONTENT_TYPE, ServingMetrics
from serving.rest import RestApi
from serving.service import PredictionService

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_REQUESTS = 64
DEFAULT_WORKER_THREADS = 40
METRICS_PATH = "/monitoring/prometheus/metrics"


def create_app(manager: ModelManager, *, batching: BatchingOptions | None = None,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
               metrics: ServingMetrics | None = None, worker_threads: int = 0,
               timeout_ms: int = 0, metrics_path: str = METRICS_PATH, method_name_check: bool = False,
               max_fill_elements: int = DEFAULT_MAX_FILL_ELEMENTS) -> Starlette:
    """Build the app. Its lifespan starts the manager (loading models) and stops it on shutdown.

    ``worker_threads`` > 0 sizes the thread pool that runs the models (default 40).
    ``timeout_ms`` > 0 answers an inference request that takes longer 504 (``--rest_api_timeout_in_ms``);
    the model call itself cannot be interrupted and finishes in its thread.
    ``method_name_check``: ``--enable_signature_method_name_check``, ``max_fill_elements``:
    ``--max_fill_elements`` (see :class:`PredictionService`).
    """
    metrics = metrics or ServingMetrics()
    manager.add_listener(metrics.on_model_event)
    service = PredictionService(manager, batching=batching, metrics=metrics, method_name_check=method_name_check,
                                max_fill_elements=max_fill_elements)
    rest = RestApi(service)
    limiter = ConcurrencyLimiter(max_concurrent_requests)
    workers = _Workers(worker_threads if worker_threads > 0 else DEFAULT_WORKER_THREADS)

    async def answer(method: str, raw_path: bytes | str, shown_path: str, headers: dict[str, str],
                     body: AsyncIterator[bytes]) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one request on a model path: the whole REST API but metrics."""
        started = time.perf_counter()
        api, model = "unknown", "-"
        try:
            path = urls.parse_model_path(raw_path, method)
            api = path.endpoint
            # Unknown names never become metric labels (unbounded cardinality).
            model = path.name if path.name in manager.model_names() else "-"
            result = await _dispatch(method, shown_path, headers, body, path)
            status, content = 200, result if isinstance(result, bytes) else codec.dumps(result)
        except ClientDisconnect:  # the client left mid-body (or its body timed out): nobody to answer, no fault
            logger.debug("client disconnected during %s %s", method, shown_path)
            status, content = HTTP_STATUS["CANCELLED"], b""
        except ServingError as e:
            status, content = e.http_status, _error_body(e)
        except Exception as e:
            logger.exception("internal error on %s %s", method, shown_path)
            error = Internal(f"internal error: {type(e).__name__}: {e}")
            status, content = error.http_status, _error_body(error)
        metrics.observe_request(model, api, status, time.perf_counter() - started)
        return status, content

    async def models_endpoint(request: Request) -> Response:
        status, content = await answer(request.method, request.scope.get("raw_path") or request.url.path,
                                       request.url.path, request.headers, request.stream())
        return Response(content, status_code=status, media_type="application/json")

    async def _dispatch(method: str, shown_path: str, headers, body: AsyncIterator[bytes],
                        path: urls.ModelPath) -> Any:
        if path.endpoint in (urls.STATUS, urls.METADATA):
            if method != "GET":
                raise urls.malformed(method, shown_path)
            return rest.status(path) if path.endpoint == urls.STATUS else rest.metadata(path)
        if path.endpoint not in urls.INFERENCE_VERBS or method != "POST":
            raise urls.malformed(method, shown_path)
        raw = await read_body(headers.get("content-length"), body, max_request_bytes)
        encoding = headers.get("content-encoding", "")
        operation = getattr(rest, path.endpoint)
        with limiter.slot():
            # Decoding, the model call and encoding all run in one worker thread: a large body
            # never blocks the event loop. A plain executor hop costs less than anyio's to_thread.
            call = asyncio.get_running_loop().run_in_executor(workers.get(), _handle, operation, path, raw,
                                                              encoding, max_request_bytes)
            if timeout_ms <= 0:
                return await call
            try:  # on timeout the call is abandoned: it finishes in its thread, its answer dropped
                return await asyncio.wait_for(call, timeout_ms / 1000.0)
            except asyncio.TimeoutError:
                raise DeadlineExceeded("Deadline exceeded: the request took longer than "
                                       f"--rest_api_timeout_in_ms={timeout_ms}") from None

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        # Any other path or method: TF Serving's 400 "Malformed request".
        return error_response(urls.malformed(request.method, request.url.path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await anyio.to_thread.run_sync(manager.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.close)
            await anyio.to_thread.run_sync(manager.stop)
            workers.shutdown()

    app = _RestApp(
        answer, metrics_path,
        routes=[
            Route(metrics_path, metrics_endpoint, methods=["GET"]),
            Route("/{rest:path}", models_endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.service = service
    app.state.rest = rest
    app.state.limiter = limiter
    app.state.metrics = metrics
    return app


class _Workers:
    """The REST API's model threads: created on first use, shut down with the app (and made again if restarted)."""

    def __init__(self, size: int):
        self._size = size
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._size, thread_name_prefix="rest")
                pool = self._pool
        return pool

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)  # abandoned (timed-out) calls finish on their own


class _RestApp(Starlette):
    """Starlette, with POSTs outside ``metrics_path`` answered by ``answer`` straight from the ASGI messages."""

    def __init__(self, answer, metrics_path: str, **kwargs):
        super().__init__(**kwargs)
        self._answer = answer
        self._metrics_path = metrics_path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] == self._metrics_path:
            await super().__call__(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, content = await self._answer("POST", scope.get("raw_path") or scope["path"], scope["path"], headers,
                                             _body_chunks(receive))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": content})


async def _body_chunks(receive) -> AsyncIterator[bytes]:
    """The request body as ASGI delivers it (Starlette's ``request.stream()`` without the Request)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_body(declared: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The raw request body, refused (413) as soon as more than ``limit`` bytes arrive.

    ``declared``: the Content-Length header (refused before reading when it is over the limit).
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes is over the {limit}-byte limit "
                              f"(--max_request_bytes)")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit (--max_request_bytes)")
        parts.append(chunk)
    return b"".join(parts)


def _handle(operation, path: urls.ModelPath, raw: bytes, encoding: str, limit: int) -> bytes:
    return codec.dumps(operation(path, parse_json_body(raw, encoding, limit)))


def parse_json_body(raw: bytes, encoding: str = "", limit: int = DEFAULT_MAX_REQUEST_BYTES) -> Any:
    """A request body as JSON: gzip/deflate bodies inflated (at most ``limit`` bytes), NaN and Infinity accepted.

    orjson parses it in one pass; the standard library parser is the fallback for
    what orjson refuses and TF Serving (rapidjson with kParseNanAndInfFlag) accepts:
    NaN/Infinity literals and integers beyond 64 bits.
    """
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as e:
            raise InvalidArgument(f"request body is not valid {encoding} data: {e}") from None
        if len(raw) > limit:
            raise PayloadTooLarge(f"inflated request body is over the {limit}-byte limit (--max_request_bytes)")
    elif encoding not in ("", "identity"):
        raise InvalidArgument(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    if not raw.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("JSON Parse error: the request body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"JSON Parse error: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: the document is nested too deeply") from None
    if "\\u" in text and _has_lone_surrogate(value):
        # rapidjson's words; Python's parser takes "\ud800" alone, orjson and TF Serving do not.
        raise InvalidArgument("JSON Parse error: The surrogate pair in string is invalid.")
    return value


# The fallback parser's numbers, held to rapidjson's rules (TF Serving): a number a double cannot hold is
# an error (orjson refuses it too), and so is an integer too long for Python's int() (4,300 digits).
_MAX_INT_DIGITS = 4300


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise InvalidArgument(f"JSON Parse error: Number too big to be stored in double (an integer of {len(text)} "
                              "digits)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidArgument(f"JSON Parse error: Number too big to be stored in double ({quoted(text, 40)})")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:  # iterative: the document may be nested as deep as the parser allowed
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return False


def error_response(error: ServingError) -> Response:
    return Response(_error_body(error), status_code=error.http_status, media_type="application/json")


def _error_body(error: ServingError) -> bytes:
    return codec.dumps({"error": error.message})
