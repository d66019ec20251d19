"""Preprocess throughput: per-stage speed on one rank, and the scaling from 1 to 2 ranks, in one run.

    .venv/bin/python benchmarks/preprocess.py --clips 16

Synthesizes an espeak-ng corpus, then
1. runs every clip through the stages in-process (tiny preset, bundled Whisper tiny.en) and prints,
   per stage (decode, asr, text, features, codec, conditioning), audio-seconds per wall-second and
   clips/s;
2. runs the whole job under torchrun with 1 and then 2 ranks (one thread each) and prints clips/s per
   rank, total clips/s and the 2-vs-1 speed-up.
Tiny preset: random w2v-BERT/codec/GPT weights, so the feature/codec figures are for tiny models;
decode and ASR are the real thing.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from indextts_dist.corpus import synthesize_corpus
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.clip import StageTimer, process_clip
from indextts_dist.preprocess.components import load_components
from indextts_dist.preprocess.listing import list_clips

REPO = Path(__file__).resolve().parents[1]


def stage_speeds(audio: Path, work: Path) -> None:
    torch.set_num_threads(1)
    comps = load_components("tiny", None, None)
    comps.transcriber  # load Whisper outside the timed region  # noqa: B018
    opts = PreprocessOptions(audio_dir=audio, out=work)
    timer, seconds, done = StageTimer(), 0.0, 0
    for clip in list_clips(audio):
        sample = process_clip(clip, comps, opts, None, timer)
        seconds += sample.meta["duration_s"]
        done += 1
    print(f"per stage, 1 rank, 1 thread ({done} clips, {seconds:.1f} s of audio):")
    for stage, spent in timer.seconds.items():
        print(f"  {stage:<13} {seconds / spent:9.1f} audio-s/wall-s {done / spent:9.2f} clips/s")
    total = sum(timer.seconds.values())
    print(f"  {'all stages':<13} {seconds / total:9.1f} audio-s/wall-s {done / total:9.2f} clips/s")


def job_seconds(audio: Path, out: Path, nproc: int) -> tuple[float, list[str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    job = [str(REPO / "preprocess" / "run.py"), "--audio-dir", str(audio), "--out", str(out)]
    cmd = [*launcher, "--master_port", str(port), *job]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    elapsed = time.perf_counter() - start
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    return elapsed, re.findall(r"rank \d+: .*clips/s", res.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio"
        synthesize_corpus(audio, n_clips=args.clips, seed=1)
        stage_speeds(audio, Path(tmp) / "stages")
        t1, lines1 = job_seconds(audio, Path(tmp) / "one", 1)
        t2, lines2 = job_seconds(audio, Path(tmp) / "two", 2)
    print("whole job under torchrun (wall time includes start-up and model loading):")
    for line in lines1 + lines2:
        print(f"  {line}")
    print(f"  1 rank : {t1:6.1f} s  {args.clips / t1:5.2f} clips/s")
    print(f"  2 ranks: {t2:6.1f} s  {args.clips / t2:5.2f} clips/s")
    print(f"  speed-up 2 vs 1 ranks: x{t1 / t2:.2f}")


if __name__ == "__main__":
    main()
