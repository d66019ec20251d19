"""The model being served, and the alias follower that replaces it when the registry alias moves.

A `Served` is immutable: a request takes the current one when it is admitted and keeps it, so a
swap never changes the model under a request in flight (the batcher only batches segments of the
same `Served`). The swap itself is one reference assignment under a lock; the old model is freed
when its last request lets go of it.

A new version is loaded completely — GPT, merged adapter and the second stage — in the follower's
thread before it is swapped in. If that fails, the old version keeps serving, the failure is logged,
counted (`indextts_model_reload_failures_total`) and shown by `/readyz`, and that version is not
tried again until the alias points somewhere else.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inference.loaded import LoadedModel
from ..tracking.registry import alias_version
from .metrics import ServeMetrics

__all__ = ["AliasFollower", "LoadSettings", "ModelHolder", "Served", "load_served"]

log = logging.getLogger("indextts_dist.serve")


@dataclass(frozen=True)
class LoadSettings:
    """How `LoadedModel.load` is called for every version this server loads."""

    tracking_uri: str | None = None
    cache_dir: Path = Path(".cache/indextts-dist-models")
    weights_dir: Path | None = None
    segment_tokens: int = 120
    device: str | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class Served:
    model: LoadedModel
    uri: str
    """What was asked for: `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a folder."""
    version: str | None
    """The registry version actually loaded (None for a folder)."""
    name: str
    """The model id (`/v1/models`) and its one voice: the registered name, or the folder's name."""
    loaded_at: float

    @property
    def label(self) -> str | None:
        return self.model.label

    def describe(self) -> str:
        at = f" (version {self.version})" if self.version else ""
        return f"{self.uri}{at}"


def model_name(uri: str) -> str:
    """`models:/NAME@ALIAS` / `models:/NAME/VERSION` -> NAME; a folder -> its name."""
    match = re.match(r"models:/([^@/]+)", uri)
    return match[1] if match else Path(uri).resolve().name


def load_served(uri: str, settings: LoadSettings, version: str | None = None) -> Served:
    """Load `uri` (or exactly `version` of its registered model) with its second stage, so that
    nothing is loaded lazily on the first request or after a swap."""
    name = model_name(uri)
    if uri.startswith("models:/") and "@" in uri and version is None:
        version = alias_version(uri, tracking_uri=settings.tracking_uri)
    elif uri.startswith("models:/") and version is None:
        version = uri.rstrip("/").rsplit("/", 1)[-1]
    source = f"models:/{name}/{version}" if version and uri.startswith("models:/") else uri
    # One cache folder per version: a download never writes over the files of the one serving.
    cache = Path(settings.cache_dir) / name / f"v{version}" if version else Path(settings.cache_dir)
    model = LoadedModel.load(
        source, tracking_uri=settings.tracking_uri, cache_dir=cache, weights_dir=settings.weights_dir,
        segment_tokens=settings.segment_tokens, device=settings.device, dtype=settings.dtype,
    )  # fmt: skip
    model.renderer  # noqa: B018  (load the second stage now: a package without one fails here)
    return Served(model, uri, version, name, time.time())


class ModelHolder:
    def __init__(self, served: Served, metrics: ServeMetrics) -> None:
        self._lock = threading.Lock()
        self._served = served
        self.metrics = metrics
        self.last_error: str | None = None
        """The latest failed reload, one line (cleared by the next successful swap)."""
        self.poll_error: str | None = None
        """Why the latest registry poll failed (None once a poll succeeds)."""
        self._publish(served)

    @property
    def current(self) -> Served:
        return self._served

    def swap(self, served: Served) -> Served:
        """Serve `served` from now on; returns the one it replaces."""
        with self._lock:
            old, self._served = self._served, served
            self.last_error = None
        self.metrics.model_version.remove(old.uri, str(old.version))
        self._publish(served)
        return old

    def _publish(self, served: Served) -> None:
        self.metrics.model_version.labels(served.uri, str(served.version)).set(1)

    def status(self) -> dict[str, Any]:
        served = self.current
        return {
            "model": served.name,
            "uri": served.uri,
            "version": served.version,
            "label": served.label,
            "loaded_at": served.loaded_at,
            "last_reload_error": self.last_error,
            "last_poll_error": self.poll_error,
        }


class AliasFollower:
    """Polls `models:/NAME@ALIAS` every `poll_s` seconds in a daemon thread."""

    def __init__(self, holder: ModelHolder, settings: LoadSettings, poll_s: float) -> None:
        self.holder = holder
        self.settings = settings
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._failed: str | None = None
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)

    def start(self) -> AliasFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # a bug here must not kill the server that is still serving
                log.exception("alias follower: unexpected error (the current model keeps serving)")

    def check(self) -> bool:
        """One poll: load and swap in the alias's version when it moved. True when it swapped."""
        current = self.holder.current
        try:
            version = alias_version(current.uri, tracking_uri=self.settings.tracking_uri)
        except Exception as exc:  # registry away: keep serving, say so, try at the next poll
            self.holder.poll_error = f"could not poll {current.uri}: {_one_line(exc)}"
            log.warning("alias follower: %s", self.holder.poll_error)
            return False
        self.holder.poll_error = None
        if version in (current.version, self._failed):
            return False
        log.info("alias follower: %s moved to version %s; loading it", current.uri, version)
        try:
            served = load_served(current.uri, self.settings, version=version)
        except Exception as exc:
            self._failed = version
            self.holder.last_error = f"version {version} failed to load: {_one_line(exc)}"
            self.holder.metrics.reload_failures.inc()
            log.error("alias follower: %s; still serving version %s", self.holder.last_error, current.version)
            return False
        old = self.holder.swap(served)
        self._failed = None
        log.info("alias follower: now serving %s (was version %s)", served.describe(), old.version)
        return True


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
