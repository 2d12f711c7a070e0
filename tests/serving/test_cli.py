"""``python -m serving``: flags, configuration errors, and a real process stopped by SIGTERM."""

import signal

import httpx
import pytest

from serving import cli

from .conftest import install, server_process


def test_flags_default_like_tf_serving():
    args = cli.build_parser().parse_args(["--model_base_path=/m"])
    assert (args.model_name, args.rest_api_port, args.rest_api_host) == ("default", 8501, "127.0.0.1")
    assert (args.file_system_poll_wait_seconds, args.enable_batching, args.enable_model_warmup) == (1.0, False, True)
    args = cli.build_parser().parse_args(["--model_config_file", "c", "--enable_batching",
                                          "--batching_parameters_file=b", "--enable_model_warmup=false"])
    assert (args.model_config_file, args.enable_batching, args.batching_parameters_file) == ("c", True, "b")
    assert args.enable_model_warmup is False


@pytest.mark.parametrize("argv,message", [
    ([], "Both server_options.model_base_path and server_options.model_config_file are empty!"),
    (["--model_base_path=/m", "--batching_parameters_file=/b.config"],
     "server_options.batching_parameters_file is set without setting server_options.enable_batching to true."),
    (["--model_base_path=/m", "--ssl_config_file=/ssl.config"], "--ssl_config_file: TLS is not supported"),
    (["--model_base_path=/m", "--enable_grpc_healthcheck_service"], "--enable_grpc_healthcheck_service: "),
    (["--model_base_path=/m", "--grpc_channel_arguments=grpc.max_connection_age_ms"],
     "'grpc.max_connection_age_ms' is not key=value"),
    (["--model_config_file=/nonexistent/models.config"], "cannot read model config file"),
    (["--model_base_path=/m", "--model_name=a/b"], "name must match"),
    (["--model_base_path=/m", "--enable_batching", "--batching_parameters_file=/nonexistent/b.config"],
     "cannot read batching parameters file"),
])
def test_configuration_errors_exit_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_server_process_serves_and_stops_gracefully_on_sigterm(zoo, tmp_path):
    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    with server_process(["--model_name=single", f"--model_base_path={base}", "--rest_api_port=0", "--port=-1",
                         "--file_system_poll_wait_seconds=0", "--log_level=INFO"]) as server:
        url = server.rest_url
        assert url.startswith("http://127.0.0.1:"), server.log
        response = httpx.post(f"{url}/v1/models/single:predict", json={"instances": [[1.0, 2.0, 3.0]]}, timeout=30)
        assert response.status_code == 200 and response.json() == {"predictions": [4.75]}
        server.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal so the exit status still says SIGTERM.
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    log = server.log
    for step in ("version 1 is AVAILABLE", "Shutting down", "Application shutdown complete", "version 1 unloaded",
                 "Finished server process"):
        assert step in log, log


def test_tf_serving_flag_syntax_and_the_official_images_launch_line():
    args = cli.parse_args(["--port=8500", "--rest_api_port=8501", "--model_name=m", "--model_base_path=/models/m",
                           "--enable_batching=true", "--noenable_model_warmup", "--rest_api_timeout_in_ms=5",
                           "--saved_model_tags=serve,gpu", "--tensorflow_intra_op_parallelism=2",
                           "--allow_version_labels_for_unavailable_models"])
    assert (args.port, args.rest_api_port, args.enable_batching, args.enable_model_warmup) == (8500, 8501, True, False)
    assert (args.rest_api_timeout_in_ms, args.saved_model_tags) == (5, "serve,gpu")
    assert cli.parse_args(["--enable_batching=false"]).enable_batching is False
    assert cli.parse_args(["--enable_batching"]).enable_batching is True


def test_unknown_flag_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.parse_args(["--model_base_path=/m", "--no_such_flag=1"])
    assert info.value.code == 2 and "unrecognized arguments: --no_such_flag=1" in capsys.readouterr().err


def test_monitoring_config(tmp_path):
    from serving.metrics import load_monitoring_config

    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config {\n  enable: true,\n  path: "/metrics"\n}\n')
    assert load_monitoring_config(str(path)) == ("/metrics", True)
    path.write_text("prometheus_config { enable: false }")
    assert load_monitoring_config(str(path)) == ("/monitoring/prometheus/metrics", False)


START_UP_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796641258.525256   25245 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "W0000 00:00:1796641258.6 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use AVX2",
    "E0000 00:00:1796641263.477181   25245 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "E0000 00:00:1796641263.5 some_op.cc:1] a real error",
]


@pytest.mark.parametrize("level, shown", [
    ("2", [START_UP_LINES[4]]),
    ("1", START_UP_LINES[2:3] + START_UP_LINES[4:]),  # WARNING lines stay; the cuInit error has its reason gone
    ("0", START_UP_LINES),
    ("verbose", START_UP_LINES),  # not a level: TensorFlow's default (0), everything shows
])
def test_start_up_lines_follow_tf_cpp_min_log_level(monkeypatch, level, shown):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    assert cli._start_up_lines_to_show(START_UP_LINES) == shown
