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
    server, port = start_grpc_server(manager, PredictionService(manager), "127.0.0.1", 0, max_workers=2)
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


def test_a_bad_config_is_refused_and_the_served_models_stay(stubs):
    model_service, _, single, _ = stubs
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="bad name!", base_path=single, model_platform="tensorflow")
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad name!" in info.value.details()
    assert _status(model_service, "single") == [(1, 30)]
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "Only ModelConfigList" in info.value.details()
