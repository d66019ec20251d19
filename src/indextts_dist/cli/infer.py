"""`indextts-dist infer`: a registered (or local) pattern model -> codes, GPT latents and wavs per text."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..inference.segment import MAX_SEGMENT_TOKENS
from .generate import (
    add_decoding_args,
    add_model_source_args,
    add_placement_args,
    add_reference_clip_arg,
    decoding_from_args,
    placement_from_args,
    read_texts,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="generate with a registered pattern model (models:/NAME@ALIAS or a package folder)",
    )
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder")
    p.add_argument("--text", action="append", default=[], help="a text (repeatable)")
    p.add_argument("--texts", type=Path, help="file with one text per line")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_model_source_args(p)
    p.add_argument(
        "--segment-tokens", type=int, default=MAX_SEGMENT_TOKENS, help="longest text segment (official: 120)"
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="segments decoded together (every door's default: 8)"
    )
    p.add_argument("--codes-only", action="store_true", help="skip the second stage (no wav)")
    add_reference_clip_arg(p)
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.loaded import LoadedModel
    from ..inference.outputs import write_synthesis

    placement = placement_from_args(args)  # a bad --device/--dtype fails before any download
    texts = read_texts(args)
    tts = LoadedModel.load(
        args.model, tracking_uri=args.mlflow_uri, cache_dir=args.cache_dir, weights_dir=args.weights_dir,
        segment_tokens=args.segment_tokens, device=str(placement.device), dtype=placement.dtype_name,
    ).with_reference_clip(args.reference_clip)  # fmt: skip
    decoding = decoding_from_args(args)
    results = tts(texts, decoding, batch_size=args.batch_size)
    renderer = None if args.codes_only else tts.renderer  # no second stage: one line, nothing written
    written = write_synthesis(results, decoding, args.out, str(args.model), tts.label)
    for path, r in zip(written, results, strict=True):
        capped = "" if r.all_stopped else " (a segment hit the cap)"
        line = f"{path.with_suffix('')}: {len(r.segments)} segment(s), {r.codes.numel()} codes{capped}"
        if renderer is not None:
            wav = renderer.render(r, seed=args.seed)
            renderer.write(path.with_suffix(".wav"), wav)
            line += f", {wav.shape[0] / 22050:.2f} s of audio"
        print(line)
    if tts.label:
        print(f"note: {tts.label}")
    return 0
