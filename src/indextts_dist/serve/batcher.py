"""Cross-request batching: the text segments of concurrent requests are decoded as one batch.

Requests are admitted into a bounded queue (`max_queue` requests at most, counting the one being
decoded; beyond that `submit` raises `QueueFull` and the route answers 503 with `Retry-After`).
One worker thread owns the model: it waits for the first waiting segment, then up to `window_s`
for more (or until `max_batch` are waiting), and decodes them together through
`LoadedModel.run_segments` — the batched generation every door uses — then renders each segment
through the second stage and hands it to its request as soon as it is done (a streaming response
sends it at once). Segments are taken first come, first served, so a request's segments come back
in order, and only segments of the same `Served` model share a batch (a swap never mixes versions).

A request that is cancelled (its client went away) or whose deadline passed loses the segments not
yet decoded; the worker never starts work for it again. The worker runs in a thread because torch
releases the GIL: the event loop keeps accepting, streaming and answering probes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..generate import DecodingConfig
from ..speech.second_stage import OUTPUT_SAMPLE_RATE
from .holder import Served
from .metrics import ServeMetrics

__all__ = ["Batcher", "DeadlineExceeded", "Job", "QueueFull", "SegmentAudio"]

log = logging.getLogger("indextts_dist.serve")


class QueueFull(Exception):
    """The bounded queue is full; `retry_after_s` is the worker's estimate of when there is room."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full, retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class DeadlineExceeded(Exception):
    """The request's deadline passed before all its segments were decoded."""


@dataclass(frozen=True)
class SegmentAudio:
    index: int
    wav: np.ndarray
    """float32, 22.05 kHz."""
    codes: int
    stopped: bool


_DONE = object()


@dataclass(eq=False)
class Job:
    """One request's segments; results arrive on its event loop in segment order."""

    served: Served
    segments: list[list[int]]
    deadline: float
    """`time.monotonic()` after which its remaining segments are dropped."""
    loop: asyncio.AbstractEventLoop
    speed: float = 1.0
    """OpenAI's `speed`, applied by the second stage (the GPT's codes, and so the batch, ignore it)."""
    results: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: str | None = None
    """Why its remaining work was dropped ("disconnect", "deadline"), or None."""
    remaining: int = 0

    def __post_init__(self) -> None:
        self.remaining = len(self.segments)

    def cancel(self, reason: str) -> None:
        if self.cancelled is None and self.remaining:
            self.cancelled = reason

    async def next(self) -> SegmentAudio | None:
        """The next segment's audio; None after the last; raises what failed the request."""
        item = await self.results.get()
        if item is _DONE:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def _deliver(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            self.loop.call_soon_threadsafe(self.results.put_nowait, item)


@dataclass
class _Pending:
    job: Job
    index: int
    at: float = field(default_factory=time.monotonic)
    """When it was queued: the batch window runs from the oldest waiting segment's arrival."""


class Batcher:
    def __init__(
        self,
        *,
        decoding: DecodingConfig,
        metrics: ServeMetrics,
        max_batch: int = 8,
        window_s: float = 0.02,
        max_queue: int = 64,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and the window >= 0")
        self.decoding = decoding
        self.render_seed = decoding.seed or 0  # LoadedModel.speak's rule: one seed for both stages
        self.metrics = metrics
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_queue = max_queue
        self._pending: deque[_Pending] = deque()
        self._jobs: set[Job] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._segment_s = 0.5
        """Running estimate of seconds per segment (decode + render): the Retry-After estimate."""
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)

    # -- the event loop's side --------------------------------------------------------------------

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def submit(self, served: Served, segments: list[list[int]], timeout_s: float, speed: float = 1.0) -> Job:
        """Admit one request (on the running event loop) or raise `QueueFull`."""
        job = Job(served, segments, time.monotonic() + timeout_s, asyncio.get_running_loop(), speed)
        with self._cond:
            if len(self._jobs) >= self.max_queue:
                waiting = len(self._pending) / self.max_batch
                raise QueueFull(max(1, math.ceil(waiting * self._segment_s)))
            self._jobs.add(job)
            self._pending.extend(_Pending(job, i) for i in range(len(segments)))
            self._publish()
            self._cond.notify_all()
        return job

    def _publish(self) -> None:
        self.metrics.queue_depth.set(len(self._pending))
        self.metrics.queued_requests.set(len(self._jobs))

    # -- the worker's side ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                self._process(batch)

    def _take(self) -> list[_Pending] | None:
        """Wait for work, then for the window to fill; the batch (possibly empty), None to stop."""
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if self._stopping and not self._pending:
                return None
            close = self._pending[0].at + self.window_s  # a segment that waited already waits no more
            while len(self._live()) < self.max_batch and not self._stopping:
                left = close - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._drop_dead()
            if not self._pending:
                return []
            served = self._pending[0].job.served
            batch, keep = [], deque()
            while self._pending:
                item = self._pending.popleft()
                if len(batch) < self.max_batch and item.job.served is served:
                    batch.append(item)
                else:
                    keep.append(item)
            self._pending = keep
            self._publish()
            return batch

    def _live(self) -> list[_Pending]:
        return [p for p in self._pending if p.job.cancelled is None]

    def _drop_dead(self) -> None:
        """Forget the segments of cancelled requests and of requests past their deadline."""
        now = time.monotonic()
        for p in self._pending:
            if p.job.cancelled is None and now > p.job.deadline:
                p.job.cancelled = "deadline"
                p.job._deliver(DeadlineExceeded("the request's deadline passed"))
        dead = [p for p in self._pending if p.job.cancelled is not None]
        for job in {p.job for p in dead}:
            self._finish(job, deliver=False)
        self._pending = deque(p for p in self._pending if p.job.cancelled is None)
        self._publish()

    def _finish(self, job: Job, *, deliver: bool = True) -> None:
        if job in self._jobs:
            self._jobs.discard(job)
            if job.cancelled is not None:
                self.metrics.cancelled.labels(job.cancelled).inc()
            elif deliver:
                job._deliver(_DONE)

    def _process(self, batch: list[_Pending]) -> None:
        served = batch[0].job.served
        started = time.monotonic()
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_requests.observe(len({p.job for p in batch}))
        try:
            with self.metrics.decode_seconds.time():
                results = served.model.run_segments(
                    [p.job.segments[p.index] for p in batch], self.decoding, batch_size=len(batch)
                )
            for p, result in zip(batch, results, strict=True):
                if p.job.cancelled is not None:
                    continue  # its client is gone or its deadline passed: do not render it
                with self.metrics.render_seconds.time():
                    wav = served.model.renderer.render(result, seed=self.render_seed, speed=p.job.speed)
                self.metrics.segments.inc()
                self.metrics.audio_seconds.inc(wav.shape[0] / OUTPUT_SAMPLE_RATE)
                p.job._deliver(SegmentAudio(p.index, wav, int(result.codes.numel()), result.stopped[0]))
                with self._cond:
                    p.job.remaining -= 1
                    if p.job.remaining == 0:
                        self._finish(p.job)
        except Exception as exc:  # a bug or an out-of-memory: fail these requests, keep serving
            log.exception("batch of %d segment(s) failed", len(batch))
            with self._cond:
                for job in {p.job for p in batch}:
                    if job in self._jobs:
                        job._deliver(exc)
                        self._jobs.discard(job)
        finally:
            per_segment = (time.monotonic() - started) / len(batch)
            self._segment_s = 0.8 * self._segment_s + 0.2 * per_segment
            with self._cond:
                for job in {p.job for p in batch}:
                    if job.cancelled is not None:
                        self._finish(job)
                self._publish()
