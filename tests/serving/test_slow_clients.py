"""Slow and hostile clients (issue 34): read timeouts, header caps, the connection cap, the gRPC in-flight limit.

The protocol limits run against an in-process uvicorn server (a trivial ASGI app) under both parsers;
one real ``python -m serving`` process checks that the flags reach REST and gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.connections import ConnectionLimits, HeaderCounter, RateLimitedLog, automatic_max_connections
from serving.errors import InvalidArgument
from serving.grpc_server import start_grpc_server
from serving.net import http_protocol, listen_socket
from tests.serving.conftest import server_process

HALF_PLUS_TWO = "tests/serving/testdata/tf_serving/saved_model_half_plus_two_cpu"


async def echo_app(scope, receive, send):
    """Reads the whole body, answers its length."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class InProcessServer:
    """uvicorn with ``http_protocol(parser, limits)`` on a thread; ``port`` once started."""

    def __init__(self, parser: str, limits: ConnectionLimits):
        self.sock = listen_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(echo_app, http=http_protocol(parser, limits), lifespan="off",
                                                    log_level="warning", timeout_keep_alive=30))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the in-process server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        # force_exit: do not wait for the connections a test left open; a server still running into the next
        # test would log there (its rate-limited summaries fire from its own event loop).
        self.server.should_exit = self.server.force_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the in-process server did not stop"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


def read_until_closed(conn: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    conn.close()
    return out


def read_response(conn: socket.socket) -> bytes:
    """One response on a keep-alive connection: its head, then content-length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def good_request(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        return read_until_closed(conn)


LIMITS = ConnectionLimits(header_timeout_s=0.5, body_timeout_s=0.5, max_header_bytes=4096, max_header_count=20,
                          max_connections=8)


@pytest.fixture(params=["httptools", "h11"], scope="module")
def server(request):
    with InProcessServer(request.param, LIMITS) as running:
        yield running


def test_header_counter_finds_the_end_across_reads():
    head = HeaderCounter()
    request = b"GET / HTTP/1.1\r\nA: b\r\nC: d\r\n\r\nbody"
    assert head.feed(request[:29]) == -1  # ends inside the blank line: "C: d\r\n\r"
    assert (head.header_lines, head.complete) == (2, False)
    assert head.feed(request[29:]) == 1  # past the blank line's "\n"; the body is not counted
    assert (head.size, head.header_lines, head.complete) == (len(request) - 4, 2, True)


def test_automatic_connection_cap_leaves_room_under_the_descriptor_limit():
    # (20000 - 2500) / 2 and (1024 - 256) / 2: an eighth (at least 256) kept for the process.
    assert automatic_max_connections(20000) == 8750
    assert automatic_max_connections(1024) == 384
    assert ConnectionLimits(max_connections=-1).connection_cap() is None
    with pytest.raises(ValueError, match="max_header_count must be >= 0"):
        ConnectionLimits(max_header_count=-1)


def test_rate_limited_log_says_once_then_counts(caplog):
    now = [0.0]
    log = RateLimitedLog("refused", interval_s=10, log=logging.getLogger("t"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(1000):
            log.event()
        now[0] = 10.0
        log.event()
    assert [r.getMessage() for r in caplog.records] == ["refused", "refused (999 more in the last 10 s)", "refused"]
    assert log.total == 1001


def test_half_sent_headers_get_408_within_the_timeout(server):
    conn = server.connect()
    start = time.monotonic()
    conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # no blank line: the headers never end
    answer = read_until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"did not arrive within 0.5 s" in answer
    assert 0.4 < time.monotonic() - start < 2.0


def test_silent_connection_is_closed_without_an_answer(server):
    conn = server.connect()
    start = time.monotonic()
    assert read_until_closed(conn) == b""
    assert 0.4 < time.monotonic() - start < 2.0


def test_stalled_body_gets_408(server):
    conn = server.connect()
    conn.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npart")
    start = time.monotonic()
    answer = read_until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert b"body stalled for 0.5 s" in answer
    assert 0.4 < time.monotonic() - start < 2.0


def test_body_sent_in_slow_chunks_within_the_gap_is_served(server):
    conn = server.connect()
    conn.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nConnection: close\r\n\r\nab")
    for part in (b"cd", b"ef"):  # 0.8 s in total, each gap under the 0.5 s body timeout
        time.sleep(0.3)
        conn.sendall(part)
    assert read_until_closed(conn).endswith(b"\r\n\r\n6")


@pytest.mark.parametrize("head, limit", [
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", b"4096 bytes (--max_header_bytes)"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10_000 + b"\r\n", b"20 headers (--max_header_count)"),
], ids=["100KB-header", "10000-headers"])
def test_huge_or_many_headers_get_431_and_others_are_served(server, head, limit):
    conn = server.connect()
    start = time.monotonic()
    try:
        conn.sendall(head)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before all of it was sent
    answer = read_until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), answer[:200]
    assert limit in answer
    assert time.monotonic() - start < 1.0
    assert good_request(server.port).endswith(b"\r\n\r\n5")


def test_keep_alive_connection_serves_several_requests(server):
    conn = server.connect()
    for _ in range(3):
        conn.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        assert read_response(conn).endswith(b"\r\n\r\n2")
    conn.close()


def test_connection_cap_refuses_the_next_connection_and_logs_once():
    # Its own server: the cap counts every open connection of the server.
    with InProcessServer("httptools", LIMITS) as running:
        held = [running.connect() for _ in range(LIMITS.max_connections)]
        time.sleep(0.1)
        extra = [running.connect() for _ in range(3)]
        start = time.monotonic()
        for conn in extra:
            assert read_until_closed(conn) == b""
        assert time.monotonic() - start < 0.3  # closed at accept, not at the header timeout
        held[0].sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
        assert read_response(held[0]).endswith(b"\r\n\r\n1")  # the held connections still work
        for conn in held:
            conn.close()


def test_cap_log_line_is_written_once(caplog):
    with caplog.at_level(logging.WARNING, logger="serving.connections"):
        with InProcessServer("httptools", LIMITS) as running:
            held = [running.connect() for _ in range(LIMITS.max_connections)]
            time.sleep(0.1)
            for _ in range(5):
                assert read_until_closed(running.connect()) == b""
            for conn in held:
                conn.close()
    refused = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
    assert refused == ["REST: refused a connection: 8 connections are open (--max_connections)"]


class BlockingService:
    """Enough of PredictionService for Predict: each call waits for ``release``, then fails as a client error."""

    max_fill_elements = 0

    def __init__(self):
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def predict(self, *args, **kwargs):
        self.entered.release()
        self.release.wait(10)
        raise InvalidArgument("released")


def _predict_request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    return request


def test_grpc_calls_beyond_the_in_flight_limit_get_resource_exhausted():
    service = BlockingService()
    server, port, _ = start_grpc_server(None, service, "127.0.0.1", 0, max_workers=4, max_concurrent_rpcs=2,
                                        enable_profiler=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            running = [stub.Predict.future(_predict_request(), timeout=10) for _ in range(2)]
            for _ in running:
                assert service.entered.acquire(timeout=5)
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                stub.Predict(_predict_request(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - start < 1.0
            service.release.set()
            for call in running:
                assert call.exception().code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as after:  # a free slot again
                stub.Predict(_predict_request(), timeout=5)
            assert after.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        service.release.set()
        server.stop(0).wait()


def _closed_after(host: str, port: int, payload: bytes = b"") -> float:
    conn = socket.create_connection((host, port), timeout=10)
    start = time.monotonic()
    conn.sendall(payload)
    read_until_closed(conn)
    return time.monotonic() - start


def test_server_flags_reach_rest_and_grpc():
    flags = ["--model_name=half_plus_two", f"--model_base_path={HALF_PLUS_TWO}", "--port=0", "--rest_api_port=0",
             "--enable_model_warmup=false", "--request_header_timeout_seconds=1", "--max_header_bytes=2048",
             "--max_connections=50"]
    with server_process(flags) as server:
        rest_host, rest_port = server.rest_url[len("http://"):].rsplit(":", 1)
        grpc_host, grpc_port = server.grpc_target.rsplit(":", 1)
        silent = [socket.create_connection((rest_host, int(rest_port))) for _ in range(20)]
        # A good client meanwhile, over REST and gRPC.
        with socket.create_connection((rest_host, int(rest_port)), timeout=5) as conn:
            conn.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n"
                         b"Connection: close\r\n\r\n{\"instances\": [1.0]}")
            assert read_until_closed(conn).endswith(b'{"predictions":[2.5]}')
        with grpc.insecure_channel(server.grpc_target) as channel:
            request = _predict_request()
            request.model_spec.name = "half_plus_two"
            answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=5)
            assert list(answer.outputs["y"].float_val) == [2.5]
        for conn in silent:
            assert read_until_closed(conn) == b""
        # gRPC: a connection that never finishes the HTTP/2 handshake (grpc.server_handshake_timeout_ms).
        assert 0.8 < _closed_after(grpc_host, int(grpc_port)) < 3.0
        with socket.create_connection((rest_host, int(rest_port)), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 3000 + b"\r\n\r\n")
            assert b"2048 bytes (--max_header_bytes)" in read_until_closed(conn)
        server.wait_for(r"closed a connection whose request headers were not complete after 1 s", 5)
        assert server.log.count("request headers were not complete") <= 2  # 20 closed, one line (+ a summary)


def test_flags_default_to_connection_limits_and_refuse_bad_values():
    from serving.cli import connection_limits, parse_args

    assert connection_limits(parse_args([])) == ConnectionLimits()
    assert connection_limits(parse_args(["--max_header_bytes=0", "--max_connections=-1"])).connection_cap() is None
    with pytest.raises(ValueError, match=r"--max_header_count must be >= 0 \(0 is unlimited\), got -5"):
        connection_limits(parse_args(["--max_header_count=-5"]))
    with pytest.raises(ValueError, match="--max_connections must be >= -1"):
        connection_limits(parse_args(["--max_connections=-2"]))


def test_idle_keep_alive_connection_is_closed_at_the_header_timeout_without_a_log_line(caplog):
    with caplog.at_level(logging.WARNING, logger="serving.connections"):
        with InProcessServer("httptools", LIMITS) as running:
            conn = running.connect()
            conn.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            assert read_response(conn).endswith(b"\r\n\r\n2")
            start = time.monotonic()
            assert read_until_closed(conn) == b""  # the 0.5 s header timeout, shorter than the keep-alive's 30 s
            assert 0.4 < time.monotonic() - start < 2.0
    assert not [r for r in caplog.records if "headers were not complete" in r.getMessage()]
