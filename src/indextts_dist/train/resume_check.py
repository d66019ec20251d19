"""What a checkpoint's position in the data means, and the refusal to resume where it means else.

A checkpoint records "micro-batch m of epoch e, optimizer step k". That position lands on the same
data, and step k on the same learning rate, only under the same plan: the same world size, token
budget, accumulation, seed, epochs, warm-up, step cap and training split. DataLoader workers do not
change the plan (`stream` keeps plan order), so they may differ.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..dataset import DatasetError, DatasetManifest
from .options import TrainOptions

__all__ = ["ResumeMismatch", "check_resumable", "run_layout"]

_FLAGS = {
    "world_size": "processes",
    "max_tokens_per_batch": "--max-tokens-per-batch",
    "grad_accum": "--grad-accum",
    "seed": "--seed",
    "epochs": "--epochs",
    "warmup_steps": "--warmup-steps",
    "max_steps": "--max-steps",
    "train_split": "training split (sha256 of its keys)",
    "conditioning": "--conditioning",
    "method": "--method",
}


class ResumeMismatch(DatasetError):
    """A checkpoint made under another data plan than this run's."""


def run_layout(opts: TrainOptions, world: int, manifest: DatasetManifest) -> dict[str, object]:
    """Everything that fixes which data and learning rate a step position stands for."""
    keys = "\n".join(sorted(s.key for s in manifest.train_samples))
    return {
        "world_size": world,
        "max_tokens_per_batch": opts.optim.max_tokens_per_batch,
        "grad_accum": opts.optim.grad_accum,
        "seed": opts.seed,
        "epochs": opts.optim.epochs,
        "warmup_steps": opts.optim.warmup_steps,
        "max_steps": opts.max_steps,
        "train_split": hashlib.sha256(keys.encode()).hexdigest()[:16],
        "conditioning": opts.conditioning,
        "method": opts.method,
    }


_ADDED_LATER = {"conditioning": "global", "method": "lora"}
"""Layout entries newer than some checkpoints: an older checkpoint was made with these values."""


def check_resumable(checkpoint: Path, saved: dict | None, current: dict) -> None:
    """Raise a one-line error naming each setting that differs between checkpoint and this run."""
    if not saved:
        raise ResumeMismatch(f"{checkpoint}: written by an older version (no data plan); start a new --out")
    diffs = [
        f"{_FLAGS.get(name, name)} {saved.get(name, _ADDED_LATER.get(name))} -> {current[name]}"
        for name in current
        if saved.get(name, _ADDED_LATER.get(name)) != current[name]
    ]
    if diffs:
        raise ResumeMismatch(
            f"{checkpoint}: cannot resume, the checkpoint was made with other settings ({'; '.join(diffs)}): "
            "the same step would land on other data and another learning rate; resume with the "
            "checkpoint's settings or start a new --out"
        )
