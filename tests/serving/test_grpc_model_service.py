"""ModelService.HandleReloadConfigRequest through TF Serving's own gRPC stub."""

import grpc
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.grpc_server import start_grpc_server
from serving.manager import ModelManager
from serving.service import PredictionService
from tests.serving.conftest import install, server_config


@pytest.fixture
def stubs(zoo, tmp_path):
    single, other = str(tmp_path / "single"), str(tmp_path / "other")
    install(zoo["single"], single, 1)
    install(zoo["single"], other, 4)
    manager = ModelManager(server_config({"single": single}), poll_wait_seconds=0)
    manager.start()
    server, port, _ = start_grpc_server(manager, PredictionService(manager), "127.0.0.1", 0, max_workers=2)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield (model_service_pb2_grpc.ModelServiceStub(channel),
               prediction_service_pb2_grpc.PredictionServiceStub(channel), single, other)
    finally:
        channel.close()
        server.stop(0)
        manager.stop()


def _reload(model_service, models):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(server_config(models))
    return model_service.HandleReloadConfigRequest(request, timeout=60)


def _status(model_service, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return [(s.version, s.state) for s in model_service.GetModelStatus(request, timeout=30).model_version_status]


def test_reload_adds_a_model_loaded_before_the_answer_and_removes_another(stubs):
    model_service, prediction, single, other = stubs
    response = _reload(model_service, {"single": single, "other": other})
    assert response.status.error_code == 0
    assert _status(model_service, "other") == [(4, 30)]  # AVAILABLE as soon as the call returns
    _reload(model_service, {"other": other})
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "single"
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_bad_config_is_refused_in_the_response_status_and_the_served_models_stay(stubs):
    # TF Serving's ModelServiceImpl answers the call OK and puts the failure in response.status.
    model_service, _, single, _ = stubs
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="bad name!", base_path=single, model_platform="tensorflow")
    status = model_service.HandleReloadConfigRequest(request, timeout=30).status
    assert status.error_code == 3 and "bad name!" in status.error_message  # INVALID_ARGUMENT
    assert _status(model_service, "single") == [(1, 30)]
    status = model_service.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=30).status
    assert status.error_code == 3 and status.error_message.startswith(
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList")


def test_a_reload_waits_for_the_new_model_and_reports_one_that_fails_to_load(stubs, tmp_path):
    model_service, prediction, single, other = stubs
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    status = _reload(model_service, {"single": single, "broken": str(broken.parent)}).status
    assert status.error_code == 2  # UNKNOWN, as ServerCore::WaitUntilModelsAvailable
    assert status.error_message.startswith("1 model(s) did not become available: {{name: broken version: 1} due to "
                                           "error: ")
    assert _status(model_service, "single") == [(1, 30)]


def test_the_services_are_served_on_a_unix_socket_too(zoo, tmp_path):
    import tensorflow as tf

    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    manager = ModelManager(server_config({"single": base}), poll_wait_seconds=0)
    manager.start()
    socket_path = str(tmp_path / "grpc.sock")
    server, port, _ = start_grpc_server(manager, PredictionService(manager), "127.0.0.1", -1, socket_path=socket_path,
                                     channel_arguments=[("grpc.max_connection_age_ms", 2000)])
    channel = grpc.insecure_channel(f"unix:{socket_path}")
    try:
        assert port == 0  # no TCP port
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "single"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 1.0, 1.0]], dtype=tf.float32))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [1.75]
        assert _status(model_service_pb2_grpc.ModelServiceStub(channel), "single") == [(1, 30)]
    finally:
        channel.close()
        server.stop(0)
        manager.stop()


def test_channel_arguments_parse_as_tf_serving_reads_them():
    from serving.grpc_server import parse_channel_arguments

    assert parse_channel_arguments("grpc.max_connection_age_ms=2000, grpc.lb_policy_name=grpclb,") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb")]
    with pytest.raises(ValueError, match="'=1' is not key=value"):
        parse_channel_arguments("=1")
