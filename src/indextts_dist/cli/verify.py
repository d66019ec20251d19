"""`indextts-dist verify-reference`: recompute a reference file's outputs and report each one."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ..reference import ReferenceCheck, compare_outputs, load_reference
from ..reference.codec import CODEC_ATOL, recompute_codec, recompute_codec_v25
from ..reference.gpt import GPT_ATOL, recompute_gpt
from ..reference.gpt_v25 import recompute_gpt_v25
from ..reference.report import ReferenceFile
from ..reference.s2mel import S2MEL_ATOL, recompute_s2mel

Recompute = Callable[[ReferenceFile], dict[str, torch.Tensor]]

KINDS: dict[str, tuple[Recompute, float]] = {
    "gpt": (recompute_gpt, GPT_ATOL),
    "codec": (recompute_codec, CODEC_ATOL),
    "gpt-v2.5": (recompute_gpt_v25, GPT_ATOL),
    "codec-v2.5": (recompute_codec_v25, CODEC_ATOL),
    "s2mel": (recompute_s2mel, S2MEL_ATOL),
}
"""Stage name -> (recompute function, float tolerance)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-reference",
        help="recompute every output.* tensor of a reference file and compare",
        description="Rebuild the model from the JSON's config, load the file's model.* tensors strictly, "
        "recompute every output.* from the input.* tensors; exit 0 only if all match.",
    )
    # duplicates: add_argument calls look alike across commands; each names its own inputs.
    p.add_argument("file", help="reference tensors (.safetensors)")
    p.add_argument("--config", required=True, help="the reference's JSON (holds 'config')")
    p.add_argument(
        "--kind",
        required=True,
        choices=sorted(KINDS),
        help="which stage (and release) the file describes: gpt/codec/s2mel are v2, "
        "gpt-v2.5/codec-v2.5 are IndexTTS-2.5 (the config's missing constructor arguments, "
        "spk_cond_mode and downsample_scale, come from the kind)",
    )
    p.add_argument("--atol", type=float, default=None, help="float tolerance (default: the stage's own)")
    p.set_defaults(func=run)


def verify(file: str, config: str, kind: str, atol: float | None = None) -> list[ReferenceCheck]:
    recompute, default_atol = KINDS[kind]
    torch.manual_seed(0)
    ref = load_reference(file, config)
    return compare_outputs(ref.outputs, recompute(ref), default_atol if atol is None else atol)


def run(args: argparse.Namespace) -> int:
    checks = verify(args.file, args.config, args.kind, args.atol)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"FAIL {failed}/{len(checks)}" if failed else f"PASS {len(checks)}/{len(checks)}")
    return 1 if failed else 0
