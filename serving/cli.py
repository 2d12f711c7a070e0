"""``python -m serving``: a TF Serving-compatible REST model server.

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
import sys
from collections.abc import Sequence

logger = logging.getLogger("serving")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve SavedModels over TF Serving's REST API (status, metadata, predict, classify, regress).")
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
    models.add_argument("--enable_model_warmup", type=_bool, default=True, metavar="BOOL",
                        help="replay assets.extra/tf_serving_warmup_requests before serving a version "
                             "(default: %(default)s)")
    models.add_argument("--enable_batching", action="store_true", help="batch concurrent requests server-side")
    models.add_argument("--batching_parameters_file", default="",
                        help="text-format BatchingParameters (max_batch_size, batch_timeout_micros, ...)")
    rest = parser.add_argument_group("REST server")
    rest.add_argument("--rest_api_port", type=int, default=8501,
                      help="port to listen on; 0 picks a free port (default: %(default)s)")
    rest.add_argument("--rest_api_host", default="127.0.0.1",
                      help="address to bind; use 0.0.0.0 to accept remote clients (default: %(default)s)")
    rest.add_argument("--rest_api_num_threads", type=int, default=0,
                      help="worker threads running models; 0 keeps the default (40)")
    rest.add_argument("--max_concurrent_requests", type=int, default=64,
                      help="in-flight inference requests before answering 429; 0 is unlimited "
                           "(default: %(default)s)")
    rest.add_argument("--max_request_bytes", type=int, default=32 * 1024 * 1024,
                      help="largest accepted request body, larger ones get 413 (default: %(default)s)")
    rest.add_argument("--graceful_shutdown_seconds", type=float, default=30.0,
                      help="on SIGTERM/SIGINT, wait this long for in-flight requests (default: %(default)s)")
    rest.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_app(args: argparse.Namespace):
    """The app (and its manager) the flags describe. Raises ConfigError on a bad configuration."""
    from serving import config as config_lib
    from serving.app import create_app
    from serving.batching import load_batching_parameters
    from serving.manager import ModelManager

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
    manager = ModelManager(server_config, poll_wait_seconds=args.file_system_poll_wait_seconds,
                           enable_warmup=args.enable_model_warmup)
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        manager.watch_config(lambda: config_lib.load_model_server_config(args.model_config_file),
                             args.model_config_file_poll_wait_seconds)
    return create_app(manager, batching=batching, max_request_bytes=args.max_request_bytes,
                      max_concurrent_requests=args.max_concurrent_requests,
                      worker_threads=args.rest_api_num_threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m serving`` (and the ``serving.cli:main`` console script)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import uvicorn

    from serving.config import ConfigError
    from serving.net import listen_socket

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
    host, port = sock.getsockname()[:2]
    logger.info("REST API at http://%s:%d/v1/models/... (metrics at /monitoring/prometheus/metrics)",
                host if ":" not in host else f"[{host}]", port)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level=args.log_level.lower(), access_log=False, lifespan="on",
        timeout_graceful_shutdown=args.graceful_shutdown_seconds))
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
