"""`indextts-dist demo`: what `make demo` runs — the pipeline end to end on the tiny preset.

Synthesizes an espeak-ng speaker corpus, preprocesses it with 2 ranks under torchrun (transcripts
with pause/filler markers, shards, ONE global conditioning), then generates codes for three texts
with that conditioning and the official decoding. Random weights: the codes are not speech.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..conditioning import load_conditioning
from ..generate import DecodingConfig
from ..generate.text_to_codes import CodeGenerator
from ..model import TINY_LABEL, build_model, preset
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
    p.add_argument("--out", default="demo_out", type=Path, help="output directory")
    p.add_argument("--clips", type=int, default=8, help="espeak-ng clips in the demo corpus")
    p.add_argument("--ranks", type=int, default=2, help="preprocess ranks (torchrun processes)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_torchrun_preprocess(audio: Path, data: Path, ranks: int) -> None:
    """The same command a user runs; one thread per rank so 2 ranks share 2 cores fairly."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
           "--master_port", str(_free_port()), "-m", "indextts_dist.cli.main", "preprocess",
           "--audio-dir", str(audio), "--out", str(data)]  # fmt: skip
    print(
        "$ torchrun --nproc_per_node",
        ranks,
        "preprocess/run.py --audio-dir",
        audio,
        "--out",
        data,
        flush=True,
    )
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def run(args: argparse.Namespace) -> int:
    from ..corpus import synthesize_corpus

    out: Path = args.out
    start = time.perf_counter()
    print(f"indextts-dist demo — {TINY_LABEL}")
    step(f"1. synthesize an espeak-ng speaker corpus ({args.clips} clips)")
    audio = out / "audio"
    clips = synthesize_corpus(audio, n_clips=args.clips, seed=args.seed)
    print(f"{len(clips)} clips in {audio}/ (ground truth in corpus.json)")

    step(f"2. preprocess with {args.ranks} ranks")
    data = out / "data"
    run_torchrun_preprocess(audio, data, args.ranks)

    step("3. generate codes with the global conditioning")
    cond = load_conditioning(data / "global_conditioning.safetensors", preset("tiny"))
    model = build_model("tiny", seed=args.seed, with_conditioning_encoders=False)
    decoding = DecodingConfig(seed=args.seed, max_new_tokens=200)
    results = CodeGenerator(model, tiny_tokenizer(), cond)(list(DEMO_TEXTS), decoding)
    written = write_outputs(results, decoding, out / "codes", TINY_LABEL)
    summary = []
    for path, r in zip(written, results, strict=True):
        print(f"  {r.text!r}\n    -> {r.normalized!r}: {len(r.text_ids)} text ids, {r.codes.numel()} codes")
        summary.append({"json": str(path), "text": r.text, "codes": int(r.codes.numel())})
    report = {"label": TINY_LABEL, "data": str(data), "outputs": summary}
    atomic_write_text(out / "summary.json", json.dumps(report, indent=1))
    step("done")
    print(f"corpus      {audio}/")
    print(f"dataset     {data}/ (shards, dataset_info.json, rejects.jsonl, transcripts_verbatim.csv)")
    cond_file = data / "global_conditioning.safetensors"
    print(f"conditioning {cond_file} (mean of {cond.metadata['num_clips']} clips)")
    print(f"codes       {out / 'codes'}/")
    print(f"{time.perf_counter() - start:.0f} s. Reminder: {TINY_LABEL}.")
    return 0
