"""The real uvicorn server on 127.0.0.1: the client end to end, batching, and a hot swap under traffic."""

import threading
import time

import pytest
import tensorflow as tf

from serving.app import create_app
from serving.batching import BatchingOptions
from serving.client import ServingClient, ServingClientError, b64
from serving.manager import ModelManager

from .conftest import close, example_proto, install, running_server, server_config

ROW = {"occupation": "Sales", "age": 39.0}


@pytest.fixture(scope="module")
def live(zoo, tmp_path_factory):
    """multi (versions 1 and 2, label 'stable' -> 1) and single, served with batching on."""
    root = tmp_path_factory.mktemp("live")
    install(zoo["multi_v1"], str(root / "multi"), 1)
    install(zoo["multi_v2"], str(root / "multi"), 2)
    install(zoo["single"], str(root / "single"), 1)
    config = server_config({"multi": str(root / "multi"), "single": str(root / "single")},
                           {"multi": 'model_version_policy { all {} } version_labels { key: "stable" value: 1 }'})
    batching = BatchingOptions(max_batch_size=16, batch_timeout_micros=50_000, num_batch_threads=1)
    app = create_app(ModelManager(config, poll_wait_seconds=0), batching=batching)
    with running_server(app) as url, ServingClient(url, timeout=30.0) as client:
        yield client, app


def test_client_status_and_metadata(live):
    client, _ = live
    assert client.status("single") == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.status("multi", label="stable")["model_version_status"][0]["version"] == "1"
    metadata = client.metadata("multi", version=1)
    assert metadata["model_spec"]["version"] == "1"
    assert "serving_tf_example" in metadata["metadata"]["signature_def"]["signature_def"]


def test_client_predict_row_columnar_and_b64(live, reference):
    client, _ = live
    expected = reference["multi_v2"].signatures["serving_default"](occupation=tf.constant(["Sales"]),
                                                                    age=tf.constant([39.0]))
    rows = client.predict("multi", [ROW])
    assert close(rows[0]["income_50k"], expected["income_50k"].numpy()[0])
    columns = client.predict("multi", inputs={"occupation": ["Sales"], "age": [39.0]})
    assert close(columns["never_married"], expected["never_married"].numpy())
    examples = client.predict("multi", [b64(example_proto("Sales", 39.0))], signature_name="serving_tf_example")
    assert close(examples[0]["income_50k"], expected["income_50k"].numpy()[0])
    old = client.predict("multi", [ROW], version=1)
    assert not close(old[0]["income_50k"], rows[0]["income_50k"])  # version 1 is a different model


def test_client_classify_and_regress(live):
    client, _ = live
    results = client.classify("multi", [ROW, {"occupation": "Tech", "age": 60.0}], signature_name="classify_income_50k")
    assert [[label for label, _ in row] for row in results] == [["<=50K", ">50K"]] * 2
    assert all(abs(sum(score for _, score in row) - 1.0) < 1e-6 for row in results)
    values = client.regress("multi", [{"age": 39.0}], context={"occupation": "Sales"},
                            signature_name="regress_never_married", label="stable")
    assert len(values) == 1 and 0.0 < values[0] < 1.0


def test_client_raises_the_servers_message(live):
    client, _ = live
    with pytest.raises(ServingClientError) as info:
        client.predict("multi", [{"occupation": "Sales"}])
    assert info.value.status_code == 400 and "missing input(s) ['age']" in info.value.message
    with pytest.raises(ServingClientError, match="HTTP 404") as info:
        client.status("nope")
    assert "model 'nope' not found" in info.value.message
    with pytest.raises(ValueError, match="exactly one"):
        client.predict("multi")


def test_concurrent_requests_are_batched_with_unchanged_answers(live, reference):
    client, app = live
    ages = [float(a) for a in range(20, 60)]
    expected = reference["multi_v2"].signatures["serving_default"](
        occupation=tf.constant(["Sales"] * len(ages)), age=tf.constant(ages))["income_50k"].numpy()[:, 0]
    answers, errors = {}, []

    def send(indices):
        for i in indices:
            try:
                answers[i] = client.predict("multi", [{"occupation": "Sales", "age": ages[i]}])[0]["income_50k"][0]
            except Exception as e:  # collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=send, args=(range(k, len(ages), 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and len(answers) == len(ages)
    assert close([answers[i] for i in range(len(ages))], expected)
    text = app.state.metrics.render().decode()
    count = float(next(line.split()[-1] for line in text.splitlines()
                       if line.startswith('tfmtl_serving_batch_size_count{model="multi"}')))
    assert count < len(ages)  # some requests shared a model call


def test_hot_swap_under_traffic_loses_no_request(zoo, tmp_path):
    base = str(tmp_path / "multi")
    install(zoo["multi_v1"], base, 1)
    manager = ModelManager(server_config({"multi": base}), poll_wait_seconds=0.05)
    with running_server(create_app(manager)) as url, ServingClient(url, timeout=30.0, max_retries=0) as client:
        seen, failures = [], []
        stop = threading.Event()

        def traffic():
            for _ in range(5000):  # bounded; normally stopped long before
                if stop.is_set():
                    return
                try:
                    seen.append(client.predict("multi", [ROW])[0]["income_50k"][0])
                except Exception as e:  # no retries: any failure counts
                    failures.append(e)

        def wait_for(condition, seconds=90.0):
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert condition()

        threads = [threading.Thread(target=traffic) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(seen) >= 5)
            install(zoo["multi_v2"], base, 2)  # written aside, renamed into place
            wait_for(lambda: [(s["version"], s["state"]) for s in client.status("multi")["model_version_status"]]
                     == [("2", "AVAILABLE"), ("1", "END")])
            after_swap = len(seen)
            wait_for(lambda: len(seen) >= after_swap + 5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    assert failures == []
    v1, v2 = seen[0], seen[-1]
    assert not close(v1, v2)
    assert all(close(v, v1) or close(v, v2) for v in seen)
    switch = next(i for i, v in enumerate(seen) if close(v, v2))
    assert all(close(v, v2) for v in seen[switch:])  # once swapped, never back


def test_keep_alive_connections_have_nagle_off(live):
    """The ~40 ms fixed wait per keep-alive request came from Nagle's algorithm on the server side
    (the response head and body are two sends; the body waited for the client's delayed ACK)."""
    import http.client
    import json
    import socket
    from urllib.parse import urlparse

    client, app = live
    port = urlparse(client.base_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(2):  # the second request reuses the connection
            conn.request("POST", "/v1/models/single:predict", json.dumps({"instances": [[1.0, 2.0, 3.0]]}))
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"predictions": [4.75]}
        transports = [c.transport for c in app.state.uvicorn_server.server_state.connections]
        sockets = [t.get_extra_info("socket") for t in transports if t is not None]
        assert sockets
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
        # http.client sends a POST's head and body in two writes (Nagle on): the server must ACK the
        # head at once or the body waits for its delayed ACK.
        connections = app.state.uvicorn_server.server_state.connections
        assert all(type(c).__name__ == "GuardedHttpToolsProtocol" for c in connections)  # httptools installed
    finally:
        conn.close()


@pytest.mark.parametrize("parser,module,base", [("h11", "h11_impl", "H11Protocol"),
                                                ("httptools", "httptools_impl", "HttpToolsProtocol")])
def test_quick_ack_is_set_on_every_received_chunk(monkeypatch, parser, module, base):
    import importlib
    import socket

    from serving.connections import HeaderCounter
    from serving.net import http_protocol

    calls, received = [], []

    class FakeSocket:
        def setsockopt(self, *args):
            calls.append(args)

    class FakeTransport:
        def get_extra_info(self, name):
            return FakeSocket() if name == "socket" else None

        def is_closing(self):
            return False

    base_class = getattr(importlib.import_module(f"uvicorn.protocols.http.{module}"), base)
    monkeypatch.setattr(base_class, "data_received", lambda self, data: received.append(data))
    cls = http_protocol(parser)
    assert issubclass(cls, base_class)
    protocol = cls.__new__(cls)
    protocol.transport = FakeTransport()
    # What connection_made sets for the slow-client limits (serving/connections.py); no request yet.
    protocol._refused, protocol._head, protocol.cycle = False, HeaderCounter(), None
    for chunk in (b"POST / HTTP/1.1\r\n", b"{}"):
        protocol.data_received(chunk)
    assert received == [b"POST / HTTP/1.1\r\n", b"{}"]
    assert calls == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 2


def test_unknown_parser_is_refused():
    from serving.net import http_protocol

    with pytest.raises(ValueError, match="parser must be"):
        http_protocol("fast")
