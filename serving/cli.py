"""``python -m serving`` (``tfmtl-serving``): a drop-in for tensorflow_model_server (REST and gRPC).

Flags share TF Serving's names where TF Serving has them::

    python -m serving --model_name=census --model_base_path=/models/census
    python -m serving --model_config_file=serving/models.config --rest_api_port=8501
    python -m serving --model_name=census --model_base_path=base/census \\
        --enable_batching --batching_parameters_file=batching.config
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence

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
    models.add_argument("--monitoring_config_file", default="",
                        help="text-format MonitoringConfig; prometheus_config { enable: true path: ... } serves "
                             "metrics under TF Serving's names at that path")
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
                      help="in-flight inference requests before answering 429; 0 is unlimited "
                           "(default: %(default)s)")
    rest.add_argument("--max_request_bytes", type=int, default=32 * 1024 * 1024,
                      help="largest accepted request body, larger ones get 413 (default: %(default)s)")
    rest.add_argument("--graceful_shutdown_seconds", type=float, default=30.0,
                      help="on SIGTERM/SIGINT, wait this long for in-flight requests (default: %(default)s)")
    rest.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


# absl flags that tune TF Serving's C++ runtime: accepted (launch scripts pass them), not used.
_ACCEPTED_TUNING_FLAGS = (
    "tensorflow_session_parallelism", "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism",
    "per_process_gpu_memory_fraction", "grpc_channel_arguments", "grpc_max_threads", "num_load_threads",
    "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros", "thread_pool_factory_config_file",
    "grpc_socket_path", "mixed_precision",
)
_ACCEPTED_BOOL_FLAGS = (
    "allow_version_labels_for_unavailable_models", "flush_filesystem_caches", "xla_cpu_compilation_enabled",
    "enable_signature_method_name_check", "remove_unused_fields_from_bundle_metagraph", "skip_initialize_tpu",
    "rest_api_enable_cors_support", "use_tflite_model", "prefer_tflite_model", "enable_profiler",
)


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
    from serving.servable import Servable

    if args.model_config_file and args.model_base_path:
        raise config_lib.ConfigError("give either --model_config_file or --model_base_path, not both")
    if args.model_config_file:
        server_config = config_lib.load_model_server_config(args.model_config_file)
    elif args.model_base_path:
        server_config = config_lib.single_model_config(args.model_name, args.model_base_path)
    else:
        raise config_lib.ConfigError("nothing to serve: give --model_base_path or --model_config_file")
    batching = load_batching_parameters(args.batching_parameters_file) if args.enable_batching else None
    if args.batching_parameters_file and not args.enable_batching:
        logger.warning("--batching_parameters_file is ignored without --enable_batching")
    tags = [t.strip() for t in args.saved_model_tags.split(",") if t.strip()]
    manager = ModelManager(server_config, poll_wait_seconds=args.file_system_poll_wait_seconds,
                           enable_warmup=args.enable_model_warmup,
                           loader=functools.partial(Servable.load, tags=tags))
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        manager.watch_config(lambda: config_lib.load_model_server_config(args.model_config_file),
                             args.model_config_file_poll_wait_seconds)
    metrics_path, tf_serving_names = METRICS_PATH, False
    if args.monitoring_config_file:
        metrics_path, tf_serving_names = load_monitoring_config(args.monitoring_config_file)
    return create_app(manager, batching=batching, max_request_bytes=args.max_request_bytes,
                      max_concurrent_requests=args.max_concurrent_requests,
                      worker_threads=args.rest_api_num_threads, timeout_ms=args.rest_api_timeout_in_ms,
                      metrics=ServingMetrics(tf_serving_names=tf_serving_names), metrics_path=metrics_path)


_IMPORT_NOISE = re.compile(r"Unable to register cu(FFT|DNN|BLAS) factory: Attempting to register factory")


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
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not _IMPORT_NOISE.search(line):
                    print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m serving`` (and the ``serving.cli:main`` console script)."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_start_up()

    import uvicorn

    from serving.config import ConfigError
    from serving.net import http_protocol, listen_socket

    try:
        app = build_app(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        sock = listen_socket(args.rest_api_host, args.rest_api_port)
    except OSError as e:
        print(f"error: cannot listen on {args.rest_api_host}:{args.rest_api_port}: {e}", file=sys.stderr)
        return 2
    grpc_server = None
    if args.port >= 0:
        from serving.grpc_server import start_grpc_server

        try:
            grpc_server, grpc_port = start_grpc_server(app.state.manager, app.state.service, args.rest_api_host,
                                                       args.port)
        except OSError as e:
            print(f"error: gRPC: {e}", file=sys.stderr)
            sock.close()
            return 2
        logger.info("gRPC API at %s:%d (PredictionService, ModelService)", args.rest_api_host, grpc_port)
    host, port = sock.getsockname()[:2]
    logger.info("REST API at http://%s:%d/v1/models/... (metrics at /monitoring/prometheus/metrics)",
                host if ":" not in host else f"[{host}]", port)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level=args.log_level.lower(), access_log=False, lifespan="on", http=http_protocol(),
        timeout_graceful_shutdown=args.graceful_shutdown_seconds))
    try:
        server.run(sockets=[sock])
    finally:
        if grpc_server is not None:
            grpc_server.stop(args.graceful_shutdown_seconds).wait()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
