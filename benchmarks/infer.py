"""Codes/s of package inference: merged adapter vs unmerged PEFT, batch 1 vs batch 8, in one run.

    .venv/bin/python benchmarks/infer.py                 # tiny package + mid-size (8 layers x 512)
    .venv/bin/python benchmarks/infer.py --codes 50 --greedy

Merged = what `load_package` gives (LoRA folded into the weights); unmerged = the base wrapped by
`PeftModel.from_pretrained` without merging (every targeted projection also runs its A and B).
Both are the model of a `LoadedModel` with the same conditioning prefix; decoding is timed on
pre-encoded texts, and the text front end (the same for both) is timed apart, per text.
Random weights and random adapters (B ≠ 0): the numbers are about speed only. The stop code's bias
is set very negative on the loaded models (never in the package), so every run generates exactly
--codes codes per text.
Decoding: the official defaults (3-beam beam-sample) unless --greedy. Each timing is the best of
--repeats, merged and unmerged interleaved so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from _common import matmul_peak
from generate import decode_flops, mid_size
from peft import PeftModel

from indextts_dist.conditioning import GlobalConditioning, save_conditioning
from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.inference.loaded import LoadedModel, load_package
from indextts_dist.lora import LoraSettings, apply_lora, load_merged
from indextts_dist.model import GPTConfig, UnifiedVoice, base_fingerprint, build_model, preset
from indextts_dist.text import TextTokenizer, tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import package_model

TEXTS = [
    "Well [UH] I think [PAUSE] we should go now, before it rains.",
    "So where were we? Right, let's start again from the top.",
    "Life finds a way, even when nobody expects it to happen.",
    "I mean [HMM] it's not that simple, you know, not at all.",
    "We waited [LONG] and then nothing happened for a while.",
    "Okay, so the plan is simple: we walk, we talk, we listen.",
    "Honestly [UM] I never thought it would work out this well.",
    "The train was late again, so we took the long way home.",
]


def random_adapter(base: UnifiedVoice, out: Path, seed: int = 0) -> Path:
    """A PEFT adapter with the recommended settings (r=32, alpha=64) and a random, non-zero B."""
    model = apply_lora(copy.deepcopy(base), LoraSettings(dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def unmerged(base: UnifiedVoice, adapter_dir: Path) -> UnifiedVoice:
    """The base with LoRA layers injected and NOT merged: the model PEFT trains and would serve."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to True")
        return PeftModel.from_pretrained(base, str(adapter_dir)).get_base_model().eval()


def no_stop(model: UnifiedVoice) -> UnifiedVoice:
    with torch.no_grad():
        model.mel_head.bias[model.cfg.stop_mel_token] = -1e4
    return model


def tiny_variants(tmp: Path) -> tuple[dict[str, LoadedModel], GPTConfig]:
    """A real tiny package: merged through `load_package`, unmerged from the package's adapter."""
    base = build_model("tiny", with_conditioning_encoders=False)
    gen = torch.Generator().manual_seed(1)
    fingerprint = base_fingerprint("tiny")
    cond = GlobalConditioning(
        torch.randn(32, 64, generator=gen),
        torch.randn(64, generator=gen),
        {"base_model_fingerprint": fingerprint},
    )
    save_conditioning(cond, tmp / "cond.safetensors")
    sf.write(tmp / "ref.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000)
    tiny_tokenizer()
    package = package_model(
        tmp / "package",
        adapter_dir=random_adapter(base, tmp / "adapter"),
        conditioning_path=tmp / "cond.safetensors",
        tokenizer_path=tiny_model_path(),
        gpt_config=preset("tiny"),
        preset="tiny",
        seed=0,
        base_fingerprint=fingerprint,
        params={},
        selection={},
        reference_clips=[tmp / "ref.wav"],
        dataset_info=None,
    )
    loaded = load_package(package)
    no_stop(loaded.model)
    plain = no_stop(unmerged(build_model("tiny", with_conditioning_encoders=False), package / "adapter"))
    return {
        "merged": loaded,
        "unmerged": LoadedModel(plain, loaded.tokenizer, loaded.conditioning),
    }, loaded.model.cfg


def mid_variants(tmp: Path) -> tuple[dict[str, LoadedModel], GPTConfig]:
    """8 layers x 512 with random weights; merged with `load_merged`, as `load_package` does."""
    cfg = mid_size()
    torch.manual_seed(0)
    base = UnifiedVoice(cfg, with_conditioning_encoders=False).eval()
    adapter = random_adapter(base, tmp / "mid-adapter")
    cond = GlobalConditioning(torch.randn(32, cfg.model_dim), torch.randn(cfg.model_dim))
    tokenizer = TextTokenizer(tiny_model_path())
    merged = no_stop(load_merged(copy.deepcopy(base), adapter).eval())
    plain = no_stop(unmerged(copy.deepcopy(base), adapter))
    return {
        "merged": LoadedModel(merged, tokenizer, cond),
        "unmerged": LoadedModel(plain, tokenizer, cond),
    }, cfg


def measure(
    gens: dict[str, LoadedModel], ids: list[list[int]], decoding: DecodingConfig, repeats: int
) -> dict[str, float]:
    """Best wall-clock seconds of decoding per variant, on pre-encoded texts: the text front end costs
    the same for both variants and is timed apart (`front_end_seconds`). Every run must produce
    exactly the requested codes."""
    best = dict.fromkeys(gens, float("inf"))
    for _ in range(repeats):
        for name, gen in gens.items():
            start = time.perf_counter()
            result = generate_codes(gen.model, gen.prefix, ids, decoding)
            best[name] = min(best[name], time.perf_counter() - start)
            count = sum(c.numel() for c in result.codes)
            assert count == decoding.max_new_tokens * len(ids), (name, count)
    return best


def front_end_seconds(gen: LoadedModel, texts: list[str]) -> float:
    """Per text, what `LoadedModel` spends outside the model: it encodes, then normalizes again."""
    gen.tokenizer.encode(texts[0])  # warm-up: the normalizer sets itself up on first use
    start = time.perf_counter()
    for text in texts:
        gen.tokenizer.encode(text)
        gen.tokenizer.prepare(text)
    return (time.perf_counter() - start) / len(texts)


def report(name: str, gens: dict[str, LoadedModel], cfg: GPTConfig, args: argparse.Namespace, peak: float):
    decoding = (
        DecodingConfig.greedy(args.codes, seed=0)
        if args.greedy
        else DecodingConfig(seed=0, max_new_tokens=args.codes)
    )
    check = DecodingConfig.greedy(16)  # also the warm-up
    same = [[r.codes.tolist() for r in gen(TEXTS[:2], check)] for gen in gens.values()]
    agree = "yes" if same[0] == same[1] else "NO"
    print(f"{name:<9} merged and unmerged give the same 16 greedy codes for 2 texts (LoadedModel): {agree}")
    ids = [gens["merged"].tokenizer.encode(t) for t in TEXTS]
    rates: dict[tuple[str, int], float] = {}
    for batch in (1, 8):
        seconds = measure(gens, ids[:batch], decoding, args.repeats)
        prompt = 34 + max(len(i) for i in ids[:batch]) + 3
        rows = batch * decoding.num_beams
        for variant, t in seconds.items():
            rates[variant, batch] = batch * args.codes / t
            flops = decode_flops(cfg, prompt, args.codes, rows) / t
            print(
                f"{name:<9} {variant:<8} batch={batch}: {rates[variant, batch]:8.1f} codes/s "
                f"({t:6.2f} s; {flops / 1e9:6.2f} GFLOP/s of the base = {100 * flops / peak:5.1f}% of peak)"
            )
    for batch in (1, 8):
        ratio = rates["merged", batch] / rates["unmerged", batch]
        print(f"{name:<9} merged / unmerged, batch {batch}: x{ratio:.2f}")
    for variant in ("merged", "unmerged"):
        print(
            f"{name:<9} batch 8 / batch 1 throughput, {variant}: x{rates[variant, 8] / rates[variant, 1]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=100, help="codes generated per text")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of 3-beam beam-sample")
    parser.add_argument("--only", choices=["tiny", "mid-size"], help="run one model size only")
    args = parser.parse_args()
    peak = matmul_peak()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s; "
        f"{'greedy' if args.greedy else 'official 3-beam beam-sample'}, {args.codes} codes per text"
    )
    print("random weights and adapters (r=32, alpha=64): speed only, not speech")
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        if args.only in (None, "tiny"):
            gens, cfg = tiny_variants(Path(tmp))
            per_text = front_end_seconds(gens["merged"], TEXTS)
            print(f"text front end (normalize + BPE, as LoadedModel runs it): {1000 * per_text:.1f} ms/text")
            report("tiny", gens, cfg, args, peak)
        if args.only in (None, "mid-size"):
            report("mid-size", *mid_variants(Path(tmp)), args, peak)


if __name__ == "__main__":
    main()
