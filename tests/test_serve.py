"""`indextts-dist serve` for real: uvicorn on loopback, a real HTTP client (requests), the tiny preset.

The audio a request gets is the audio `LoadedModel.speak` makes for the same text, seed and decoding
(the server batches the request's segments exactly as the API does when it is alone), in every
format; a stream carries the same samples, one segment at a time. 16 concurrent requests against
a queue of 4 all get 200 or 503 (+ Retry-After), and segments of different requests share batches
(read back from /metrics). Every bad input is one line of JSON with its status; the API key, the
deadline and a disconnecting client are checked on a server that decodes one segment at a time.
Slow: the alias follower against a real MLflow server (a version that cannot load is reported and
the old one keeps serving; the next good one is swapped in while a stream on the old one finishes),
and SIGTERM on the CLI's process while a request is in flight (it completes; exit 0).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
import torch
from prometheus_client.parser import text_string_to_metric_families
from serve_support import tiny_package

from indextts_dist.cli.main import main
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.results import Synthesis
from indextts_dist.inference.speech_output import SEGMENT_GAP_S
from indextts_dist.model import TINY_LABEL
from indextts_dist.serve.app import ServeState
from indextts_dist.serve.audio import encode
from indextts_dist.serve.batcher import Batcher
from indextts_dist.serve.holder import AliasFollower, LoadSettings, ModelHolder, Served, load_served
from indextts_dist.serve.metrics import ServeMetrics
from indextts_dist.serve.request import ServeLimits
from indextts_dist.serve.runner import BackgroundServer
from indextts_dist.speech.length_regulator import target_lengths
from indextts_dist.tracking.local_server import LocalMlflowServer, free_port

MAX_CODES, SEGMENT_TOKENS = 12, 12
DECODING = DecodingConfig(seed=0, max_new_tokens=MAX_CODES)
"""The official decoding (beam sampling), seeded: what the CLI runs with `--max-codes 12`."""
TEXT = "Well, [UH] I think so. Life finds a way."
LONG = " ".join(["This is a long sentence, with commas, and more words."] * 12)
MEDIUM = " ".join(["This is a long sentence, with commas, and more words."] * 4)
KEY = "s3cret-key"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_package(tmp_path_factory.mktemp("pkg"), 0)


@pytest.fixture(scope="module")
def silent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package without speaker embeddings: no second stage, so nothing this server can serve."""
    return tiny_package(tmp_path_factory.mktemp("silent"), 0, speaker_embeddings=False)


SETTINGS = LoadSettings(segment_tokens=SEGMENT_TOKENS, device="cpu")


@pytest.fixture(scope="module")
def served(package: Path) -> Served:
    return load_served(str(package), SETTINGS)


def _state(served: Served, *, max_batch: int, window_s: float, max_queue: int, **limits) -> ServeState:
    metrics = ServeMetrics()
    batcher = Batcher(decoding=DECODING, metrics=metrics, max_batch=max_batch, window_s=window_s,
                      max_queue=max_queue)  # fmt: skip
    return ServeState(ModelHolder(served, metrics), batcher, metrics, ServeLimits(**limits))


@pytest.fixture(scope="module")
def server(served: Served):
    """Batching across requests: 8 segments, 50 ms window, 4 requests admitted at once."""
    state = _state(served, max_batch=8, window_s=0.05, max_queue=4, max_chars=400)
    with BackgroundServer(state, free_port()) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict(served: Served):
    """One segment at a time, an API key and a 3 s deadline."""
    state = _state(served, max_batch=1, window_s=0.0, max_queue=8, api_key=KEY, request_timeout_s=3.0)
    with BackgroundServer(state, free_port()) as srv:
        yield srv


@pytest.fixture(scope="module")
def spoken(served: Served) -> tuple[Synthesis, np.ndarray]:
    """What the Python API makes of TEXT: the codes, and the audio every format must carry."""
    ((result, wav),) = served.model.speak([TEXT], DECODING)
    assert len(result.segments) >= 2, "TEXT must make several segments (joined with 200 ms of silence)"
    return result, wav


@pytest.fixture(scope="module")
def reference(spoken: tuple[Synthesis, np.ndarray]) -> np.ndarray:
    return spoken[1]


def _speech(url: str, body: dict | bytes, **kw) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{url}/v1/audio/speech", data=data, timeout=120, **kw)


def _metrics(url: str) -> dict[str, float]:
    """Every sample of /metrics by name and labels, e.g. `indextts_segments_total`."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def _int16(wav: np.ndarray) -> np.ndarray:
    return sf.read(io.BytesIO(encode(wav, "wav")), dtype="int16")[0]


# -- audio ---------------------------------------------------------------------------------------------


def test_speech_in_every_format_is_the_api_s_audio(server: BackgroundServer, reference: np.ndarray) -> None:
    want = _int16(reference)
    got = {}
    for fmt, content_type in [("wav", "audio/wav"), ("flac", "audio/flac"), ("pcm", "audio/pcm"),
                              ("mp3", "audio/mpeg")]:  # fmt: skip
        r = _speech(
            server.url, {"model": "package", "input": TEXT, "voice": "package", "response_format": fmt}
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == content_type and r.headers["X-Model-Label"] == TINY_LABEL
        assert int(r.headers["content-length"]) == len(r.content)
        got[fmt] = r.content
    wav = got["wav"]
    assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt "
    assert int.from_bytes(wav[4:8], "little") == len(wav) - 8  # RIFF size
    assert int.from_bytes(wav[40:44], "little") == 2 * len(reference)  # data size: every sample
    info = sf.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (22050, 1, "PCM_16", len(reference))
    assert np.array_equal(sf.read(io.BytesIO(wav), dtype="int16")[0], want)
    flac = sf.read(io.BytesIO(got["flac"]), dtype="int16")[0]  # lossless, libsndfile rounds its own way
    assert len(flac) == len(want) and np.abs(flac.astype(int) - want).max() <= 1
    assert np.array_equal(np.frombuffer(got["pcm"], "<i2"), want)  # raw samples, no header
    mp3, rate = sf.read(io.BytesIO(got["mp3"]))
    assert rate == 22050 and abs(len(mp3) - len(reference)) <= 2 * 1152  # encoder delay/padding frames
    r = _speech(server.url, {"model": "tts-1", "input": TEXT})  # an OpenAI client's defaults: wav
    assert r.status_code == 200 and np.array_equal(sf.read(io.BytesIO(r.content), dtype="int16")[0], want)


def test_streaming_sends_each_segment_as_it_is_made(server: BackgroundServer, reference: np.ndarray) -> None:
    want = _int16(reference)
    for fmt in ("wav", "pcm"):
        with _speech(server.url, {"input": TEXT, "response_format": fmt, "stream": True}, stream=True) as r:
            assert r.status_code == 200
            assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
            chunks = [c for c in r.iter_content(chunk_size=None) if c]
        body = b"".join(chunks)
        segments = int(r.headers["X-Segments"])
        if fmt == "wav":
            assert body[:4] == b"RIFF" and body[40:44] == b"\xff\xff\xff\xff"  # length unknown up front
            assert sf.info(io.BytesIO(body)).samplerate == 22050
            assert len(chunks[0]) == 44  # the header goes out before any audio exists
            body = body[44:]
            chunks = chunks[1:]
        assert len(chunks) == segments >= 2  # one chunk per segment
        assert np.array_equal(np.frombuffer(body, "<i2"), want)  # the same samples as the whole file
    for fmt in ("flac", "mp3"):  # one header for the whole file / per-file lengths: not streamable
        r = _speech(server.url, {"input": TEXT, "response_format": fmt, "stream": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


def test_speed_stretches_the_audio_not_the_codes(server: BackgroundServer, served: Served, spoken) -> None:
    """OpenAI's `speed` reaches the second stage: the same codes over ⌊1.72·N / speed⌋ mel frames."""
    result, wav = spoken
    gaps = int(SEGMENT_GAP_S * 22050) * (len(result.segments) - 1)
    for speed in (0.5, 2.0):
        r = _speech(server.url, {"input": TEXT, "speed": speed})
        assert r.status_code == 200, r.text
        got = sf.read(io.BytesIO(r.content), dtype="int16")[0]
        assert len(got) == sum(int(target_lengths(n, speed)) * 256 for n in result.segment_codes) + gaps
        assert (len(got) > len(wav)) == (speed < 1)
        assert np.array_equal(got, _int16(served.model.renderer.render(result, seed=0, speed=speed)))


def test_sixteen_concurrent_requests_none_lost_and_batched(server: BackgroundServer) -> None:
    before = _metrics(server.url)
    barrier = threading.Barrier(16)
    results: list[requests.Response | BaseException] = [None] * 16  # type: ignore[list-item]

    def client(i: int) -> None:
        barrier.wait()
        try:
            results[i] = _speech(server.url, {"input": f"Request {i}.", "response_format": "pcm"})
        except BaseException as exc:  # a lost request must fail the test, not vanish in a thread
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    statuses = [getattr(r, "status_code", r) for r in results]
    assert all(s in (200, 503) for s in statuses), statuses
    ok, busy = [r for r in results if r.status_code == 200], [r for r in results if r.status_code == 503]
    assert ok and busy, statuses  # 16 at once against a queue of 4: some served, some told to come back
    for r in busy:
        assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "queue_full"
    for r in ok:
        assert len(r.content) > 0 and len(r.content) % 2 == 0
    after = _metrics(server.url)
    batches = after["indextts_batch_segments_count"] - before["indextts_batch_segments_count"]
    single = (
        after["indextts_batch_segments_bucket{le=1.0}"] - before["indextts_batch_segments_bucket{le=1.0}"]
    )
    shared = (
        after["indextts_batch_requests_bucket{le=1.0}"] - before["indextts_batch_requests_bucket{le=1.0}"]
    )
    assert batches > 0 and single < batches  # some batches held several segments ...
    assert shared < batches  # ... and some held segments of different requests
    assert after["indextts_queue_requests"] == 0 and after["indextts_queue_segments"] == 0
    assert after["indextts_requests_total{route=/v1/audio/speech,status=503}"] >= len(busy)


# -- refusals ------------------------------------------------------------------------------------------

BAD = [
    pytest.param(b"{not json", 400, None, id="bad-json"),
    pytest.param(b"[1, 2]", 400, None, id="not-an-object"),
    pytest.param({"voice": "package"}, 400, "input", id="no-input"),
    pytest.param({"input": "   "}, 400, "input", id="blank-input"),
    pytest.param({"input": "x" * 401}, 413, "input", id="too-long"),
    pytest.param({"input": "hi", "response_format": "opus"}, 400, "response_format", id="unknown-format"),
    pytest.param({"input": "hi", "voice": "alloy"}, 400, "voice", id="unknown-voice"),
    pytest.param({"input": "hi", "model": "whisper-1"}, 404, "model", id="unknown-model"),
    pytest.param({"input": "hi", "speed": 9}, 400, "speed", id="speed-out-of-range"),
    pytest.param({"input": "hi", "speed": "fast"}, 400, "speed", id="speed-not-a-number"),
    pytest.param({"input": "hi", "stream": "yes"}, 400, "stream", id="stream-not-bool"),
    pytest.param({"input": "hi", "temperature": 2}, 400, "temperature", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD)
def test_bad_input_is_one_line_of_json(
    server: BackgroundServer, body, status: int, param: str | None
) -> None:
    r = _speech(server.url, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and "\n" not in r.text
    error = r.json()["error"]
    assert error["message"] and error["param"] == param and error["type"] == "invalid_request_error"


def test_probes_models_and_metrics(server: BackgroundServer) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["label"] == TINY_LABEL
    (model,) = requests.get(f"{server.url}/v1/models", timeout=10).json()["data"]
    assert model["id"] == "package" and model["voices"] == ["package"] and model["label"] == TINY_LABEL
    assert {"wav", "flac", "pcm"} <= set(model["formats"]) and "flac" not in model["streamable"]
    assert requests.get(f"{server.url}/nowhere", timeout=10).json()["error"]["message"] == "Not Found"
    before = _metrics(server.url).get("indextts_audio_seconds_total", 0)
    r = _speech(server.url, {"input": "Hello.", "response_format": "pcm"})
    metrics = _metrics(server.url)
    assert metrics["indextts_audio_seconds_total"] - before == pytest.approx(len(r.content) / 2 / 22050)
    for name in ("indextts_request_seconds_count{format=pcm}", "indextts_audio_seconds_total",
                 "indextts_queue_segments", "indextts_batch_segments_count"):  # fmt: skip
        assert name in metrics, name


def test_api_key(strict: BackgroundServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = _speech(strict.url, {"input": "Hello."}, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", headers
        assert r.json()["error"]["type"] == "authentication_error" and "\n" not in r.text
    assert requests.get(f"{strict.url}/v1/models", timeout=10).status_code == 401
    r = _speech(strict.url, {"input": "Hello."}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    for probe in ("healthz", "readyz", "metrics"):  # the kubelet and Prometheus need no key
        assert requests.get(f"{strict.url}/{probe}", timeout=10).status_code == 200


def test_deadline(strict: BackgroundServer, served: Served) -> None:
    segments = len(served.model.split_text(LONG)[1])
    assert segments >= 20  # one at a time, far more than 3 s of work
    before = _metrics(strict.url).get("indextts_cancelled_requests_total{reason=deadline}", 0)
    started = time.monotonic()
    r = _speech(strict.url, {"input": LONG}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    assert time.monotonic() - started < 10
    _wait(lambda: _metrics(strict.url).get("indextts_cancelled_requests_total{reason=deadline}", 0) > before)
    _wait(lambda: _metrics(strict.url)["indextts_queue_segments"] == 0)


def test_a_disconnected_client_cancels_its_work(strict: BackgroundServer, served: Served) -> None:
    segments = len(served.model.split_text(LONG)[1])
    body = json.dumps({"input": LONG}).encode()
    host, port = strict.url.removeprefix("http://").split(":")
    before = _metrics(strict.url)["indextts_segments_total"]
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v1/audio/speech HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        _wait(lambda: _metrics(strict.url)["indextts_segments_total"] > before)  # decoding has begun
    _wait(lambda: _metrics(strict.url).get("indextts_cancelled_requests_total{reason=disconnect}", 0) >= 1)
    _wait(lambda: _metrics(strict.url)["indextts_queue_requests"] == 0)
    done = _metrics(strict.url)["indextts_segments_total"] - before
    time.sleep(0.5)
    assert _metrics(strict.url)["indextts_segments_total"] - before == done < segments  # nothing more ran
    auth = {"Authorization": f"Bearer {KEY}"}
    with _speech(strict.url, {"input": LONG, "stream": True}, headers=auth, stream=True) as r:
        next(r.iter_content(chunk_size=None))  # the header: the stream is under way; then hang up
    _wait(lambda: _metrics(strict.url).get("indextts_cancelled_requests_total{reason=disconnect}", 0) >= 2)
    _wait(lambda: _metrics(strict.url)["indextts_queue_requests"] == 0)
    assert _metrics(strict.url)["indextts_segments_total"] - before < done + segments


def _wait(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


# -- the command line ----------------------------------------------------------------------------------


def test_serve_refuses_what_it_cannot_serve(
    package: Path, silent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = socket.create_server(("127.0.0.1", 0))  # something already listens there
    for args, message in [
        (["--model", str(package), "--follow-alias"], "--follow-alias needs --model models:/NAME@ALIAS"),
        (["--model", str(tmp_path / "nowhere")], "no such model folder"),
        (["--model", str(silent), "--device", "cpu"], "no speaker_embeddings.safetensors"),
        (["--model", str(package), "--device", "tpu9"], "device"),
        (["--model", str(package), "--port", str(taken.getsockname()[1])], "cannot listen there"),
    ]:
        assert main(["serve", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    taken.close()


@pytest.mark.slow
def test_follow_alias_swaps_and_survives_a_bad_version(
    package: Path, silent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indextts_dist.tracking import register_package

    name = "serve-test"
    with LocalMlflowServer(tmp_path / "mlflow") as mlflow_server:
        # The follower's thread and this test both talk to the registry: one URI for both.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)

        def register(pkg: Path) -> str:
            return register_package(pkg, tracking_uri=mlflow_server.uri, name=name, alias="prod").version

        assert register(package) == "1"
        settings = LoadSettings(
            mlflow_server.uri, tmp_path / "cache", segment_tokens=SEGMENT_TOKENS, device="cpu"
        )
        state = _state(load_served(f"models:/{name}@prod", settings), max_batch=8, window_s=0.02, max_queue=8)
        state.follower = AliasFollower(state.holder, settings, poll_s=0.2)
        old = state.holder.current
        with BackgroundServer(state, free_port()) as srv:
            first = _speech(srv.url, {"input": TEXT, "model": name, "voice": name})
            assert first.status_code == 200 and first.headers["X-Model-Version"] == "1"
            long = {"input": MEDIUM, "voice": name, "response_format": "pcm", "stream": True}
            stream = _speech(srv.url, long, stream=True)
            assert stream.headers["X-Model-Version"] == "1"
            pieces = stream.iter_content(chunk_size=None)
            received = [next(pieces)]  # in flight on version 1

            assert register(silent) == "2"
            _wait(lambda: _metrics(srv.url).get("indextts_model_reload_failures_total", 0) == 1)
            ready = requests.get(f"{srv.url}/readyz", timeout=10).json()
            assert ready["version"] == "1" and "version 2 failed to load" in ready["last_reload_error"]

            assert register(tiny_package(tmp_path / "v3", 1)) == "3"
            _wait(lambda: requests.get(f"{srv.url}/readyz", timeout=10).json()["version"] == "3")
            swapped = _speech(srv.url, {"input": TEXT, "voice": name})
            assert swapped.status_code == 200 and swapped.headers["X-Model-Version"] == "3"
            assert swapped.content != first.content  # another adapter, other audio
            assert requests.get(f"{srv.url}/readyz", timeout=10).json()["last_reload_error"] is None

            received += list(pieces)  # the stream begun on version 1 ends on version 1
            ((_, wav),) = old.model.speak([MEDIUM], DECODING)  # alone in its batches, as in the server
            assert np.array_equal(np.frombuffer(b"".join(received), "<i2"), _int16(wav))
            metrics = _metrics(srv.url)
            assert metrics[f"indextts_model_info{{uri=models:/{name}@prod,version=3}}"] == 1


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests_and_exits_0(package: Path, tmp_path: Path) -> None:
    port = free_port()
    exe = Path(sys.executable).parent / "indextts-dist"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    cmd = [str(exe), "serve", "--model", str(package), "--port", str(port), "--device", "cpu", "--max-batch",
           "2", "--max-codes", str(MAX_CODES), "--segment-tokens", str(SEGMENT_TOKENS)]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _up(url), timeout_s=120)
        result: dict[str, requests.Response] = {}
        client = threading.Thread(target=lambda: result.update(r=_speech(url, {"input": MEDIUM})))
        client.start()
        _wait(lambda: _metrics(url)["indextts_queue_requests"] == 1)  # admitted, not finished
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        client.join(timeout=60)
        r = result["r"]
        assert r.status_code == 200, r.text
        segments = int(r.headers["X-Segments"])
        assert segments >= 4 and sf.info(io.BytesIO(r.content)).frames > 0
        assert not _up(url)  # nothing listens any more
        logged = (tmp_path / "serve.log").read_text()
        assert "Waiting for connections to close" in logged and f"note: {TINY_LABEL}" in logged
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
