"""``python -m serving`` (``tfmtl-serving``): a drop-in for tensorflow_model_server (REST and gRPC).

Flags share TF Serving's names where TF Serving has them::

    python -m serving --model_name=census --model_base_path=/models/census
    python -m serving --model_config_file=serving/models.config --rest_api_port=8501
    python -m serving --model_name=census --model_base_path=base/census \\
        --enable_batching --batching_parameters_file=batching.config
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence

from serving.connections import ConnectionLimits
from serving.limits import DEFAULT_MAX_FILL_ELEMENTS

logger = logging.getLogger("serving")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve SavedModels over TF Serving's REST and gRPC APIs (status, metadata, predict, classify, "
                    "regress).")
    models = parser.add_argument_group("models (TF Serving flags)")
    models.add_argument("--model_name", default="default",
                        help="name of the model served with --model_base_path (default: %(default)s)")
    models.add_argument("--model_base_path", default="",
                        help="directory holding the model's integer version sub-directories")
    models.add_argument("--model_config_file", default="",
                        help="text-format ModelServerConfig; replaces --model_name/--model_base_path")
    models.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0.0,
                        help="re-read --model_config_file this often; 0 reads it once (default)")
    models.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="poll base paths for new versions this often; <= 0 polls once at start "
                             "(default: %(default)s)")
    models.add_argument("--enable_model_warmup", **_BOOL, default=True,
                        help="replay assets.extra/tf_serving_warmup_requests before serving a version "
                             "(default: %(default)s)")
    models.add_argument("--enable_batching", **_BOOL, default=False, help="batch concurrent requests server-side")
    models.add_argument("--batching_parameters_file", default="",
                        help="text-format BatchingParameters (max_batch_size, batch_timeout_micros, ...)")
    models.add_argument("--saved_model_tags", default="serve",
                        help="comma-separated tags of the MetaGraph to load (default: %(default)s)")
    models.add_argument("--prefer_tflite_model", **_BOOL, default=False,
                        help="serve model.tflite (with tf.lite.Interpreter) from a version directory that has one, "
                             "the SavedModel from one that has not (default: %(default)s)")
    models.add_argument("--num_tflite_pools", type=int, default=0,
                        help="TF Lite interpreters running at once per model version; 0 (default): the schedulable "
                             "CPUs, as TF Serving")
    models.add_argument("--use_tflite_model", **_BOOL, default=False,
                        help="TF Serving's older flag: serve model.tflite only; a version directory without one is "
                             "not loaded (default: %(default)s)")
    models.add_argument("--monitoring_config_file", default="",
                        help="text-format MonitoringConfig; prometheus_config { enable: true path: ... } serves "
                             "metrics under TF Serving's names at that path")
    grpc_group = parser.add_argument_group("gRPC server (TF Serving flags)")
    grpc_group.add_argument("--grpc_socket_path", default="",
                            help="also serve the gRPC API on this Unix domain socket")
    grpc_group.add_argument("--grpc_channel_arguments", default="",
                            help="comma-separated key=value grpc server arguments, e.g. "
                                 "grpc.max_connection_age_ms=2000 (integers are passed as integers)")
    grpc_group.add_argument("--grpc_max_threads", type=int, default=0,
                            help="threads running gRPC calls; 0 keeps the default (16)")
    grpc_group.add_argument("--enable_serialization_as_tensor_content", **_BOOL, default=False,
                            help="write Predict outputs into tensor_content instead of the typed value fields "
                                 "(float_val, ...) (default: %(default)s, as TF Serving)")
    models.add_argument("--enable_signature_method_name_check", **_BOOL, default=False,
                        help="refuse a signature whose method_name is not the API's (classify, regress, predict); "
                             "off by default, as TF Serving, so TF2 SavedModels answer Classify and Regress")
    grpc_group.add_argument("--enable_profiler", **_BOOL, default=True,
                            help="serve TensorFlow's profiler service (TensorBoard's capture profile) on the gRPC "
                                 "port (default: %(default)s, as TF Serving)")
    parser.add_argument("--version", action="store_true", help="print the server's and TensorFlow's versions, exit")
    tf_serving = parser.add_argument_group(
        "other tensorflow_model_server flags (accepted so launch scripts run; tuning of TF Serving's C++ "
        "runtime with no effect here)")
    models.add_argument("--port", type=int, default=8500,
                        help="gRPC port (PredictionService, ModelService); 0 picks a free port, -1 opens none "
                             "(default: %(default)s)")
    for flag in _ACCEPTED_TUNING_FLAGS:
        tf_serving.add_argument(f"--{flag}", default=None, help=argparse.SUPPRESS)
    for flag in _ACCEPTED_BOOL_FLAGS:
        tf_serving.add_argument(f"--{flag}", **_BOOL, default=None, help=argparse.SUPPRESS)
    for flag in _REFUSED_FLAGS:
        tf_serving.add_argument(f"--{flag}", **(_BOOL if flag != "ssl_config_file" else {}), default=None,
                                help=argparse.SUPPRESS)
    rest = parser.add_argument_group("REST server")
    rest.add_argument("--rest_api_port", type=int, default=8501,
                      help="port to listen on; 0 picks a free port (default: %(default)s)")
    rest.add_argument("--rest_api_host", default="127.0.0.1",
                      help="address to bind; use 0.0.0.0 to accept remote clients (default: %(default)s)")
    rest.add_argument("--rest_api_num_threads", type=int, default=0,
                      help="worker threads running models; 0 keeps the default (40)")
    rest.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                      help="answer an inference request still running after this long with 504; <= 0 waits "
                           "forever (default: %(default)s, as TF Serving)")
    rest.add_argument("--max_concurrent_requests", type=int, default=64,
                      help="in-flight requests per transport: REST inference requests beyond it get 429, gRPC "
                           "calls RESOURCE_EXHAUSTED; 0 is unlimited (default: %(default)s)")
    rest.add_argument("--max_fill_elements", type=int, default=DEFAULT_MAX_FILL_ELEMENTS,
                      help="gRPC: the most tensor elements one request may declare beyond the values it carries "
                           "(TensorFlow's fill rule repeats the last value), summed over its inputs; larger "
                           "requests get INVALID_ARGUMENT before anything is allocated; 0 is unlimited, as in TF "
                           "Serving (default: %(default)s)")
    rest.add_argument("--max_request_bytes", type=int, default=32 * 1024 * 1024,
                      help="largest accepted request body, larger ones get 413 (default: %(default)s)")
    rest.add_argument("--graceful_shutdown_seconds", type=float, default=30.0,
                      help="on SIGTERM/SIGINT, wait this long for in-flight requests (default: %(default)s)")
    rest.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    slow = parser.add_argument_group("slow clients and connections (docs/serving.md)")
    slow.add_argument("--request_header_timeout_seconds", type=float, default=_LIMITS.header_timeout_s,
                      help="REST: close a connection whose request headers are not complete this long after the "
                           "accept or the previous response (408 once part of a request came); gRPC: the HTTP/2 "
                           "handshake; <= 0 waits forever (default: %(default)s)")
    slow.add_argument("--request_body_timeout_seconds", type=float, default=_LIMITS.body_timeout_s,
                      help="REST: answer 408 and close when a request body stalls this long between two chunks; "
                           "<= 0 waits forever (default: %(default)s)")
    slow.add_argument("--max_header_bytes", type=int, default=_LIMITS.max_header_bytes,
                      help="REST: the request line and headers, larger ones get 431; 0 is unlimited "
                           "(default: %(default)s)")
    slow.add_argument("--max_header_count", type=int, default=_LIMITS.max_header_count,
                      help="REST: headers per request, more get 431; 0 is unlimited (default: %(default)s)")
    slow.add_argument("--max_connections", type=int, default=_LIMITS.max_connections,
                      help="open connections per transport (REST, gRPC); new ones beyond are closed at once; 0 "
                           "(default): half of what RLIMIT_NOFILE leaves after an eighth for the process; -1 is "
                           "unlimited")
    return parser


_LIMITS = ConnectionLimits()  # the defaults of the slow-client flags


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    """The slow-client limits the flags give. Raises ValueError naming a flag out of range."""
    for flag in ("max_header_bytes", "max_header_count"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag} must be >= 0 (0 is unlimited), got {getattr(args, flag)}")
    if args.max_connections < -1:
        raise ValueError(f"--max_connections must be >= -1 (0 is automatic, -1 unlimited), "
                         f"got {args.max_connections}")
    return ConnectionLimits(header_timeout_s=args.request_header_timeout_seconds,
                            body_timeout_s=args.request_body_timeout_seconds,
                            max_header_bytes=args.max_header_bytes, max_header_count=args.max_header_count,
                            max_connections=args.max_connections)


# absl flags that tune TF Serving's C++ runtime: accepted (launch scripts pass them), not used.
_ACCEPTED_TUNING_FLAGS = (
    "tensorflow_session_parallelism", "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism",
    "per_process_gpu_memory_fraction", "num_load_threads", "num_unload_threads", "max_num_load_retries",
    "load_retry_interval_micros", "thread_pool_factory_config_file", "mixed_precision",
    "num_request_iterations_for_warmup", "platform_config_file", "tensorflow_session_config_file",
    "num_tflite_interpreters_per_pool",
)
_ACCEPTED_BOOL_FLAGS = (
    "allow_version_labels_for_unavailable_models", "flush_filesystem_caches", "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled", "remove_unused_fields_from_bundle_metagraph", "skip_initialize_tpu",
    "rest_api_enable_cors_support",
    "enable_per_model_batching_parameters",
)
# TF Serving flags whose feature this server lacks and that a client would notice: refused when set, naming
# the flag, instead of serving without TLS or without the health service the operator asked for.
_REFUSED_FLAGS = {
    "ssl_config_file": "TLS is not supported; terminate TLS in front of the server (a proxy or a service mesh)",
    "use_alts_credentials": "ALTS is not supported",
    "enable_grpc_healthcheck_service": "the grpc.health.v1 service is not served; probe GetModelStatus or "
                                       "GET /v1/models/<name> instead",
}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# absl's boolean syntax: --flag, --flag=true/false (and --noflag, rewritten in _absl_argv).
_BOOL = {"type": _bool, "nargs": "?", "const": True, "metavar": "BOOL"}


def _absl_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Rewrite absl's ``--noflag`` for boolean flags to ``--flag=false``; argparse does the rest."""
    bools = {a.dest for a in parser._actions if a.type is _bool}
    out = []
    for arg in argv:
        name = arg[4:].split("=", 1)[0] if arg.startswith("--no") else ""
        out.append(f"--{name}=false" if name in bools and "=" not in arg else arg)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse tensorflow_model_server-style flags; an unknown flag exits 2 naming it."""
    parser = build_parser()
    return parser.parse_args(_absl_argv(parser, sys.argv[1:] if argv is None else argv))


def build_app(args: argparse.Namespace):
    """The app (and its manager) the flags describe. Raises ConfigError on a bad configuration."""
    from serving import config as config_lib
    from serving.app import METRICS_PATH, create_app
    from serving.batching import load_batching_parameters
    from serving.manager import ModelManager
    from serving.metrics import ServingMetrics, load_monitoring_config
    from serving.servable import TFLITE_OFF, TFLITE_ONLY, TFLITE_PREFER

    for flag, reason in _REFUSED_FLAGS.items():
        if getattr(args, flag):
            raise config_lib.ConfigError(f"--{flag}: {reason}")
    # TF Serving's checks and words (server.cc, Server::BuildAndStart).
    if not args.model_config_file and not args.model_base_path:
        raise config_lib.ConfigError("Both server_options.model_base_path and server_options.model_config_file are "
                                     "empty! (give --model_base_path or --model_config_file)")
    if args.num_tflite_pools < 0:
        raise config_lib.ConfigError(f"--num_tflite_pools must be >= 0, got {args.num_tflite_pools}")
    if args.batching_parameters_file and not args.enable_batching:
        raise config_lib.ConfigError("server_options.batching_parameters_file is set without setting "
                                     "server_options.enable_batching to true.")
    if args.model_config_file:
        if args.model_base_path:  # as TF Serving: the config file wins
            logger.warning("--model_base_path is ignored: --model_config_file is given")
        server_config = config_lib.load_model_server_config(args.model_config_file)
    else:
        server_config = config_lib.single_model_config(args.model_name, args.model_base_path)
    batching = load_batching_parameters(args.batching_parameters_file) if args.enable_batching else None
    tags = [t.strip() for t in args.saved_model_tags.split(",") if t.strip()]
    tflite = TFLITE_ONLY if args.use_tflite_model else TFLITE_PREFER if args.prefer_tflite_model else TFLITE_OFF
    manager = ModelManager(server_config, poll_wait_seconds=args.file_system_poll_wait_seconds,
                           enable_warmup=args.enable_model_warmup,
                           tflite=tflite, tags=tags, tflite_pool_size=args.num_tflite_pools or None)
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        manager.watch_config(lambda: config_lib.load_model_server_config(args.model_config_file),
                             args.model_config_file_poll_wait_seconds)
    metrics_path, tf_serving_names = METRICS_PATH, False
    if args.monitoring_config_file:
        metrics_path, tf_serving_names = load_monitoring_config(args.monitoring_config_file)
    return create_app(manager, batching=batching, max_request_bytes=args.max_request_bytes,
                      max_concurrent_requests=args.max_concurrent_requests,
                      worker_threads=args.rest_api_num_threads, timeout_ms=args.rest_api_timeout_in_ms,
                      metrics=ServingMetrics(tf_serving_names=tf_serving_names), metrics_path=metrics_path,
                      method_name_check=args.enable_signature_method_name_check,
                      max_fill_elements=args.max_fill_elements)


_IMPORT_NOISE = re.compile(r"Unable to register cu(FFT|DNN|BLAS) factory: Attempting to register factory")
# TensorFlow >= 2.20 logs through absl before its own log level applies: these INFO/WARNING lines ignore
# TF_CPP_MIN_LOG_LEVEL, and without a GPU driver the device probe logs "failed call to cuInit" as an ERROR.
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_SEVERITY = re.compile(r"^([IWEF])\d{4} ")
_NO_DRIVER, _NO_DRIVER_PROBE = "Could not find cuda drivers on your machine", "failed call to cuInit"


def _start_up_lines_to_show(lines: list[str]) -> list[str]:
    """The lines of TensorFlow's import and device probe that the user's TF_CPP_MIN_LOG_LEVEL lets through.

    TF 2.16's bogus CUDA factory errors go; INFO (level >= 1) and WARNING (>= 2) lines go, and with them
    the cuInit error where TensorFlow itself said that there is no driver (no GPU was expected).
    """
    chosen = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    level = int(chosen) if chosen.isdigit() else 0
    hidden = {"I"} if level == 1 else {"I", "W"} if level >= 2 else set()
    no_driver = bool(hidden) and any(_NO_DRIVER in line for line in lines)
    shown = []
    for line in lines:
        severity = _ABSL_SEVERITY.match(line)
        if (_IMPORT_NOISE.search(line) or (severity and severity.group(1) in hidden)
                or (hidden and line.startswith(_ABSL_BANNER)) or (no_driver and _NO_DRIVER_PROBE in line)):
            continue
        shown.append(line)
    return shown


def _quiet_start_up() -> None:
    """Keep TensorFlow's import-time noise out of the server log; real errors still show.

    Set before TensorFlow is imported: its C++ info/warning lines (CPU feature and CUDA
    probes), its Python logger's deprecation notes, and google.api_core's FutureWarning
    about the Python version, which says nothing about serving.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core\.")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # TF 2.16's import logs three bogus ERROR lines (a CUDA plugin registered twice). Capture
    # stderr for the import only and pass on every other line, so a real import error still shows.
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device probe's lines fall in this window too
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in _start_up_lines_to_show(captured.read().decode("utf-8", "replace").splitlines()):
                print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m serving`` (and the ``serving.cli:main`` console script).

    The start-up order is TF Serving's (server.cc): the models load first, and only once every
    configured model serves a version do the gRPC port (and socket) and then the REST port open, so
    a client that connects the moment a port accepts finds its model.
    """
    args = parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_start_up()

    import uvicorn

    from serving.config import ConfigError
    from serving.errors import ServingError
    from serving.grpc_server import parse_channel_arguments, start_grpc_server
    from serving.net import http_protocol, listen_socket

    try:
        app = build_app(args)
        channel_arguments = parse_channel_arguments(args.grpc_channel_arguments)
        limits = connection_limits(args)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manager = app.state.manager
    # Bind (not listen) first, so a port in use fails at once instead of after the models load.
    try:
        sock = listen_socket(args.rest_api_host, args.rest_api_port)
    except OSError as e:
        print(f"error: cannot listen on {args.rest_api_host}:{args.rest_api_port}: {e}", file=sys.stderr)
        return 2
    try:
        manager.start()  # loads the versions on disk; the lifespan's start is then a no-op
        manager.wait_until_available()
    except ServingError as e:
        print(f"error: {e.message}", file=sys.stderr)
        manager.stop()
        sock.close()
        return 1
    grpc_server = None
    if args.port >= 0 or args.grpc_socket_path:
        try:
            grpc_server, grpc_port, grpc_services = start_grpc_server(
                manager, app.state.service, args.rest_api_host, args.port, socket_path=args.grpc_socket_path,
                max_workers=args.grpc_max_threads or 16, channel_arguments=channel_arguments,
                tensor_content=args.enable_serialization_as_tensor_content, enable_profiler=args.enable_profiler,
                max_concurrent_rpcs=args.max_concurrent_requests, limits=limits)
        except OSError as e:
            print(f"error: gRPC: {e}", file=sys.stderr)
            manager.stop()
            sock.close()
            return 2
        services = ", ".join(grpc_services)
        if args.port >= 0:
            logger.info("gRPC API at %s:%d (%s)", args.rest_api_host, grpc_port, services)
        if args.grpc_socket_path:
            logger.info("gRPC API at unix:%s (%s)", args.grpc_socket_path, services)
    host, port = sock.getsockname()[:2]
    logger.info("REST API at http://%s:%d/v1/models/... (metrics at /monitoring/prometheus/metrics)",
                host if ":" not in host else f"[{host}]", port)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level=args.log_level.lower(), access_log=False, lifespan="on", http=http_protocol(limits=limits),
        h11_max_incomplete_event_size=limits.max_header_bytes or None,
        timeout_graceful_shutdown=args.graceful_shutdown_seconds))
    try:
        server.run(sockets=[sock])
    finally:
        if grpc_server is not None:
            grpc_server.stop(args.graceful_shutdown_seconds).wait()
    return 0 if server.started else 1


def version_text() -> str:
    """``--version``: the server's and TensorFlow's versions, in TF Serving's two lines."""
    from importlib import metadata

    try:
        ours = metadata.version("tfmtl")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    try:
        tf_version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        tf_version = "not installed"
    return f"TensorFlow ModelServer: tfmtl-serving {ours}\nTensorFlow Library: {tf_version}"


if __name__ == "__main__":
    sys.exit(main())
