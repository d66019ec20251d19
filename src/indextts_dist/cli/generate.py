"""`indextts-dist generate`: text -> semantic codes with a GPT stage, a tokenizer and a conditioning file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..conditioning import ConditioningError, GlobalConditioning, load_conditioning
from ..generate import DecodingConfig
from ..generate.text_to_codes import CodeGenerator, CodesForText
from ..inference.placement import DTYPES, Placement, host_numpy, resolve_placement
from ..model import TINY_LABEL, base_fingerprint, build_model, preset
from ..text import TextTokenizer, tiny_tokenizer
from ..utils.atomic import atomic_write_bytes, atomic_write_text


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """`--device/--dtype`, shared by every command that runs a model. Checked by
    `resolve_placement` (not argparse `choices`) so a bad value is the same one-line error, exit 2,
    as in the Python API."""
    g = p.add_argument_group("placement")
    g.add_argument(
        "--device", help="torch device: cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)"
    )
    g.add_argument("--dtype", help=f"{' | '.join(DTYPES)} (default: float32)")


def placement_from_args(args: argparse.Namespace) -> Placement:
    return resolve_placement(args.device, args.dtype)


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    """Every decoding setting is an option; defaults are the official ones (SPEC §f)."""
    d = DecodingConfig()
    g = p.add_argument_group("decoding (defaults: official IndexTTS2 inference)")
    g.add_argument("--greedy", action="store_true", help="argmax decoding, one beam, no penalty")
    g.add_argument("--num-beams", type=int, default=d.num_beams)
    g.add_argument("--top-k", type=int, default=d.top_k)
    g.add_argument("--top-p", type=float, default=d.top_p)
    g.add_argument("--temperature", type=float, default=d.temperature)
    g.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty)
    g.add_argument("--max-codes", type=int, default=d.max_new_tokens, help="cap on generated codes")
    g.add_argument(
        "--mel-positions",
        choices=["official", "training"],
        default=d.mel_positions,
        help="official: the +1 position skip of the released inference; training: training positions",
    )
    g.add_argument("--seed", type=int, default=0)


def decoding_from_args(args: argparse.Namespace) -> DecodingConfig:
    if args.greedy:
        return DecodingConfig.greedy(args.max_codes, mel_positions=args.mel_positions, seed=args.seed)
    return DecodingConfig(
        num_beams=args.num_beams,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_codes,
        mel_positions=args.mel_positions,
        seed=args.seed,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate semantic codes for texts from local files")
    p.add_argument("--preset", choices=["tiny", "official-v2"], default="tiny")
    p.add_argument("--weights", help="gpt.pth / .safetensors (required for official-v2)")
    p.add_argument("--bpe", help="SentencePiece model (official bpe.model); default for tiny: the tiny BPE")
    p.add_argument("--conditioning", required=True, help="global_conditioning.safetensors")
    p.add_argument("--text", action="append", default=[], help="a text (repeatable)")
    p.add_argument("--texts", help="file with one text per line")
    p.add_argument("--out", required=True, help="output directory")
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def write_outputs(results: list[CodesForText], decoding: DecodingConfig, out: Path, label: str) -> list[Path]:
    """Per text: `NNN.codes.npy` (int32) and `NNN.json` (text, normalized text, counts, settings)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, r in enumerate(results):
        stem = out / f"{i:03d}"
        buf = _npy_bytes(host_numpy(r.codes, np.int32))
        atomic_write_bytes(stem.with_suffix(".codes.npy"), buf)
        info = {
            "text": r.text,
            "text_normalized": r.normalized,
            "text_ids": r.text_ids,
            "code_count": int(r.codes.numel()),
            "stopped": r.stopped,
            "decoding": decoding.to_dict(),
            "model": label,
        }
        atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=1, ensure_ascii=False))
        written.append(stem.with_suffix(".json"))
    return written


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def check_conditioning_base(
    conditioning: GlobalConditioning, path: str, preset_name: str, weights: str | None
) -> None:
    """The conditioning must have been computed on the base `generate` runs: a prefix from another
    GPT is noise to this one (codes come out, patterns do not). The tiny base is the seed-0 one."""
    made_with = conditioning.metadata.get("base_model_fingerprint")
    if not made_with:
        raise ConditioningError(
            f"{path}: conditioning records no base_model_fingerprint, so it cannot be checked against "
            "the base model; recompute it with `indextts-dist preprocess`"
        )
    have = base_fingerprint(preset_name, weights)
    if made_with != have:
        base = weights or f"the {preset_name} preset's seed-0 weights"
        raise ConditioningError(
            f"{path}: conditioning was computed on base {made_with[:12]}…, but generate runs {base} "
            f"({have[:12]}…); pass the --weights it was made with, or recompute it"
        )


def run(args: argparse.Namespace) -> int:
    placement = placement_from_args(args)
    texts = list(args.text)
    if args.texts:
        texts += [line.strip() for line in Path(args.texts).read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError("no text given (use --text or --texts)")
    model = build_model(args.preset, args.weights, with_conditioning_encoders=False)
    if args.bpe:
        tokenizer = TextTokenizer(args.bpe)
    elif args.preset == "tiny":
        tokenizer = tiny_tokenizer()
    else:
        raise ValueError("--bpe is required for the official-v2 preset")
    conditioning = load_conditioning(args.conditioning, preset(args.preset))
    check_conditioning_base(conditioning, args.conditioning, args.preset, args.weights)
    decoding = decoding_from_args(args)
    placement.module(model)
    results = CodeGenerator(model, tokenizer, conditioning)(texts, decoding)
    label = TINY_LABEL if args.preset == "tiny" and not args.weights else f"{args.preset} ({args.weights})"
    for path, r in zip(write_outputs(results, decoding, Path(args.out), label), results, strict=True):
        print(f"{path.with_suffix('')}: {r.codes.numel()} codes{'' if r.stopped else ' (hit the cap)'}")
    if args.preset == "tiny":
        print(f"note: {TINY_LABEL}")
    return 0
