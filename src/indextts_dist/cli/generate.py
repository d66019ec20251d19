"""`indextts-dist generate`: text -> semantic codes with a base GPT, a tokenizer and a conditioning file.

No package and no adapter: the base (`--weights`, or the tiny preset's seed-0 weights) runs with the
given conditioning through the same `LoadedModel` as `infer` (`inference.loaded.load_parts`), so a
text gives the codes `diagnose` reports for the base of a package made on that conditioning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError, MissingFileError
from ..generate import DecodingConfig
from ..placement import DTYPES, Placement, resolve_placement
from .dataclass_args import add_dataclass_arguments, dataclass_from_args


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """`--device/--dtype`, shared by every command that runs a model. Checked by
    `resolve_placement` (not argparse `choices`) so a bad value is the same one-line error, exit 2,
    as in the Python API."""
    g = p.add_argument_group("placement")
    g.add_argument(
        "--device", help="torch device: cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)"
    )
    g.add_argument("--dtype", help=f"{' | '.join(DTYPES)} (default: float32)")


def add_reference_clip_arg(p: argparse.ArgumentParser) -> None:
    """`--reference-clip`, shared by the commands that run a package (infer, evaluate)."""
    p.add_argument(
        "--reference-clip",
        type=Path,
        help="generate with this clip's own conditioning (required by a model trained with "
        "--conditioning per-clip, the guide's old way; default: the package's global conditioning)",
    )


def placement_from_args(args: argparse.Namespace) -> Placement:
    return resolve_placement(args.device, args.dtype)


DECODING_RENAME = {"max_new_tokens": "max-codes"}
DECODING_INTERNAL = ("do_sample", "length_penalty", "penalize_prompt_ids", "use_kv_cache")
"""Settings that define the official decoding itself (or its validation baseline): not flags."""


def add_model_source_args(p: argparse.ArgumentParser) -> None:
    """Where a registered model comes from: the tracking server, the official base weights and the
    download cache (`infer` and `serve` take the same three)."""
    p.add_argument("--mlflow-uri", help="tracking server (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--weights-dir", type=Path, help="official base weights (default: $INDEXTTS_WEIGHTS_DIR)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/indextts-dist-models"),
        help="where registry models are downloaded, one folder per version "
        "(default: .cache/indextts-dist-models)",
    )


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    """Every decoding setting is an option, derived from `DecodingConfig` (help = its docstrings);
    defaults are the official ones (SPEC §f), except that the command line fixes the seed at 0 so
    that a run repeats."""
    g = p.add_argument_group("decoding (defaults: official IndexTTS2 inference)")
    g.add_argument("--greedy", action="store_true", help="argmax decoding, one beam, no penalty")
    add_dataclass_arguments(
        g, DecodingConfig, rename=DECODING_RENAME, exclude=DECODING_INTERNAL, defaults={"seed": 0}
    )


def decoding_from_args(args: argparse.Namespace) -> DecodingConfig:
    if args.greedy:
        return DecodingConfig.greedy(args.max_codes, mel_positions=args.mel_positions, seed=args.seed)
    return dataclass_from_args(DecodingConfig, args, rename=DECODING_RENAME)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate semantic codes for texts from local files")
    p.add_argument("--preset", choices=["tiny", "mini", "official-v2", "tiny-v2.5", "official-v2.5"],
                   default="tiny", help="tiny, tiny-v2.5: seeded random weights; official-v2, "
                   "official-v2.5: --weights and --bpe")  # fmt: skip
    p.add_argument("--weights", help="gpt.pth / .safetensors (required for the official presets)")
    p.add_argument("--bpe", help="SentencePiece model (official bpe.model; 2.5: the tiktoken file, "
                   "required); default for tiny: the tiny BPE")  # fmt: skip
    p.add_argument("--language", help="2.5: the texts' language (`<|lang|>`, language row); default en")
    p.add_argument("--conditioning", required=True, help="global_conditioning.safetensors")
    p.add_argument("--text", action="append", default=[], help="a text (repeatable)")
    p.add_argument("--texts", help="file with one text per line")
    p.add_argument("--out", required=True, help="output directory")
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def read_texts(args: argparse.Namespace) -> list[str]:
    """`--text` (repeatable) then the non-blank lines of `--texts FILE`; shared with `infer`."""
    texts = list(args.text)
    if args.texts:
        path = Path(args.texts)
        if not path.is_file():
            raise MissingFileError(f"{path}: texts file not found")
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise InputError("no text given (use --text or --texts)")
    return texts


def run(args: argparse.Namespace) -> int:
    from ..inference.loaded import load_parts
    from ..inference.outputs import write_synthesis

    placement = placement_from_args(args)
    texts = read_texts(args)
    tts = load_parts(
        args.preset, args.conditioning, weights=args.weights, tokenizer=args.bpe, placement=placement,
        language=args.language,
    )  # fmt: skip
    decoding = decoding_from_args(args)
    results = tts(texts, decoding, latents=False)
    model = args.weights or f"{args.preset} preset (seed-0 weights)"
    for path, r in zip(
        write_synthesis(results, decoding, Path(args.out), model, tts.label), results, strict=True
    ):
        capped = "" if r.all_stopped else " (hit the cap)"
        print(f"{path.with_suffix('')}: {len(r.segments)} segment(s), {r.codes.numel()} codes{capped}")
    if tts.label:
        print(f"note: {tts.label}")
    return 0
