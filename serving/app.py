"""The REST app (Starlette): TF Serving's HTTP API over a PredictionService.

Routing, body limits, admission control, JSON in and out, errors as
``{"error": message}`` with the canonical HTTP status, and metrics. Model work
runs in worker threads so the event loop keeps accepting requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import zlib
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import codec, urls
from serving.batching import BatchingOptions
from serving.errors import DeadlineExceeded, Internal, InvalidArgument, PayloadTooLarge, ServingError
from serving.limits import ConcurrencyLimiter
from serving.manager import ModelManager
from serving.metrics import CONTENT_TYPE, ServingMetrics
from serving.service import PredictionService

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_REQUESTS = 64
METRICS_PATH = "/monitoring/prometheus/metrics"


def create_app(manager: ModelManager, *, batching: BatchingOptions | None = None,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
               metrics: ServingMetrics | None = None, worker_threads: int = 0,
               timeout_ms: int = 0, metrics_path: str = METRICS_PATH) -> Starlette:
    """Build the app. Its lifespan starts the manager (loading models) and stops it on shutdown.

    ``worker_threads`` > 0 resizes the thread pool that runs the models (anyio's default is 40).
    ``timeout_ms`` > 0 answers an inference request that takes longer 504 (``--rest_api_timeout_in_ms``);
    the model call itself cannot be interrupted and finishes in its thread.
    """
    metrics = metrics or ServingMetrics()
    manager.add_listener(metrics.on_model_event)
    service = PredictionService(manager, batching=batching, metrics=metrics)
    limiter = ConcurrencyLimiter(max_concurrent_requests)

    async def models_endpoint(request: Request) -> Response:
        started = time.perf_counter()
        api, model = "unknown", "-"
        try:
            path = urls.parse_model_path(request.scope.get("raw_path") or request.url.path, request.method)
            api = path.endpoint
            # Unknown names never become metric labels (unbounded cardinality).
            model = path.name if path.name in manager.model_names() else "-"
            result = await _dispatch(request, path)
            response = Response(result, status_code=200, media_type="application/json") \
                if isinstance(result, bytes) else _json_response(result, 200)
        except ServingError as e:
            response = error_response(e)
        except Exception as e:
            logger.exception("internal error on %s %s", request.method, request.url.path)
            response = error_response(Internal(f"internal error: {type(e).__name__}: {e}"))
        metrics.observe_request(model, api, response.status_code, time.perf_counter() - started)
        return response

    async def _dispatch(request: Request, path: urls.ModelPath) -> Any:
        if path.endpoint in (urls.STATUS, urls.METADATA):
            if request.method != "GET":
                raise urls.malformed(request.method, request.url.path)
            return service.status(path) if path.endpoint == urls.STATUS else service.metadata(path)
        if path.endpoint not in urls.INFERENCE_VERBS or request.method != "POST":
            raise urls.malformed(request.method, request.url.path)
        raw = await read_body(request, max_request_bytes)
        encoding = request.headers.get("content-encoding", "")
        operation = getattr(service, path.endpoint)
        with limiter.slot():
            # Decoding, the model call and encoding all run in one worker thread: a large body
            # never blocks the event loop.
            call = anyio.to_thread.run_sync(_handle, operation, path, raw, encoding, max_request_bytes,
                                            abandon_on_cancel=timeout_ms > 0)
            if timeout_ms <= 0:
                return await call
            with anyio.move_on_after(timeout_ms / 1000.0):
                return await call
            raise DeadlineExceeded("Deadline exceeded: the request took longer than --rest_api_timeout_in_ms="
                                   f"{timeout_ms}")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        # Any other path or method: TF Serving's 400 "Malformed request".
        return error_response(urls.malformed(request.method, request.url.path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if worker_threads > 0:
            anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        await anyio.to_thread.run_sync(manager.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.close)
            await anyio.to_thread.run_sync(manager.stop)

    app = Starlette(
        routes=[
            Route(metrics_path, metrics_endpoint, methods=["GET"]),
            Route("/{rest:path}", models_endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.service = service
    app.state.limiter = limiter
    app.state.metrics = metrics
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused (413) as soon as more than ``limit`` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes is over the {limit}-byte limit "
                              f"(--max_request_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit (--max_request_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


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
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"JSON Parse error: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: the document is nested too deeply") from None


def error_response(error: ServingError) -> Response:
    return _json_response({"error": error.message}, error.http_status)


def _json_response(content: Any, status: int, headers: dict | None = None) -> Response:
    return Response(codec.dumps(content), status_code=status, headers=headers, media_type="application/json")
