"""The Prometheus series of one server (`GET /metrics`), in a registry of its own.

A registry per server rather than prometheus_client's global one: a process (a test, a benchmark)
may run several servers, and each must count only its own requests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServeMetrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "indextts_requests", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "indextts_request_seconds", "Speech request latency, arrival to last byte", ["format"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("indextts_queue_segments", "Text segments waiting to be decoded", registry=r)
        self.queued_requests = Gauge(
            "indextts_queue_requests", "Speech requests admitted and not yet fully decoded", registry=r
        )
        self.batch_size = Histogram(
            "indextts_batch_segments", "Segments decoded together in one batch (across requests)",
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "indextts_batch_requests", "Distinct requests whose segments shared one batch",
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.decode_seconds = Histogram(
            "indextts_decode_seconds", "GPT stage time of one batch (codes and latents of its segments)",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.render_seconds = Histogram(
            "indextts_render_seconds", "Second stage time of one segment (S2Mel + BigVGAN)",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.segments = Counter("indextts_segments", "Text segments decoded and rendered", registry=r)
        self.audio_seconds = Counter("indextts_audio_seconds", "Seconds of audio produced", registry=r)
        self.cancelled = Counter(
            "indextts_cancelled_requests", "Requests whose remaining work was dropped", ["reason"], registry=r
        )
        self.reload_failures = Counter(
            "indextts_model_reload_failures", "New alias versions that failed to load", registry=r
        )
        self.model_version = Gauge(
            "indextts_model_info", "The model being served (value 1)", ["uri", "version"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
