"""ModelServerConfig parsing and validation, version policies, and the URL grammar."""

import pytest

from serving import config as config_lib
from serving.errors import InvalidArgument
from serving.urls import ModelPath, parse_model_path

CONFIG = """
model_config_list {
  config {
    name: "census"
    base_path: "/models/census"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 4 }
  }
  config {
    name: "movielens"
    base_path: "/models/movielens"
    model_version_policy { specific { versions: 1 versions: 5 } }
  }
}
"""


def test_parse_model_server_config(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG)
    config = config_lib.load_model_server_config(str(path))
    census, movielens = config.model_config_list.config
    assert (census.name, census.base_path, dict(census.version_labels)) == (
        "census", "/models/census", {"stable": 3, "canary": 4})
    assert config_lib.policy_text(census.model_version_policy) == "latest 2"
    assert config_lib.policy_text(movielens.model_version_policy) == "specific [1, 5]"


def test_the_repository_models_config_parses():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "serving", "models.config")
    config = config_lib.load_model_server_config(path)
    assert [m.name for m in config.model_config_list.config]


def test_single_model_config():
    config = config_lib.single_model_config("census", "base/census")
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("census", "base/census", "tensorflow")


PARSE_ERROR = "Error parsing text-format tensorflow.serving.ModelServerConfig"  # TF Serving's words


@pytest.mark.parametrize("text,match", [
    ("model_config_list { config { name: 'a' base_path: '/x' } ", PARSE_ERROR),
    ("model_config_list { config { nme: 'a' } }", PARSE_ERROR),
    ("custom_model_config {}", "only model_config_list"),
    ("model_config_list { config { base_path: '/x' } }", "has no name"),
    ("model_config_list { config { name: 'a/b' base_path: '/x' } }", "name must match"),
    ("model_config_list { config { name: '..' base_path: '/x' } }", "name must match"),
    ("model_config_list { config { name: 'a' } }", "base_path is empty"),
    ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }",
     "configured twice"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'tflite' } }", "not supported"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_version_policy { specific {} } } }",
     "lists no versions"),
    ("model_config_list { config { name: 'a' base_path: '/x' version_labels { key: 'a b' value: 1 } } }",
     "version label 'a b'"),
])
def test_invalid_configs_are_refused(text, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.parse_model_server_config(text)


def test_missing_config_file(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="cannot read model config file"):
        config_lib.load_model_server_config(str(tmp_path / "nope.config"))


def _policy(text):
    config = config_lib.parse_model_server_config(
        f"model_config_list {{ config {{ name: 'a' base_path: '/x' {text} }} }}")
    return config.model_config_list.config[0].model_version_policy


@pytest.mark.parametrize("policy,expected", [
    ("", [10]),  # default: latest 1
    ("model_version_policy { latest { num_versions: 2 } }", [3, 10]),
    ("model_version_policy { latest { num_versions: 9 } }", [1, 3, 10]),
    ("model_version_policy { all {} }", [1, 3, 10]),
    ("model_version_policy { specific { versions: 3 versions: 7 } }", [3]),
])
def test_select_versions(policy, expected):
    assert config_lib.select_versions(_policy(policy), [10, 1, 3]) == expected


def test_select_versions_with_nothing_on_disk():
    assert config_lib.select_versions(_policy(""), []) == []


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize("path,expected", [
    ("/v1/models/census", ModelPath("census")),
    ("/v1/models/census/versions/12", ModelPath("census", version=12)),
    ("/v1/models/census/labels/stable", ModelPath("census", label="stable")),
    ("/v1/models/census/metadata", ModelPath("census", endpoint="metadata")),
    ("/v1/models/census/versions/3/metadata", ModelPath("census", version=3, endpoint="metadata")),
    ("/v1/models/census:predict", ModelPath("census", endpoint="predict")),
    ("/v1/models/census/labels/canary:classify", ModelPath("census", label="canary", endpoint="classify")),
    ("/v1/models/census/versions/2:regress?x=1", ModelPath("census", version=2, endpoint="regress")),
    ("/v1/models/my%2Dmodel.v2", ModelPath("my-model.v2")),
])
def test_parse_model_path(path, expected):
    assert parse_model_path(path.encode()) == expected


@pytest.mark.parametrize("path,error", [
    ("/v1/models/..", InvalidArgument),
    ("/v1/models/%2E%2E/versions/1", InvalidArgument),
    ("/v1/models/a%2Fb", InvalidArgument),
    ("/v1/models/a%5Cb:predict", InvalidArgument),
    ("/v1/models/a%00:predict", InvalidArgument),
    ("/v1/models/:predict", InvalidArgument),
    ("/v1/models/a/versions/-1", InvalidArgument),
    ("/v1/models/a/versions/99999999999999999999", InvalidArgument),
    ("/v1/models/a/labels/..:predict", InvalidArgument),
    ("/v1/models/a/versions", InvalidArgument),
    ("/v1/models/a/versions/1/extra", InvalidArgument),
    ("/v1/models/a/metadata:predict", InvalidArgument),
    ("/v1/models/a:predict/more", InvalidArgument),
    ("/v1/model/a", InvalidArgument),
])
def test_bad_model_paths(path, error):
    with pytest.raises(error):
        parse_model_path(path.encode())
