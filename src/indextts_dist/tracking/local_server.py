"""A real `mlflow server` on localhost (sqlite + served artifacts), for tests and the demo.

Tests and `make demo` need the same server a team runs (REST API, model registry, proxied
artifacts), not a `file:` store that behaves differently. The server runs in its own process group
so that stopping it also stops the uvicorn worker and the job runner it spawns.

    python -m indextts_dist.tracking.local_server ROOT [--port P]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["LocalMlflowServer", "ServerStartError", "free_port"]


class ServerStartError(RuntimeError):
    """The server did not come up; the message names its log file."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalMlflowServer:
    """`with LocalMlflowServer(tmp) as server: ... server.uri ...`

    Layout under `root`: `mlflow.db` (runs, registry), `artifacts/` (what clients upload through
    the server), `mlflow.log` (the server's stdout and stderr).
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 90.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.root / "mlflow.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        db = self.root / "mlflow.db"
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db}",
            "--default-artifact-root", "mlflow-artifacts:/",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", self.host,
            "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip

    def start(self) -> LocalMlflowServer:
        if self._proc is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        env = dict(os.environ)
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing to phone home to from a test box
        # The job runner (a huey consumer with 10 workers) only runs GenAI scorer jobs; without it the
        # server starts faster and stops at once, and the 2 cores stay with the tests.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env=env,
                start_new_session=True,  # own process group: SIGTERM reaches uvicorn and the job runner
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"mlflow server exited with code {code} before it was healthy; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ServerStartError(
            f"mlflow server on {self.uri} not healthy after {self.startup_timeout_s:.0f} s; "
            f"see {self.log_path}"
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the whole group, SIGKILL if it is still there after `timeout_s`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout_s)
                _wait_group_gone(proc.pid, timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalMlflowServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """The children (uvicorn, job runner) exit after the parent; wait so the port and db are free."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise subprocess.TimeoutExpired(f"process group {pgid}", timeout_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local MLflow server (sqlite + served artifacts).")
    parser.add_argument("root", type=Path, help="folder for mlflow.db, artifacts/ and mlflow.log")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with LocalMlflowServer(args.root, args.port, host=args.host) as server:
        print(f"MLflow server: {server.uri} (log: {server.log_path}); Ctrl-C stops it", flush=True)
        while not stop and server.running:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
