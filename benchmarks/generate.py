"""Codes/s of KV-cached decoding vs recomputing the whole sequence each step, measured in one run.

    .venv/bin/python benchmarks/generate.py            # tiny preset + mid-size (8 layers x 512)
    .venv/bin/python benchmarks/generate.py --codes 300 --batch 4

Random weights (the tiny preset and a random mid-size config): the numbers are about speed only.
The stop code is suppressed so every run generates exactly --codes codes. Also prints the cached
path's achieved FLOP/s against a matmul peak measured on this machine in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import matmul_peak

from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.model import GPTConfig, UnifiedVoice, preset


def mid_size() -> GPTConfig:
    base = preset("tiny").to_dict()
    base.update(model_dim=512, heads=8, layers=8, max_mel_tokens=1815, max_text_tokens=600)
    base["number_mel_codes"], base["start_mel_token"], base["stop_mel_token"] = 8194, 8192, 8193
    base["number_text_tokens"] = 12000
    return GPTConfig.from_dict(base)


def decode_flops(cfg: GPTConfig, prompt: int, codes: int, batch: int) -> float:
    """Forward FLOPs of cached decoding: 2 x weights per token, plus attention over the growing context."""
    d = cfg.model_dim
    per_layer_weights = 12 * d * d
    head = d * cfg.number_mel_codes
    tokens = batch * (prompt + codes)
    attention = sum(4 * d * (prompt + i) for i in range(codes)) * cfg.layers * batch
    prefill_attention = 2 * d * prompt * prompt * cfg.layers * batch
    weights = 2 * tokens * per_layer_weights * cfg.layers + 2 * batch * codes * head
    return weights + attention + prefill_attention


def timed(model: UnifiedVoice, prefix, texts, cfg: DecodingConfig, repeats: int = 1) -> tuple[float, int]:
    """Best of `repeats` wall-clock runs (the least disturbed by other load on the machine)."""
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = generate_codes(model, prefix, texts, cfg)
        best = min(best, time.perf_counter() - start)
        count = sum(c.numel() for c in result.codes)
    return best, count


def bench(name: str, cfg: GPTConfig, codes: int, batch: int, peak: float) -> None:
    torch.manual_seed(0)
    model = UnifiedVoice(cfg, with_conditioning_encoders=False).eval()
    with torch.no_grad():
        model.mel_head.bias[cfg.stop_mel_token] = -1e4  # run to the cap
    prefix = torch.randn(34, cfg.model_dim)
    texts = [list(range(2, 42))] * batch
    decoding = DecodingConfig.greedy(codes)
    timed(model, prefix, texts, DecodingConfig.greedy(4))  # warm-up
    t_cache, n_cache = timed(model, prefix, texts, decoding, repeats=3)
    t_full, n_full = timed(model, prefix, texts, DecodingConfig.greedy(codes, use_kv_cache=False))
    assert n_cache == n_full == codes * batch
    flops = decode_flops(cfg, 34 + 42 + 1, codes, batch) / t_cache
    print(
        f"{name:<10} layers={cfg.layers:<2} dim={cfg.model_dim:<4} batch={batch} codes={codes}: "
        f"kv-cache {n_cache / t_cache:8.1f} codes/s | recompute {n_full / t_full:8.1f} codes/s | "
        f"speed-up x{t_full / t_cache:5.2f} | cached {flops / 1e9:6.2f} GFLOP/s = "
        f"{100 * flops / peak:5.1f}% of matmul peak"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    peak = matmul_peak()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, matmul peak {peak / 1e9:.1f} GFLOP/s")
    print("random weights: speed only, not speech")
    bench("tiny", preset("tiny"), args.codes, args.batch, peak)
    bench("mid-size", mid_size(), args.codes, args.batch, peak)


if __name__ == "__main__":
    main()
