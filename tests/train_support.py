"""Helpers shared by the training tests: a small preprocessed dataset and the launchers a user runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from indextts_dist.corpus import synthesize_corpus
from indextts_dist.distributed import World
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"
FAST = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.0", "--warmup-steps", "2",
        "--max-tokens-per-batch", "700", "--learning-rate", "5e-3"]  # fmt: skip
STEP = re.compile(r"\[train\] step (\d+) loss ([0-9.]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(root: Path, clips_per_shard: int, n_clips: int = 8) -> Path:
    """espeak-ng clips with their transcripts, preprocessed by one process into `clips_per_shard` units."""
    clips = synthesize_corpus(root / "audio", n_clips=n_clips, seed=3)
    csv = root / "transcripts.csv"
    csv.write_text("file,text\n" + "".join(f'{c.path.name},"{c.expected}"\n' for c in clips))
    opts = PreprocessOptions(
        audio_dir=root / "audio", out=root / "data", transcripts=csv, clips_per_shard=clips_per_shard
    )
    run_preprocess(opts, World(0, 1, 0))
    return root / "data"


def launch_command(engine: str, processes: int, config: Path | None = None) -> list[str]:
    """The launcher line: DeepSpeed (the CPU config, or `config`), DDP (`--multi_gpu`) or plain python."""
    if engine == "single":
        return [sys.executable]
    head = [str(ACCELERATE), "launch"]
    if engine == "deepspeed":
        head += ["--config_file", str(config or REPO / "accelerate_config.cpu.yaml")]
    elif processes > 1:
        head += ["--multi_gpu"]
    return [*head, "--num_processes", str(processes), "--main_process_port", str(free_port())]


def launch(args: list[str], *, engine: str = "deepspeed", processes: int = 2, background: bool = False,
           config: Path | None = None):  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    cmd = [*launch_command(engine, processes, config), str(REPO / "launch" / "train.py"), *args]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def step_losses(log: str) -> dict[int, float]:
    return {int(m[1]): float(m[2]) for m in STEP.finditer(log)}


def adapter_digests(log: str) -> dict[str, str]:
    return dict(re.findall(r"\[train\] rank (\d+) adapter sha256 (\w+)", log))


def _preprocess_rank(rank: int, port: int, opts: PreprocessOptions, world: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        run_preprocess(opts, World(rank, world, rank))
    finally:
        dist.destroy_process_group()


def preprocess_ranks(opts: PreprocessOptions, world: int = 2) -> Path:
    """`run_preprocess` on `world` spawned gloo ranks (what torchrun gives a user's job)."""
    import torch.multiprocessing as mp

    mp.start_processes(_preprocess_rank, args=(free_port(), opts, world), nprocs=world, start_method="spawn")
    return opts.out
