"""Training-step throughput: our step vs the seed fork's way, on the same data, in one run.

    .venv/bin/python benchmarks/train_step.py                 # small config (4 layers x 256), CPU
    .venv/bin/python benchmarks/train_step.py --layers 8 --dim 512 --samples 96

Data: synthetic samples whose clip lengths spread uniformly over 1-15 s like real sets (50 codes/s,
~3 text tokens/s), identical for both variants.
- ours: the GPT without conditioning encoders + LoRA, the global conditioning as one constant
  prefix, length-bucketed batches under a token budget, the packed (padding-invariant) forward;
- seed fork: the whole UnifiedVoice in memory (+ LoRA), a per-sample conditioning tensor loaded from
  disk with every sample, random batches of a fixed size padded to the longest sample, the official
  (padded) forward.
Each variant runs in its own process so that peak memory (max RSS on CPU, max allocated on CUDA) is
its own. Printed: tokens/s (real tokens: text + codes), padding fraction, peak memory, the ratios,
and our achieved FLOP/s as a fraction of a matmul peak measured in the same run. Random weights.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import matmul_peak

from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import GPTConfig, UnifiedVoice, preset
from indextts_dist.train.batching import cut_batches
from indextts_dist.train.loss import pattern_loss


def config(layers: int, dim: int) -> GPTConfig:
    """A narrower backbone, but the official conditioning encoders (what the fork keeps in memory)."""
    base = preset("tiny").to_dict()
    official = preset("official-v2").to_dict()
    base.update(model_dim=dim, heads=max(1, dim // 64), layers=layers, max_mel_tokens=800)
    base.update(
        condition_module=official["condition_module"], emo_condition_module=official["emo_condition_module"]
    )
    return GPTConfig.from_dict(base)


def synthetic_samples(n: int, cfg: GPTConfig, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        seconds = rng.uniform(1, 15)
        text = rng.integers(2, cfg.number_text_tokens, max(2, int(3 * seconds)))
        codes = rng.integers(0, cfg.codebook_size, int(50 * seconds))
        samples.append((text, codes))
    return samples


def pad(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
    return out, torch.tensor([len(r) for r in rows])


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = config(args.layers, args.dim)
    samples = synthetic_samples(args.samples, cfg)
    ours = variant == "ours"
    model = UnifiedVoice(cfg, with_conditioning_encoders=not ours)
    peft = apply_lora(model, LoraSettings(rank=16, alpha=32, dropout=0.0)).to(device).train()
    gpt = peft.get_base_model()
    optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-4)
    prefix = torch.randn(1, cfg.prefix_rows, cfg.model_dim, device=device)
    lengths = [(len(t), len(c)) for t, c in samples]
    if ours:
        batches = cut_batches(lengths, args.max_tokens, cfg.prefix_rows)
        random.Random(0).shuffle(batches)
    else:
        order = list(range(len(samples)))
        random.Random(0).shuffle(order)
        batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        if not ours:  # the fork stores one conditioning per sample and loads it with the sample
            for i in range(len(samples)):
                np.save(Path(tmp) / f"{i}_cond.npy", np.random.randn(32, cfg.model_dim).astype(np.float32))
                np.save(Path(tmp) / f"{i}_emo.npy", np.random.randn(cfg.model_dim).astype(np.float32))
        real = padded = 0
        start = time.perf_counter()
        for indices in batches:
            text, text_len = pad([samples[i][0] for i in indices])
            codes, code_len = pad([samples[i][1] for i in indices])
            text, text_len, codes, code_len = (t.to(device) for t in (text, text_len, codes, code_len))
            if ours:
                out = gpt.forward_packed(prefix, text, text_len, codes, code_len)
            else:
                cond = torch.stack([torch.from_numpy(np.load(Path(tmp) / f"{i}_cond.npy")) for i in indices])
                emo = torch.stack([torch.from_numpy(np.load(Path(tmp) / f"{i}_emo.npy")) for i in indices])
                out = gpt(gpt.build_prefix(cond.to(device), emo.to(device)), text, text_len, codes, code_len)
            loss = pattern_loss(out, text_len, code_len).total
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            real += int(text_len.sum() + code_len.sum())
            padded += len(indices) * (text.size(1) + codes.size(1))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    backbone = sum(p.numel() for n, p in gpt.named_parameters() if n.startswith("gpt.") or "head" in n)
    # Frozen base: forward (2 FLOP/param/token) + backward to inputs (2), attention ignored (small here).
    flops = 4 * backbone * (padded + 34 * sum(len(b) for b in batches))
    return {
        "variant": variant,
        "tokens_per_s": real / elapsed,
        "padding_fraction": 1 - real / padded,
        "peak_mb": peak_memory_mb(),
        "flops_per_s": flops / elapsed,
        "steps": len(batches),
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=4096, help="our token budget per batch")
    parser.add_argument("--batch-size", type=int, default=4, help="the fork's fixed batch size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variant", choices=["ours", "fork"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    results = {}
    for variant in ("ours", "fork"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    ours, fork = results["ours"], results["fork"]
    print(f"config: {args.layers} layers x {args.dim}, {args.samples} samples (1-15 s), random weights")
    for r in (ours, fork):
        print(
            f"  {r['variant']:<5} {r['tokens_per_s']:9.0f} tokens/s  padding {r['padding_fraction']:6.1%}  "
            f"peak {r['peak_mb']:7.0f} MB  {r['steps']} steps in {r['seconds']:.1f} s"
        )
    print(f"speed-up ours/fork: x{ours['tokens_per_s'] / fork['tokens_per_s']:.2f}")
    print(f"peak memory ours/fork: {ours['peak_mb'] / fork['peak_mb']:.2f}")
    print(
        f"our achieved {ours['flops_per_s'] / 1e9:.1f} GFLOP/s = {ours['flops_per_s'] / peak:.1%} "
        f"of the measured matmul peak ({peak / 1e9:.1f} GFLOP/s)"
    )


if __name__ == "__main__":
    main()
