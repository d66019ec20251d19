"""Training metrics to MLflow from the main process, without ever stopping training.

A tracking server that is down, restarting or unreachable must cost the job a warning, not hours of
GPU time: every call is short (MLflow's own retries off, a few seconds of timeout), metrics wait in a
bounded buffer while the server is away and are sent, with their original steps and timestamps, on a
later call or at `finish`. Uses `MlflowClient` with an explicit run id: no global active run that
another library (or a second logger) could end or reuse.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["MetricsLogger", "is_transient_error", "mlflow_http_limits"]

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE_CHARS = 6000

_TRANSIENT_CODES = {
    "INTERNAL_ERROR",
    "TEMPORARILY_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "DEADLINE_EXCEEDED",
}
_PERMANENT_CODES = {
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "ENDPOINT_NOT_FOUND",
}


@contextmanager
def mlflow_http_limits(timeout_s: int = 5, max_retries: int = 0) -> Iterator[None]:
    """MLflow's defaults (7 retries with exponential backoff, 120 s per request) make one call to a
    dead server take minutes. Inside this block it takes `timeout_s` at most; callers retry on their
    own schedule. The variables are read per request by mlflow 3.17, so a scoped override works."""
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def is_transient_error(exc: BaseException) -> bool:
    """True for "the server is not there / not answering / overloaded": worth retrying later.
    False when the server answered and refused the request (retrying would fail the same way)."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, RestException):
        return exc.error_code in _TRANSIENT_CODES
    if isinstance(exc, MlflowException):
        # Transport failures come back as a plain MlflowException ("API request to ... failed").
        return exc.error_code not in _PERMANENT_CODES
    return isinstance(exc, (OSError, ConnectionError, TimeoutError)) or _is_requests_error(exc)


def _is_requests_error(exc: BaseException) -> bool:
    try:
        import requests
    except ImportError:  # pragma: no cover - requests ships with mlflow
        return False
    return isinstance(exc, requests.exceptions.RequestException)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys; values become strings capped at MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_VALUE_CHARS]
    return flat


class MetricsLogger:
    """`start(params) -> run_id`, `log(metrics, step)`, `finish(status)`; a no-op unless `enabled`.

    Only the main process passes `enabled=True`; every rank can hold one and call it unconditionally.
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        run_name: str | None,
        enabled: bool,
        *,
        max_buffer: int = 100_000,
        retry_every_s: float = 30.0,
        timeout_s: int = 5,
    ) -> None:
        # duplicates: plain attribute assignments (same shape as transcribe/transcriber.py).
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.enabled = enabled
        self.retry_every_s = retry_every_s
        self.timeout_s = timeout_s
        self.run_id: str | None = None
        self.dropped = 0
        """Metrics lost because the buffer was full (oldest first)."""
        self._buffer: deque[Any] = deque(maxlen=max_buffer)
        self._params: dict[str, str] = {}
        self._stage = ""
        self._down = False
        self._next_try = 0.0
        self._finished = False
        self._client: Any = None
        self._reopen = False

    # -- public API ----------------------------------------------------------------------------

    def start(self, params: Mapping[str, Any] | None = None, run_id: str | None = None) -> str | None:
        """Create the run (or, given `run_id`, continue that one: a resumed job keeps one run) and
        log `params`. Returns the run id, or None when disabled or when the server is unreachable
        (the run is then created on a later successful call; see `run_id`)."""
        if not self.enabled:
            return None
        self.run_id = run_id
        self._reopen = run_id is not None
        self._params.update(flatten_params(params or {}))
        self._attempt(force=True)
        return self.run_id

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if not self.enabled or self._finished:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(Metric(key=str(key), value=number, timestamp=timestamp, step=int(step)))
        self._attempt()

    def finish(self, status: str = "FINISHED") -> bool:
        """Send what is buffered and close the run. True when everything reached the server."""
        if not self.enabled or self._finished:
            return True
        self._finished = True
        delivered = self._attempt(force=True)
        if delivered and self.run_id is not None:
            try:
                with mlflow_http_limits(self.timeout_s):
                    self._get_client().set_terminated(self.run_id, status=status)
            except Exception as exc:
                delivered = False
                self._warn(f"could not close MLflow run {self.run_id} ({first_line(exc)})")
        if not delivered:
            self._warn(
                f"{len(self._buffer)} metrics were never sent to MLflow at {self._where()} "
                "(server unreachable); the training itself is unaffected"
            )
        elif self.dropped:
            self._warn(
                f"{self.dropped} early metrics were dropped while MLflow was unreachable (buffer full)"
            )
        return delivered and not self.dropped

    @property
    def pending(self) -> int:
        """Metrics buffered and not yet sent."""
        return len(self._buffer)

    # -- internals -----------------------------------------------------------------------------

    def _get_client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _attempt(self, force: bool = False) -> bool:
        """Create the run if needed and send params and buffered metrics. Never raises."""
        if not force and time.monotonic() < self._next_try:
            return False
        try:
            with mlflow_http_limits(self.timeout_s):
                self._ensure_run()
                self._send_params()
                self._send_metrics()
        except Exception as exc:
            if is_transient_error(exc):
                self._on_unreachable(exc)
            else:
                self._on_rejected(exc)
            return False
        if self._down:
            self._down = False
            print(
                f"MLflow tracking server {self._where()} reachable again; buffered metrics sent",
                file=sys.stderr,
            )
        return True

    def _ensure_run(self) -> None:
        if self.run_id is not None:
            if self._reopen:  # a resumed job: the run it started was closed as KILLED or FAILED
                self._stage = "run"
                self._get_client().update_run(self.run_id, status="RUNNING")
                self._reopen = False
            return
        self._stage = "run"
        client = self._get_client()
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(self.experiment)
            except Exception:  # another job created it meanwhile
                experiment = client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(experiment_id, run_name=self.run_name)
        self.run_id = run.info.run_id

    def _send_params(self) -> None:
        from mlflow.entities import Param

        self._stage = "params"
        client = self._get_client()
        while self._params:
            keys = list(self._params)[:MAX_PARAMS_PER_BATCH]
            client.log_batch(self.run_id, params=[Param(k, self._params[k]) for k in keys])
            for k in keys:
                del self._params[k]

    def _send_metrics(self) -> None:
        self._stage = "metrics"
        client = self._get_client()
        while self._buffer:
            chunk = [self._buffer[i] for i in range(min(MAX_METRICS_PER_BATCH, len(self._buffer)))]
            client.log_batch(self.run_id, metrics=chunk)
            for _ in chunk:
                self._buffer.popleft()

    def _on_unreachable(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + self.retry_every_s
        if not self._down:
            self._down = True
            self._warn(
                f"MLflow tracking server {self._where()} unreachable ({first_line(exc)}); training goes on, "
                f"metrics are buffered (up to {self._buffer.maxlen}) and retried "
                f"every {self.retry_every_s:g} s"
            )

    def _on_rejected(self, exc: BaseException) -> None:
        """The server answered and refused: retrying the same data would fail forever, so drop it."""
        if self._stage == "run":
            self.enabled = False
            self._buffer.clear()
            self._warn(f"MLflow refused to create the run ({first_line(exc)}); metrics logging is off")
        elif self._stage == "params":
            self._params.clear()
            self._warn(f"MLflow refused the run's params ({first_line(exc)}); they are not logged")
        else:
            for _ in range(min(MAX_METRICS_PER_BATCH, len(self._buffer))):
                self._buffer.popleft()
            self._warn(f"MLflow refused a batch of metrics ({first_line(exc)}); that batch is dropped")

    def _where(self) -> str:
        return self.tracking_uri or "(default tracking URI)"

    @staticmethod
    def _warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
