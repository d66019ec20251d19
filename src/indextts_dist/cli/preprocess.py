"""`indextts-dist preprocess` (and `preprocess/run.py` under torchrun): the distributed preprocess job."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..preprocess import PreprocessOptions

LAUNCH = """examples:
  # one process
  indextts-dist preprocess --audio-dir clips/ --out data/
  # 4 ranks on one machine
  torchrun --nproc_per_node 4 preprocess/run.py --audio-dir clips/ --out data/
  # 2 nodes (run on each, NODE_RANK 0/1)
  torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 1 --rdzv_backend c10d \\
      --rdzv_endpoint HOST:29400 --rdzv_id prep preprocess/run.py --audio-dir clips/ --out data/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PreprocessOptions(audio_dir=Path("."), out=Path("."))
    p.add_argument("--audio-dir", required=True, type=Path, help="folder of clips (wav/flac/mp3/ogg/m4a)")
    p.add_argument("--out", required=True, type=Path, help="output folder (shards, conditioning, reports)")
    p.add_argument("--transcripts", type=Path, help="CSV 'file,text' overriding ASR for its files")
    p.add_argument("--preset", choices=["tiny", "official-v2"], default=d.preset)
    p.add_argument("--weights-dir", type=Path, help="official weights folder (see README)")
    p.add_argument(
        "--whisper-model", help="faster-whisper model name or CTranslate2 folder (default: tiny.en)"
    )
    p.add_argument("--min-seconds", type=float, default=d.min_seconds)
    p.add_argument("--max-seconds", type=float, default=d.max_seconds)
    p.add_argument("--max-unk-share", type=float, default=d.max_unk_share)
    p.add_argument("--clips-per-shard", type=int, default=d.clips_per_shard)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--seed", type=int, default=d.seed)


def options_from_args(args: argparse.Namespace) -> PreprocessOptions:
    return PreprocessOptions(
        audio_dir=args.audio_dir,
        out=args.out,
        transcripts=args.transcripts,
        preset=args.preset,
        weights_dir=args.weights_dir,
        whisper_model=args.whisper_model,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        max_unk_share=args.max_unk_share,
        clips_per_shard=args.clips_per_shard,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="clips -> shards + global conditioning (torchrun-aware)",
        epilog=LAUNCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def print_summary(info: dict) -> None:
    counts = info["counts"]
    print(f"preprocess done in {info.get('elapsed_s', 0)} s ({info['preset']} preset)")
    print(f"  inputs {counts['inputs']}: accepted {counts['accepted']}, rejected {counts['rejected']}")
    for reason, n in counts["rejected_by_reason"].items():
        print(f"    {reason}: {n}")
    print(
        f"  audio: {info['audio_hours'] * 3600:.1f} s ({info['audio_hours']:.4f} h), "
        f"{info['codes_total']} codes"
    )
    markers = info["markers"]["counts"]
    print("  markers: " + (", ".join(f"{m} {n}" for m, n in markers.items()) or "none"))
    print(f"  <unk> share: {info['tokenizer_coverage']['unk_share_total']:.2%}")


def run(args: argparse.Namespace) -> int:
    from ..preprocess.job import run_preprocess

    info = run_preprocess(options_from_args(args))
    if info is not None:
        print_summary(info)
    return 0
