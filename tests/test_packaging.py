"""The distribution: core requirements are ranges without the production stack; extras add it.

The range checks and the wheel's metadata are fast. The slow test builds a fresh virtualenv with
``pip install <wheel>[serving]`` (exact versions from the constraints file, so it installs from
pip's cache on a machine that built .venv) and serves a SavedModel from it over REST.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "requirements")
PRODUCTION_STACK = {"tfx", "apache-beam", "kfp", "kfp-pipeline-spec", "ml-metadata", "tensorflow-transform",
                    "tensorflow-model-analysis", "tensorflow-data-validation", "tfx-bsl", "tensorflow-io",
                    "starlette", "uvicorn", "httpx", "grpcio", "orjson", "prometheus-client"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_requirements(name: str) -> list[Requirement]:
    with open(os.path.join(REQUIREMENTS, name)) as f:
        return [Requirement(line.split("#")[0].strip()) for line in f if line.split("#")[0].strip()]


def _pins() -> dict[str, str]:
    pins = {}
    with open(os.path.join(REQUIREMENTS, "constraints.txt")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                pins[_canonical(name)] = version
    return pins


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(REQUIREMENTS) if f != "constraints.txt"))
def test_every_range_admits_the_pinned_version(name):
    pins = _pins()
    for requirement in _read_requirements(name):
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.10", "extra": ""}):
            continue  # constraints.txt is the Python 3.10 set: a Python >= 3.11 line has no pin to admit
        assert not any(s.operator == "==" for s in requirement.specifier), f"{name}: {requirement} is an exact pin"
        key = _canonical(requirement.name)
        assert key in pins, f"{name}: {requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[key]), f"{name}: {requirement} excludes the pinned {pins[key]}"


def test_core_requirements_hold_no_production_stack():
    core = {_canonical(r.name) for r in _read_requirements("core.txt")}
    assert not core & PRODUCTION_STACK, core & PRODUCTION_STACK
    assert {"tensorflow", "tf-keras", "pandas", "numpy", "tensorflow-recommenders"} <= core


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    ROOT], check=True, capture_output=True)
    (path,) = out.glob("tfmtl-*.whl")
    return str(path)


def test_wheel_metadata_declares_ranges_and_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = archive.namelist()
    requires = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    core = [r for r in requires if r.marker is None]
    assert core and not any(s.operator == "==" for r in core for s in r.specifier), core
    assert not {_canonical(r.name) for r in core} & PRODUCTION_STACK
    extras = set(re.findall(r"^Provides-Extra: (\S+)", metadata, flags=re.M))
    assert {"pipeline", "serving", "parquet", "dev", "all"} <= extras
    serving = {_canonical(r.name) for r in requires if r.marker and r.marker.evaluate({"extra": "serving"})}
    assert "tfx" not in serving and {"uvicorn", "grpcio"} <= serving
    pipeline = {_canonical(r.name) for r in requires if r.marker and r.marker.evaluate({"extra": "pipeline"})}
    assert {"tfx", "apache-beam", "kfp"} <= pipeline
    assert "tfmtl/datasets/data/census/train.csv.gz" in names and "serving/cli.py" in names


# Which top-level packages an environment can import (without importing them).
PROBE = ("import importlib.util, json; print(json.dumps({m: bool(importlib.util.find_spec(m)) "
         "for m in ('tfx', 'apache_beam', 'uvicorn', 'tfmtl')}))")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _export_half_plus_two(base_path: str) -> None:
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 0.5 * x + 2.0}

    module = HalfPlusTwo()
    tf.saved_model.save(module, os.path.join(base_path, "1"), signatures={"serving_default": module.serve})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fresh_venv_with_serving_extra_serves_a_model(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # Outside the checkout and without PYTHONPATH (the pipeline runner adds the checkout to it for Beam's
    # workers): with the editable install's tfmtl.egg-info on sys.path pip would think tfmtl is installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--prefer-binary", "-c",
                              os.path.join(REQUIREMENTS, "constraints.txt"), f"{wheel}[serving]"],
                             capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    # A serving host gets the server and the Keras library, not the TFX stack.
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True, cwd=str(tmp_path),
                           env=env)
    assert json.loads(probe.stdout) == {"tfx": False, "apache_beam": False, "uvicorn": True, "tfmtl": True}

    base_path = str(tmp_path / "models" / "half")
    _export_half_plus_two(base_path)
    port = _free_port()
    server = subprocess.Popen([str(venv / "bin" / "tfmtl-serving"), "--model_name=half",
                               f"--model_base_path={base_path}", f"--rest_api_port={port}", f"--port={_free_port()}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path),
                              env=env)
    try:
        url = f"http://127.0.0.1:{port}/v1/models/half"
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if "AVAILABLE" in answer.read().decode():
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the server did not load the model in 180 s"
            time.sleep(1)
        request = urllib.request.Request(url + ":predict", data=json.dumps({"instances": [1.0, 2.0, 5.0]}).encode())
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read()) == {"predictions": [2.5, 3.0, 4.5]}
    finally:
        server.terminate()
        server.wait(30)
