"""Version discovery, policies, labels, hot swap, corrupt versions and warmup, on real SavedModels."""

import os
import shutil
import time

import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from serving.errors import InvalidArgument, NotFound
from serving.manager import AVAILABLE, END, ModelManager
from serving.servable import Servable
from serving.warmup import MAX_WARMUP_RECORDS, WarmupError, read_warmup_records

from .conftest import install, server_config, warmup_logs, write_warmup


class SpyLoader:
    """Servable.load, recording which versions were attempted."""

    def __init__(self):
        self.calls = []

    def __call__(self, name, version, path):
        self.calls.append(version)
        return Servable.load(name, version, path)


def _states(manager, name):
    return {s.version: s.state for s in manager.version_states(name)}


def test_latest_policy_serves_the_newest_versions(zoo, tmp_path):
    base = str(tmp_path / "single")
    for version in (1, 2, 10):
        install(zoo["single"], base, version)
    os.makedirs(os.path.join(base, "not-a-version"))
    manager = ModelManager(server_config({"single": base}, {"single": "model_version_policy { latest { "
                                                                      "num_versions: 2 } }"}), poll_wait_seconds=0)
    manager.start()
    try:
        assert _states(manager, "single") == {10: AVAILABLE, 2: AVAILABLE}
        assert manager.resolve("single").version == 10  # numeric, not lexical, order
        assert manager.resolve("single", version=2).version == 2
        with pytest.raises(NotFound, match="version 1 of model 'single'"):
            manager.resolve("single", version=1)
    finally:
        manager.stop()


def test_specific_policy_and_labels(zoo, tmp_path):
    base = str(tmp_path / "single")
    for version in (1, 2, 3):
        install(zoo["single"], base, version)
    extra = ('model_version_policy { specific { versions: 1 versions: 3 } } '
             'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } '
             'version_labels { key: "gone" value: 2 }')
    manager = ModelManager(server_config({"single": base}, {"single": extra}), poll_wait_seconds=0)
    manager.start()
    try:
        assert _states(manager, "single") == {3: AVAILABLE, 1: AVAILABLE}
        assert manager.resolve("single", label="stable").version == 1
        assert manager.resolve("single", label="canary").version == 3
        with pytest.raises(NotFound, match="version 2"):
            manager.resolve("single", label="gone")  # a label to an unserved version
        with pytest.raises(InvalidArgument, match="Unrecognized servable version label: beta"):
            manager.resolve("single", label="beta")
        assert [s.version for s in manager.version_states("single", label="stable")] == [1]
    finally:
        manager.stop()


def test_new_version_replaces_the_old_one_only_once_loaded(zoo, tmp_path):
    base = str(tmp_path / "multi")
    install(zoo["multi_v1"], base, 1)
    events = []
    manager = ModelManager(server_config({"multi": base}), poll_wait_seconds=0)
    manager.add_listener(lambda event, name, state: events.append((event, state.version)))
    manager.start()
    try:
        old = manager.resolve("multi")
        install(zoo["multi_v2"], base, 2)
        manager.poll_once()
        assert _states(manager, "multi") == {2: AVAILABLE, 1: END}
        assert manager.resolve("multi").version == 2
        assert events == [("available", 1), ("available", 2), ("unloaded", 1)]  # new up before old down
        # A request that resolved the old version before the swap still completes.
        out = old.signature("serving_default").run({"occupation": tf.constant([b"a"]).numpy(),
                                                     "age": tf.constant([1.0]).numpy()})
        assert out["income_50k"].shape == (1, 1)
    finally:
        manager.stop()


def test_corrupt_version_is_skipped_and_retried_once_its_files_change(zoo, tmp_path):
    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    os.makedirs(os.path.join(base, "2"))
    with open(os.path.join(base, "2", "saved_model.pb"), "wb") as f:
        f.write(b"this is not a SavedModel")
    loader = SpyLoader()
    manager = ModelManager(server_config({"single": base}), poll_wait_seconds=0, loader=loader)
    manager.start()
    try:
        assert loader.calls == [2, 1]  # newest first, then the policy falls back to 1
        assert manager.resolve("single").version == 1
        broken = manager.version_states("single", version=2)[0]
        assert broken.state == END and broken.error_code != "OK" and broken.error_message
        manager.poll_once()
        assert loader.calls == [2, 1]  # same files: not retried
        # Fix version 2 atomically: the next poll retries it and swaps.
        shutil.rmtree(os.path.join(base, "2"))
        install(zoo["single"], base, 2)
        manager.poll_once()
        assert loader.calls == [2, 1, 2]
        assert _states(manager, "single") == {2: AVAILABLE, 1: END}
    finally:
        manager.stop()


def test_version_dir_still_being_written_is_waited_for(zoo, tmp_path):
    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    os.makedirs(os.path.join(base, "2", "variables"))  # no saved_model.pb yet
    loader = SpyLoader()
    manager = ModelManager(server_config({"single": base}), poll_wait_seconds=0, loader=loader)
    manager.start()
    try:
        assert loader.calls == [1] and _states(manager, "single") == {1: AVAILABLE}
    finally:
        manager.stop()


def test_missing_base_path_then_first_version(zoo, tmp_path):
    base = str(tmp_path / "later")
    manager = ModelManager(server_config({"later": base}), poll_wait_seconds=0)
    manager.start()
    try:
        with pytest.raises(NotFound, match=r"Servable not found for request: Latest\(later\)"):
            manager.resolve("later")
        with pytest.raises(NotFound, match="Could not find any versions"):
            manager.version_states("later")
        install(zoo["single"], base, 1)
        manager.poll_once()
        assert manager.resolve("later").version == 1
    finally:
        manager.stop()


def test_poller_thread_picks_up_a_new_version(zoo, tmp_path):
    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    manager = ModelManager(server_config({"single": base}), poll_wait_seconds=0.05)
    manager.start()
    try:
        install(zoo["single"], base, 2)
        deadline = time.monotonic() + 60
        while manager.resolve("single").version != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.resolve("single").version == 2
    finally:
        manager.stop()
    assert all(s.state == END for s in manager.version_states("single"))


def test_config_reload_adds_and_removes_models(zoo, tmp_path):
    single, other = str(tmp_path / "single"), str(tmp_path / "other")
    install(zoo["single"], single, 1)
    install(zoo["single"], other, 4)
    manager = ModelManager(server_config({"single": single}), poll_wait_seconds=0)
    manager.start()
    try:
        manager.apply_config(server_config({"single": single, "other": other}))
        assert manager.model_names() == ["other", "single"] and manager.resolve("other").version == 4
        manager.apply_config(server_config({"other": other}))
        with pytest.raises(NotFound, match="model 'single' not found"):
            manager.resolve("single")
    finally:
        manager.stop()


# ------------------------------------------------------------------ warmup


def test_warmup_is_replayed_before_the_version_is_available(zoo, tmp_path):
    base = str(tmp_path / "multi")
    install(zoo["multi_v1"], base, 1)  # ships predict, classify and regress warmup records
    seen = []
    manager = ModelManager(server_config({"multi": base}), poll_wait_seconds=0)
    manager.add_listener(lambda event, name, state: seen.append((event, state.warmup_records)))
    manager.start()
    try:
        assert seen == [("available", 3)]
    finally:
        manager.stop()


def test_a_failing_warmup_record_fails_the_load(zoo, tmp_path):
    base = str(tmp_path / "multi")
    version_path = install(zoo["multi_v2"], base, 1)
    bad = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="multi"))
    bad.inputs["no_such_input"].CopyFrom(tf.make_tensor_proto([1.0]))
    write_warmup(version_path, [*warmup_logs(), prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=bad))])
    manager = ModelManager(server_config({"multi": base}), poll_wait_seconds=0)
    manager.start()
    try:
        state = manager.version_states("multi")[0]
        assert state.state == END and "warmup record 3" in state.error_message
        with pytest.raises(NotFound, match="Servable not found"):
            manager.resolve("multi")
    finally:
        manager.stop()


def test_warmup_disabled_skips_the_records(zoo, tmp_path):
    base = str(tmp_path / "multi")
    install(zoo["multi_v1"], base, 1)
    manager = ModelManager(server_config({"multi": base}), poll_wait_seconds=0, enable_warmup=False)
    manager.start()
    try:
        assert manager.version_states("multi")[0].warmup_records == 0
    finally:
        manager.stop()


def test_more_than_the_maximum_warmup_records_is_an_error(tmp_path):
    path = str(tmp_path / "warmup")
    record = warmup_logs()[0].SerializeToString()
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(MAX_WARMUP_RECORDS + 1):
            writer.write(record)
    with pytest.raises(WarmupError, match="more than 1000"):
        read_warmup_records(path)


def test_config_file_is_watched_and_bad_edits_are_ignored(zoo, tmp_path):
    from serving import config as config_lib

    base = str(tmp_path / "single")
    install(zoo["single"], base, 1)
    path = tmp_path / "models.config"
    path.write_text("model_config_list {}")
    manager = ModelManager(config_lib.load_model_server_config(str(path)), poll_wait_seconds=0)
    manager.start()
    manager.watch_config(lambda: config_lib.load_model_server_config(str(path)), 0.05)
    try:
        path.write_text("model_config_list { this is not a config")
        time.sleep(0.3)  # several reload attempts, each refused
        assert manager.model_names() == []
        path.write_text(f'model_config_list {{ config {{ name: "single" base_path: "{base}" }} }}')
        deadline = time.monotonic() + 60
        while manager.model_names() != ["single"] and time.monotonic() < deadline:
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                assert manager.resolve("single").version == 1
                break
            except NotFound:  # not loaded yet: TF Serving's 404
                time.sleep(0.05)
        assert manager.resolve("single").version == 1
    finally:
        manager.stop()
