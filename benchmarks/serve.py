"""Requests/s and latency of `indextts-dist serve` at concurrency 1, 4 and 16: batched across requests
vs one request at a time, as ratios from one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/serve.py                  # tiny package, CPU
    .venv/bin/python benchmarks/serve.py --reps 5 --device cuda --max-codes 60

The server is the real one (the app and uvicorn of the CLI, on loopback in this process) over one
loaded tiny package (random weights: the numbers are about the machinery, not speech); the clients
are threads with `requests`, each sending one short text (one segment) after another. Variants:
"batched" (`--max-batch 8 --batch-window-ms 20`) and "one at a time" (`--max-batch 1
--batch-window-ms 0`), the same model object for both. Each repetition runs both variants at every
concurrency, interleaved, so load from other processes hits both alike; each figure is the median
over the repetitions with its min–max, and the ratio is taken per repetition (batched / one at a
time) before its median. Also shown: mean segments per batch (the batch size under load), the GPT
stage's time per segment (what batching divides), and the share of a segment's worker time spent in
the second stage (which renders segments one by one, so batching cannot divide it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_support import tiny_package

from indextts_dist.generate import DecodingConfig
from indextts_dist.serve.app import ServeState
from indextts_dist.serve.batcher import Batcher
from indextts_dist.serve.holder import LoadSettings, ModelHolder, Served, load_served
from indextts_dist.serve.metrics import ServeMetrics
from indextts_dist.serve.request import ServeLimits
from indextts_dist.serve.runner import BackgroundServer
from indextts_dist.tracking.local_server import free_port

TEXTS = [
    "Well [UH] I think we should go now.",
    "So where were we? Right.",
    "Life finds a way, you know.",
    "I mean [HMM] it's not that simple.",
    "We waited [LONG] and then nothing.",
    "Okay, so the plan is simple.",
    "Honestly [UM] I never thought so.",
    "The train was late again.",
]
VARIANTS = {"batched": (8, 0.020), "one at a time": (1, 0.0)}
CONCURRENCY = (1, 4, 16)


def run_level(url: str, concurrency: int, total: int) -> tuple[float, list[float]]:
    """(requests/s, latencies) of `total` requests from `concurrency` client threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        session = local.__dict__.setdefault("s", requests.Session())
        start = time.perf_counter()
        r = session.post(f"{url}/v1/audio/speech", json={"input": TEXTS[i % len(TEXTS)]}, timeout=600)
        r.raise_for_status()
        with lock:
            latencies.append(time.perf_counter() - start)

    local = threading.local()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    return total / (time.perf_counter() - start), latencies


def quantile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]
        if len(values) > 1
        else values[0]
    )


def measure(served: Served, decoding: DecodingConfig, variant: str, concurrency: int, total: int) -> dict:
    max_batch, window = VARIANTS[variant]
    metrics = ServeMetrics()
    batcher = Batcher(decoding=decoding, metrics=metrics, max_batch=max_batch, window_s=window, max_queue=64)
    state = ServeState(ModelHolder(served, metrics), batcher, metrics, ServeLimits())
    with BackgroundServer(state, free_port()) as srv:
        rps, lat = run_level(srv.url, concurrency, total)
    count, segments = _histogram(metrics.batch_size)
    decode_s = _histogram(metrics.decode_seconds)[1]
    return {"rps": rps, "p50": quantile(lat, 0.50), "p95": quantile(lat, 0.95), "batch": segments / count,
            "gpt_ms": 1000 * decode_s / segments}  # fmt: skip


def _histogram(histogram) -> tuple[float, float]:
    """(count, sum) of an unlabelled prometheus_client histogram."""
    samples = {s.name.rsplit("_", 1)[-1]: s.value for s in histogram.collect()[0].samples}
    return samples["count"], samples["sum"]


def second_stage_share(served: Served, decoding: DecodingConfig) -> float:
    """Of one segment's worker time (decode + render), the share the second stage takes."""
    _, segments = served.model.split_text(TEXTS[0])
    start = time.perf_counter()
    (result,) = served.model.run_segments(segments[:1], decoding, batch_size=1)
    decoded = time.perf_counter()
    served.model.renderer.render(result, seed=decoding.seed or 0)
    end = time.perf_counter()
    return (end - decoded) / (end - start)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every variant and level (≥ 5)")
    parser.add_argument("--requests", type=int, default=2, help="requests per client thread at each level")
    parser.add_argument("--max-codes", type=int, default=30, help="cap on codes per segment")
    parser.add_argument("--device", default="cpu", help="torch device of the model")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    decoding = DecodingConfig(seed=0, max_new_tokens=args.max_codes)
    with tempfile.TemporaryDirectory() as tmp:
        served = load_served(str(tiny_package(Path(tmp), 0)), LoadSettings(device=args.device))
        print(f"note: {served.label}")
        for variant in VARIANTS:  # warm-up: first calls allocate
            measure(served, decoding, variant, 4, 4)
        runs: dict[tuple[str, int], list[dict]] = {(v, c): [] for v in VARIANTS for c in CONCURRENCY}
        for rep in range(args.reps):
            for c in CONCURRENCY:
                for variant in VARIANTS if rep % 2 == 0 else reversed(VARIANTS):
                    runs[variant, c].append(measure(served, decoding, variant, c, max(4, c * args.requests)))
            print(f"repetition {rep + 1}/{args.reps} done", flush=True)
        share = statistics.median(second_stage_share(served, decoding) for _ in range(3))
    print(f"\n{args.reps} repetitions, medians (min–max); device {args.device}, --max-codes {args.max_codes}")
    print("| concurrency | variant | requests/s | p50 s | p95 s | segments/batch | GPT ms/segment |")
    print("|---|---|---|---|---|---|---|")
    for c in CONCURRENCY:
        for variant in VARIANTS:
            rs = runs[variant, c]
            cells = [spread([r[k] for r in rs]) for k in ("rps", "p50", "p95", "batch")]
            cells.append(spread([r["gpt_ms"] for r in rs], "{:.0f}"))
            print(f"| {c} | {variant} | " + " | ".join(cells) + " |")
    print("\n| concurrency | requests/s batched / one at a time |")
    print("|---|---|")
    for c in CONCURRENCY:
        ratios = [
            b["rps"] / s["rps"] for b, s in zip(runs["batched", c], runs["one at a time", c], strict=True)
        ]
        print(f"| {c} | {spread(ratios)}× |")
    print(f"\nsecond stage share of one segment's worker time: {share:.0%}")
    if args.json:
        args.json.write_text(json.dumps({f"{v}@{c}": r for (v, c), r in runs.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
