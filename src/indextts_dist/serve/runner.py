"""Running the app under uvicorn: in the foreground with the SIGTERM drain (the CLI), or in a
background thread on loopback (tests, benchmarks).

SIGTERM (a pod being stopped): readiness turns 503 at once, uvicorn closes the listening socket,
the requests in flight — streams included — run to their end (at most `drain_timeout_s`), then the
batcher and the alias follower stop and the process exits 0. uvicorn re-raises the signal it caught
once it is done; the no-op handler installed here receives it, so the exit code stays 0.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType

import uvicorn

from .app import ServeState, create_app

__all__ = ["BackgroundServer", "serve_forever"]


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServeState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.draining = True
        super().handle_exit(sig, frame)


def _config(state: ServeState, host: str, port: int, drain_s: float, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(state), host=host, port=port, lifespan="on", log_level=log_level,
        timeout_graceful_shutdown=int(drain_s), timeout_keep_alive=5,
    )  # fmt: skip


def serve_forever(
    state: ServeState, host: str, port: int, *, drain_timeout_s: float = 120.0, log_level: str = "info"
) -> int:
    """Serve until SIGTERM or SIGINT, drain, return 0."""
    server = _DrainingServer(_config(state, host, port, drain_timeout_s, log_level), state)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


class BackgroundServer:
    """`with BackgroundServer(state, port) as srv: requests.post(srv.url + "/v1/audio/speech", ...)`:
    the same app and uvicorn as the CLI, on loopback in a daemon thread (no signal handling)."""

    def __init__(self, state: ServeState, port: int, host: str = "127.0.0.1", log_level: str = "warning"):
        self.state = state
        self.url = f"http://{host}:{port}"
        self.server = _DrainingServer(_config(state, host, port, 30.0, log_level), state)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
