"""Model versions: discovery on disk, version policy, loading, hot swap, labels, status.

Each configured model has a base path whose integer sub-directories are its
versions. A poll lists them, asks the version policy which to serve, loads (and
warms up) the missing ones, and only then unloads the ones no longer wanted, so
a model never stops answering during a swap. A version that fails to load is
logged, reported in the status API and skipped (the policy falls back to the
next candidate) until its files change; nothing a model directory contains can
stop the server.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import tensorflow as tf

from serving import config as config_lib
from serving.errors import InvalidArgument, NotFound, ServingError, quoted, tf_code_name
from serving.servable import SERVE_TAG, TFLITE_MODES, TFLITE_OFF, Servable, has_model, missing_model_message
from serving.tflite import load_version
from serving.warmup import WarmupError, run_warmup

logger = logging.getLogger(__name__)

# Version states, with TF Serving's names.
START = "START"
LOADING = "LOADING"
AVAILABLE = "AVAILABLE"
UNLOADING = "UNLOADING"
END = "END"

_VERSION_DIR = re.compile(r"^\d{1,18}$")
_KEPT_ENDED_VERSIONS = 8  # unloaded/failed versions still shown by the status API

Loader = Callable[[str, int, str], Servable]
Listener = Callable[[str, str, "VersionState"], None]  # (event, model name, state)


@dataclass
class VersionState:
    """One version of one model, as the status API reports it."""

    version: int
    path: str
    state: str = START
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    warmup_records: int = 0


@dataclass
class _Model:
    config: config_lib.ModelConfig
    versions: dict[int, VersionState] = field(default_factory=dict)
    failed: dict[int, tuple] = field(default_factory=dict)  # version -> fingerprint of the files that failed
    # Set by a poll that found versions on disk and failed to load every one of them.
    load_error: str | None = None
    not_ready_logged: set = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_path(self) -> str:
        return config_lib.absolute_base_path(self.config.base_path)


class ModelManager:
    """Serves the versions a ``ModelServerConfig`` asks for and keeps them current."""

    def __init__(self, server_config: config_lib.ModelServerConfig, *, poll_wait_seconds: float = 1.0,
                 enable_warmup: bool = True, tflite: str = TFLITE_OFF, tags: Sequence[str] = (SERVE_TAG,),
                 tflite_pool_size: int | None = None, loader: Loader | None = None):
        # tflite (serving.servable.TFLITE_MODES) decides both which files make a version directory
        # loadable and how it is loaded (serving.tflite.load_version); ``loader`` replaces the latter
        # (tests), and must then agree with the mode.
        if tflite not in TFLITE_MODES:
            raise ValueError(f"tflite must be one of {TFLITE_MODES}, got {tflite!r}")
        self._tflite = tflite
        if loader is None:
            loader = functools.partial(load_version, tags=tuple(tags), tflite=tflite, pool_size=tflite_pool_size)
        self._poll_wait = poll_wait_seconds
        self._enable_warmup = enable_warmup
        self._loader = loader
        self._lock = threading.RLock()  # guards _models and every VersionState
        self._poll_lock = threading.Lock()  # one poll at a time
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[Listener] = []
        self._models: dict[str, _Model] = {}
        self._started = False
        self.apply_config(server_config, poll=False)

    # ------------------------------------------------------------------ lifecycle

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, model_name, state)`` on 'available', 'failed' and 'unloaded'."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Load the initial versions (blocking, like TF Serving's startup), then poll in the background."""
        if self._started:
            return
        self._started = True
        self.poll_once()
        if self._poll_wait > 0:
            self._spawn(self._poll_loop, "serving-version-poller")

    def wait_until_available(self, names: list[str] | None = None) -> None:
        """Block until every named model (default: all configured) serves a version, as TF Serving's
        ServerCore does before it opens its ports, and before a config reload answers.

        A model with no version on disk yet is waited for while the base paths are polled.

        Raises:
            ModelsUnavailable: a model whose every version on disk failed to load, or that has no
                version while nothing polls for one; TF Serving's "N model(s) did not become available".
        """
        interval = min(self._poll_wait, 0.25) if self._poll_wait > 0 else 0
        while True:
            with self._lock:
                wanted = [self._models[n] for n in (names if names is not None else self._models) if n in self._models]
                waiting = [m for m in wanted if not any(s.state == AVAILABLE for s in m.versions.values())]
                failed = [m for m in waiting if m.load_error is not None or not interval]
            if failed:
                raise ModelsUnavailable(failed)
            if not waiting or self._stop.wait(interval):
                return

    def watch_config(self, load_config: Callable[[], config_lib.ModelServerConfig], interval_seconds: float) -> None:
        """Re-read the model config every ``interval_seconds`` and apply it when it changed."""
        if interval_seconds > 0:
            self._spawn(lambda: self._config_loop(load_config, interval_seconds), "serving-config-poller")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and unload every version."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        # A poll started by apply_config may still be loading; let it finish so nothing loads after this.
        polling_done = self._poll_lock.acquire(timeout=timeout)
        try:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                for state in list(model.versions.values()):
                    if state.state == AVAILABLE:
                        self._unload(model, state)
        finally:
            if polling_done:
                self._poll_lock.release()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait):
            self.poll_once()

    def _config_loop(self, load_config: Callable[[], config_lib.ModelServerConfig], interval: float) -> None:
        last_error = None
        while not self._stop.wait(interval):
            try:
                self.apply_config(load_config())
                last_error = None
            except Exception as e:  # a bad edit must not take the server down; keep the old config
                if str(e) != last_error:  # once per distinct error, not once per poll
                    logger.error("model config reload failed, keeping the current config: %s", e)
                last_error = str(e)

    # ------------------------------------------------------------------ config

    def apply_config(self, server_config: config_lib.ModelServerConfig, *, poll: bool = True) -> list[str]:
        """Switch to a new config: new models are loaded, removed ones unloaded, changed ones updated.

        Returns the names of the models that are new or changed.
        """
        config_lib.validate(server_config)
        wanted = {m.name: m for m in server_config.model_config_list.config}
        with self._lock:
            changed = {n for n, m in wanted.items() if n not in self._models
                       or self._models[n].config.SerializeToString() != m.SerializeToString()}
            removed = [self._models.pop(n) for n in list(self._models) if n not in wanted]
            for name in changed:
                copy = config_lib.ModelConfig()
                copy.CopyFrom(wanted[name])
                if name in self._models:
                    self._models[name].config = copy
                    self._models[name].failed.clear()
                else:
                    self._models[name] = _Model(copy)
        for model in removed:
            logger.info("model %r removed from the config; unloading it", model.name)
            for state in list(model.versions.values()):
                if state.state == AVAILABLE:
                    self._unload(model, state)
        if changed or removed:
            logger.info("model config applied: %s", sorted(wanted))
        if poll and self._started and (changed or removed):
            self.poll_once()
        return sorted(changed)

    # ------------------------------------------------------------------ polling

    def poll_once(self) -> None:
        """One pass over every model's base path. Never raises."""
        with self._poll_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                if self._stop.is_set():
                    return
                try:
                    self._poll_model(model)
                except Exception:  # keep serving whatever is loaded
                    logger.exception("polling model %r under %s failed", model.name, model.base_path)

    def _poll_model(self, model: _Model) -> None:
        on_disk = self._versions_on_disk(model)
        # A failed load removes that version from the candidates, so the policy falls
        # back to the next one in the same poll; each pass fails at least one version.
        for _ in range(len(on_disk) + 1):
            candidates = {v: p for v, p in on_disk.items() if not self._known_bad(model, v, p)}
            wanted = config_lib.select_versions(model.config.model_version_policy, candidates)
            with self._lock:
                serving = {v for v, s in model.versions.items()
                           if s.state == AVAILABLE and s.path == on_disk.get(v)}
            # Newest first, so the version most requests will ask for is available soonest.
            missing = sorted(set(wanted) - serving, reverse=True)
            if self._stop.is_set():
                return
            if all([self._load(model, version, candidates[version]) for version in missing]):
                break
        with self._lock:
            wanted_available = any(model.versions[v].state == AVAILABLE for v in wanted if v in model.versions)
            retiring = [s for v, s in model.versions.items()
                        if s.state == AVAILABLE and (v not in wanted or s.path != on_disk.get(v))]
        loadable = [v for v, p in on_disk.items() if not self._known_bad(model, v, p)]
        with self._lock:
            any_available = any(s.state == AVAILABLE for s in model.versions.values())
            model.load_error = None if any_available or not on_disk or loadable else ", ".join(
                f"{{name: {model.name} version: {v}}} due to error: {model.versions[v].error_code}: "
                f"{model.versions[v].error_message}" for v in sorted(on_disk) if v in model.versions)
        # Availability first: old versions go only once a wanted one answers.
        if wanted_available:
            for state in retiring:
                self._unload(model, state)
        elif retiring and not wanted:
            logger.warning("model %r: no loadable version under %s; still serving version(s) %s",
                           model.name, model.base_path, sorted(s.version for s in retiring))
        self._check_labels(model)
        self._forget_old_states(model)

    def _versions_on_disk(self, model: _Model) -> dict[int, str]:
        base = model.base_path
        if not tf.io.gfile.isdir(base):
            if "missing" not in model.not_ready_logged:
                logger.warning("model %r: base path %s does not exist (yet)", model.name, base)
                model.not_ready_logged.add("missing")
            return {}
        model.not_ready_logged.discard("missing")
        versions = {}
        for entry in tf.io.gfile.listdir(base):
            entry = entry.rstrip("/")
            if not _VERSION_DIR.match(entry):
                continue  # temporary dirs of atomic writers, README files, ...
            path = tf.io.gfile.join(base, entry)
            if not tf.io.gfile.isdir(path):
                continue
            if not has_model(path, self._tflite):
                if path not in model.not_ready_logged:
                    logger.info("model %r: %s %s; waiting", model.name, path, missing_model_message(path, self._tflite))
                    model.not_ready_logged.add(path)
                continue
            versions[int(entry)] = path
        return versions

    def _known_bad(self, model: _Model, version: int, path: str) -> bool:
        bad = model.failed.get(version)
        if bad is None:
            return False
        if bad == _fingerprint(path):
            return True
        del model.failed[version]  # files changed since the failure: retry
        return False

    # ------------------------------------------------------------------ load / unload

    def _load(self, model: _Model, version: int, path: str) -> bool:
        state = VersionState(version, path, LOADING)
        with self._lock:
            model.versions[version] = state
        logger.info("model %r: loading version %d from %s", model.name, version, path)
        fingerprint = _fingerprint(path)
        try:
            servable = self._loader(model.name, version, path)
            records = run_warmup(servable) if self._enable_warmup else 0
        except Exception as e:
            code, message = _load_error(e)
            logger.error("model %r: version %d at %s failed to load and is skipped: %s", model.name, version,
                         path, message)
            with self._lock:
                state.state, state.error_code, state.error_message = END, code, message
                model.failed[version] = fingerprint
            self._notify("failed", model.name, state)
            return False
        with self._lock:
            state.servable, state.warmup_records, state.state = servable, records, AVAILABLE
        logger.info("model %r: version %d is AVAILABLE", model.name, version)
        self._notify("available", model.name, state)
        return True

    def _unload(self, model: _Model, state: VersionState) -> None:
        with self._lock:
            if state.state != AVAILABLE:
                return
            state.state = UNLOADING
            servable, state.servable = state.servable, None
        if servable is not None:
            servable.unload()  # requests already holding it finish normally
        with self._lock:
            state.state = END
        logger.info("model %r: version %d unloaded", model.name, state.version)
        self._notify("unloaded", model.name, state)

    def _notify(self, event: str, name: str, state: VersionState) -> None:
        for listener in self._listeners:
            try:
                listener(event, name, state)
            except Exception:
                logger.exception("listener failed on %s of model %r version %d", event, name, state.version)

    def _check_labels(self, model: _Model) -> None:
        for label, version in model.config.version_labels.items():
            state = model.versions.get(version)
            if state is None or state.state != AVAILABLE:
                key = ("label", label, version)
                if key not in model.not_ready_logged:
                    logger.warning("model %r: label %r points to version %d, which is not available",
                                   model.name, label, version)
                    model.not_ready_logged.add(key)

    def _forget_old_states(self, model: _Model) -> None:
        with self._lock:
            ended = sorted(v for v, s in model.versions.items() if s.state == END)
            for version in ended[:-_KEPT_ENDED_VERSIONS]:
                del model.versions[version]

    # ------------------------------------------------------------------ queries

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: a version, a label, or the newest available one."""
        # TF Serving's words and codes: a model or version not (yet) serving is 404 "Servable not found";
        # clients match on them.
        if not name:
            raise InvalidArgument("ModelSpec has no name specified.")
        with self._lock:
            if name not in self._models:
                shown = quoted(name)
                raise NotFound(f"Servable not found for request: Latest({shown}); model {shown!r} not found; "
                               f"served models: {sorted(self._models)}")
            model = self._models[name]
            if label is not None:
                version = self._label_version(model, label)
            if version is None:
                available = [v for v, s in model.versions.items() if s.state == AVAILABLE]
                if not available:
                    raise NotFound(f"Servable not found for request: Latest({name}); no version is available yet "
                                   f"(base path {model.base_path})")
                return model.versions[max(available)].servable
            state = model.versions.get(version)
            if state is None or state.state != AVAILABLE:
                detail = "not being served" if state is None or state.state in (END, UNLOADING) else state.state
                if state is not None and state.error_message:
                    detail += f" ({state.error_message})"
                raise NotFound(f"Servable not found for request: Specific({name}, {version}); version {version} of "
                               f"model {name!r} is {detail}")
            return state.servable

    def version_states(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionState]:
        """Status of one version (by number or label) or of all known versions, newest first."""
        with self._lock:
            model = self._model(name)
            if label is not None:
                version = self._label_version(model, label)
            if version is not None:
                if version not in model.versions:
                    raise NotFound(f"Could not find version {version} of model {name}")
                return [_copy_state(model.versions[version])]
            if not model.versions:
                raise NotFound(f"Could not find any versions of model {name} (base path {model.base_path})")
            return [_copy_state(model.versions[v]) for v in sorted(model.versions, reverse=True)]

    def _model(self, name: str) -> _Model:
        try:
            return self._models[name]
        except KeyError:
            shown = quoted(name)
            raise NotFound(f"Could not find any versions of model {shown}: model {shown!r} not found; served models: "
                           f"{sorted(self._models)}") from None

    @staticmethod
    def _label_version(model: _Model, label: str) -> int:
        labels = model.config.version_labels
        if label not in labels:
            raise InvalidArgument(f"Unrecognized servable version label: {quoted(label)}; labels of model "
                                  f"{model.name!r}: {sorted(labels)}")
        return labels[label]


class ModelsUnavailable(ServingError):
    """Models that did not become available (TF Serving's words from ServerCore::WaitUntilModelsAvailable)."""

    code = "UNKNOWN"

    def __init__(self, models: list[_Model]):
        details = "".join(f"{m.load_error or f'{{name: {m.name}}} has no version under {m.base_path}'}, "
                          for m in models)
        super().__init__(f"{len(models)} model(s) did not become available: {{{details}}}")
        self.model_names = [m.name for m in models]


def _copy_state(state: VersionState) -> VersionState:
    return VersionState(state.version, state.path, state.state, state.error_code, state.error_message,
                        None, state.warmup_records)


def _fingerprint(path: str) -> tuple:
    """Names, sizes and mtimes of a version's files: a changed fingerprint means "retry the load"."""
    entries = []
    try:
        for root, _, files in tf.io.gfile.walk(path):
            for name in files:
                file_path = tf.io.gfile.join(root, name)
                stat = tf.io.gfile.stat(file_path)
                entries.append((file_path, stat.length, stat.mtime_nsec))
    except tf.errors.OpError:
        pass
    return tuple(sorted(entries))


def _load_error(error: Exception) -> tuple[str, str]:
    if isinstance(error, WarmupError):
        cause = error.__cause__
        code = cause.code if isinstance(cause, ServingError) else "INVALID_ARGUMENT"
        return code, str(error)
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND", str(error)
    if isinstance(error, tf.errors.OpError):
        return tf_code_name(error), error.message.strip()
    return "UNKNOWN", f"{type(error).__name__}: {error}"
