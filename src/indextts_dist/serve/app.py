"""The HTTP routes: OpenAI's `POST /v1/audio/speech` and `GET /v1/models`, plus the probes and metrics.

    POST /v1/audio/speech   {"model", "input", "voice", "response_format", "speed", "stream"} -> audio
    GET  /v1/models         the model this server holds (its one voice, version and label)
    GET  /healthz           200 while the process serves (liveness)
    GET  /readyz            200 with the model's version once loaded, 503 while draining (readiness)
    GET  /metrics           Prometheus text

With an API key set, `/v1/*` needs `Authorization: Bearer KEY` (401 otherwise); the probes and the
metrics stay open for the kubelet and Prometheus. Every error is one line of JSON (`request.ApiError`).
A request's audio carries the model's version and, for the tiny preset, its label
(`X-Model-Label`: random weights, not speech) in its headers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError
from ..inference.speech_output import SEGMENT_GAP_S
from ..speech.second_stage import OUTPUT_SAMPLE_RATE
from .audio import STREAMABLE, available_formats, encode, stream_chunk, stream_header
from .batcher import Batcher, DeadlineExceeded, Job, QueueFull, SegmentAudio
from .holder import AliasFollower, ModelHolder, Served
from .metrics import CONTENT_TYPE_LATEST, ServeMetrics
from .request import OPENAI_MODEL_NAMES, ApiError, ServeLimits, SpeechRequest, parse_speech_request

__all__ = ["ServeState", "create_app"]

log = logging.getLogger("indextts_dist.serve")
GAP = np.zeros(int(SEGMENT_GAP_S * OUTPUT_SAMPLE_RATE), dtype=np.float32)
"""Between segments, as `SpeechRenderer.render` joins them: a response is the `infer` wav."""


@dataclass
class ServeState:
    holder: ModelHolder
    batcher: Batcher
    metrics: ServeMetrics
    limits: ServeLimits = field(default_factory=ServeLimits)
    follower: AliasFollower | None = None
    draining: bool = False
    """Set on SIGTERM: readiness fails while the requests in flight finish."""


def create_app(state: ServeState) -> FastAPI:
    formats = available_formats()
    streamable = [f for f in formats if f in STREAMABLE]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        if state.follower is not None:
            state.follower.start()
        try:
            yield
        finally:  # after uvicorn has drained the connections
            if state.follower is not None:
                state.follower.stop()
            state.batcher.stop()

    app = FastAPI(title="indextts-dist speech", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serve = state

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:  # logged with its traceback by uvicorn
        return await _api_error(_, ApiError(500, f"internal error: {type(exc).__name__}: {exc}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return await _api_error(_, ApiError(exc.status_code, str(exc.detail)))

    app.add_middleware(_Gate, state=state)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body = {"ready": not state.draining, "draining": state.draining, **state.holder.status()}
        return JSONResponse(body, status_code=503 if state.draining else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        served = state.holder.current
        entry = {
            "id": served.name, "object": "model", "created": int(served.loaded_at),
            "owned_by": "indextts-dist", "version": served.version, "uri": served.uri,
            "voices": [served.name], "label": served.label, "aliases": list(OPENAI_MODEL_NAMES),
            "formats": list(formats), "streamable": streamable,
        }  # fmt: skip
        return {"object": "list", "data": [entry]}

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        started = time.monotonic()
        if state.draining:
            raise ApiError(503, "the server is shutting down", headers={"Retry-After": "1"})
        served = state.holder.current  # this request stays on this model, whatever swaps meanwhile
        req = parse_speech_request(
            await request.body(), models=[served.name, *OPENAI_MODEL_NAMES], voices=[served.name],
            formats=list(formats), streamable=streamable, max_chars=state.limits.max_chars,
        )  # fmt: skip
        try:
            _, segments = await run_in_threadpool(served.model.split_text, req.input)  # normalizer: CPU
        except InputError as exc:
            raise ApiError(400, f"input: {exc}", param="input") from None
        if not segments:
            raise ApiError(400, "input: nothing to synthesize after normalization", param="input")
        try:
            job = state.batcher.submit(served, segments, state.limits.request_timeout_s, req.speed)
        except QueueFull as exc:
            raise ApiError(503, f"busy: {exc}", code="queue_full",
                           headers={"Retry-After": str(exc.retry_after_s)}) from None  # fmt: skip
        headers = _headers(served, len(segments))
        media_type = formats[req.response_format].content_type
        if req.stream:
            chunks = _stream(state, job, req, started)
            return StreamingResponse(chunks, media_type=media_type, headers=headers)
        pieces = await _collect(state, job, request)
        if pieces is None:  # the client went away; nobody reads this
            return Response(status_code=499)
        joined = [x for seg in pieces for x in (GAP, seg.wav)][1:]
        body = await run_in_threadpool(encode, np.concatenate(joined), req.response_format)
        state.metrics.latency.labels(req.response_format).observe(time.monotonic() - started)
        return Response(body, media_type=media_type, headers=headers)

    return app


class _Gate:
    """Pure ASGI (not `BaseHTTPMiddleware`, which re-wraps `receive` and the body stream and so hides
    a client's disconnect from the route): the bearer check on `/v1/*`, and one count per response
    by route template and status."""

    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = self.state.limits.api_key
        if key and scope["path"].startswith("/v1/") and not _authorized(Headers(scope=scope), key):
            error = ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            self._count(scope, 401)
            await JSONResponse(error.body(), status_code=401, headers=error.headers)(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._count(scope, message["status"])
            await send(message)

        await self.app(scope, receive, counted)

    def _count(self, scope: Scope, status: int) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        self.state.metrics.requests.labels(route, str(status)).inc()


def _authorized(headers: Headers, key: str) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _headers(served: Served, segments: int) -> dict[str, str]:
    headers = {
        "X-Model": served.name,
        "X-Model-Version": str(served.version),
        "X-Sample-Rate": str(OUTPUT_SAMPLE_RATE),
        "X-Segments": str(segments),
    }
    if served.label:
        headers["X-Model-Label"] = served.label
    return headers


async def _next(job: Job) -> SegmentAudio | None:
    """The job's next segment within its deadline (504 past it)."""
    try:
        return await asyncio.wait_for(job.next(), timeout=max(0.0, job.deadline - time.monotonic()))
    except (TimeoutError, asyncio.TimeoutError, DeadlineExceeded):
        job.cancel("deadline")
        raise ApiError(504, "the request's deadline passed before its audio was ready",
                       code="deadline_exceeded") from None  # fmt: skip


async def _collect(state: ServeState, job: Job, request: Request) -> list[SegmentAudio] | None:
    """Every segment of a whole-file response; None (work cancelled) when the client disconnects."""

    async def gather() -> list[SegmentAudio]:
        pieces = []
        while (seg := await _next(job)) is not None:
            pieces.append(seg)
        return pieces

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    work, watch = asyncio.ensure_future(gather()), asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if work in done:
        return work.result()
    work.cancel()
    job.cancel("disconnect")
    log.info("client disconnected: dropped the rest of a %d-segment request", len(job.segments))
    return None


async def _stream(state: ServeState, job: Job, req: SpeechRequest, started: float) -> AsyncIterator[bytes]:
    """Each segment as soon as it is rendered. Starlette cancels this generator when the client
    disconnects; the `finally` then drops the request's remaining work."""
    try:
        yield stream_header(req.response_format)
        first = True
        while True:
            try:
                seg = await _next(job)
            except ApiError as exc:  # headers are sent: the stream just ends early
                log.warning("stream ended early: %s", exc.message)
                return
            if seg is None:
                break
            wav = seg.wav if first else np.concatenate([GAP, seg.wav])
            first = False
            yield await run_in_threadpool(stream_chunk, wav, req.response_format)
        state.metrics.latency.labels(req.response_format).observe(time.monotonic() - started)
    finally:
        job.cancel("disconnect")  # a no-op once every segment was delivered
