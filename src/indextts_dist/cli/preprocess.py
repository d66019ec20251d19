"""`indextts-dist preprocess` (and `preprocess/run.py` under torchrun): the distributed preprocess job."""

from __future__ import annotations

import argparse

from ..preprocess import PreprocessOptions
from .dataclass_args import add_dataclass_arguments, dataclass_from_args

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
    add_dataclass_arguments(p, PreprocessOptions)


def options_from_args(args: argparse.Namespace) -> PreprocessOptions:
    return dataclass_from_args(PreprocessOptions, args)


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
