"""Model server configuration: TF Serving's ``ModelServerConfig`` text proto.

The file format is TF Serving's own, parsed with its protos, so one file serves
both this server and the ``tensorflow/serving`` image::

    model_config_list {
      config {
        name: "census"
        base_path: "/models/census"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: "stable" value: 1 }
      }
    }
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from google.protobuf import text_format
from google.protobuf.message import Message
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig
VersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy

# A model name or version label becomes one URL segment and a metrics label:
# no separators, no dot-only names, nothing that needs escaping.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class ConfigError(ValueError):
    """The model server configuration is invalid."""


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is usable as a model name or a version label."""
    return bool(_NAME_RE.match(name)) and name not in (".", "..")


def parse_text_proto(text: str, message: Message, *, source: str = "<string>") -> Message:
    """Parse a text-format proto into ``message``, failing in TF Serving's words.

    TF Serving's protobuf parser logs "Error parsing text-format <type>: <line>:<column>: <problem>"
    and its ParseProtoTextFile fails with "Invalid protobuf file: '<file>'"; operators and tests
    match on both, so the message holds both, in that order.
    """
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ConfigError(f"Error parsing text-format {message.DESCRIPTOR.full_name}: {e}. "
                          f"Invalid protobuf file: '{source}'") from e
    return message


def parse_model_server_config(text: str, *, source: str = "<string>") -> ModelServerConfig:
    """Parse and validate a text-format ``ModelServerConfig``."""
    config = parse_text_proto(text, ModelServerConfig(), source=source)
    validate(config, source=source)
    return config


def load_model_server_config(path: str) -> ModelServerConfig:
    """Read, parse and validate the ``--model_config_file``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        # TensorFlow's file-system words first ("<file>; No such file or directory"), as TF Serving reports them.
        raise ConfigError(f"{path}; {e.strerror or e} (cannot read model config file {path!r})") from e
    return parse_model_server_config(text, source=path)


def single_model_config(name: str, base_path: str) -> ModelServerConfig:
    """The config TF Serving builds from ``--model_name`` and ``--model_base_path``."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    validate(config, source="--model_name/--model_base_path")
    return config


def validate(config: ModelServerConfig, *, source: str = "<config>") -> None:
    """Reject what this server cannot serve, with a message naming the model and field."""
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{source}: only model_config_list is supported (custom_model_config is not)")
    seen: set[str] = set()
    for model in config.model_config_list.config:
        where = f"{source}: model {model.name!r}"
        if not model.name:
            raise ConfigError(f"{source}: a model config has no name")
        if not is_valid_name(model.name):
            raise ConfigError(f"{where}: name must match {_NAME_RE.pattern} (it becomes a URL segment)")
        if model.name in seen:
            raise ConfigError(f"{where}: name is configured twice")
        seen.add(model.name)
        if not model.base_path:
            raise ConfigError(f"{where}: base_path is empty")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{where}: model_platform {model.model_platform!r} is not supported (only 'tensorflow')")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ConfigError(f"{where}: specific policy lists no versions")
        for label, version in model.version_labels.items():
            if not is_valid_name(label):
                raise ConfigError(f"{where}: version label {label!r} must match {_NAME_RE.pattern}")
            if version < 0:
                raise ConfigError(f"{where}: version label {label!r} points to negative version {version}")


def select_versions(policy: VersionPolicy, available: Iterable[int]) -> list[int]:
    """The versions a version policy asks to serve, given those found on disk (ascending).

    ``latest {num_versions: N}`` (the default, N=1) keeps the N largest,
    ``all`` keeps everything and ``specific {versions}`` keeps the listed ones
    that exist.
    """
    versions = sorted(set(available))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return versions
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return [v for v in versions if v in wanted]
    n = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions > 0 else 1
    return versions[-n:] if versions else []


def policy_text(policy: VersionPolicy) -> str:
    """A one-line description of a policy, for logs and errors."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return f"specific {sorted(policy.specific.versions)}"
    n = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions > 0 else 1
    return f"latest {n}"


def absolute_base_path(base_path: str) -> str:
    """Local base paths are resolved against the working directory (as TF Serving does)."""
    if "://" in base_path:
        return base_path
    return os.path.abspath(base_path)
