"""`indextts-dist demo`: what `make demo` runs — today the GPT stage end to end on the tiny preset.

Until the preprocess/train stages exist, the demo makes a conditioning the way preprocess will (the
mean of per-clip speaker latents and emotion vectors from the model's own conditioning encoders)
from synthetic stand-in features, writes `global_conditioning.safetensors`, and generates codes for
three texts with the official decoding. Random weights: the codes are not speech.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..conditioning import GlobalConditioning, save_conditioning
from ..generate import DecodingConfig
from ..generate.text_to_codes import CodeGenerator
from ..model import TINY_LABEL, build_model
from ..text import tiny_tokenizer
from ..utils.atomic import atomic_write_text
from .generate import write_outputs

DEMO_TEXTS = (
    "Life finds a way.",
    "Well, [UH] I think we should, [UM] go to the store today.",
    "b-b-but I didn't mean it [PAUSE] really.",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the tiny preset (random weights)")
    p.add_argument("--out", default="demo_out", help="output directory")
    p.add_argument("--clips", type=int, default=6, help="synthetic stand-in clips for the conditioning")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


@torch.no_grad()
def synthetic_conditioning(model, clips: int, seed: int) -> GlobalConditioning:
    """Mean over clips of (speaker latents, emotion vector) from random 1024-d "features" of 2-6 s."""
    gen = torch.Generator().manual_seed(seed)
    latents, emos = [], []
    for _ in range(clips):
        frames = int(torch.randint(100, 300, (1,), generator=gen))
        feats = torch.randn(1, frames, 1024, generator=gen)
        lengths = torch.tensor([frames])
        latents.append(model.get_conditioning(feats, lengths)[0])
        emos.append(model.get_emo_vec(feats, lengths)[0])
    return GlobalConditioning(
        torch.stack(latents).mean(0),
        torch.stack(emos).mean(0),
        {"num_clips": str(clips), "method": "mean", "source": "synthetic stand-in features (demo)"},
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    start = time.perf_counter()
    print(f"== indextts-dist demo ({TINY_LABEL}) ==")
    model = build_model("tiny", seed=args.seed)
    tokenizer = tiny_tokenizer()
    cond = synthetic_conditioning(model, args.clips, args.seed)
    cond_path = save_conditioning(cond, out / "global_conditioning.safetensors")
    print(f"conditioning: {cond_path} (mean of {args.clips} stand-in clips)")
    decoding = DecodingConfig(seed=args.seed, max_new_tokens=200)
    results = CodeGenerator(model, tokenizer, cond)(list(DEMO_TEXTS), decoding)
    written = write_outputs(results, decoding, out / "codes", TINY_LABEL)
    summary = []
    for path, r in zip(written, results, strict=True):
        print(f"  {r.text!r}\n    -> {r.normalized!r}: {len(r.text_ids)} text ids, {r.codes.numel()} codes")
        summary.append({"json": str(path), "text": r.text, "codes": int(r.codes.numel())})
    atomic_write_text(out / "summary.json", json.dumps({"label": TINY_LABEL, "outputs": summary}, indent=1))
    print(f"outputs in {out}/ ({time.perf_counter() - start:.1f} s). Reminder: {TINY_LABEL}.")
    return 0
