"""Checkpoints that survive crashes: written under a temp name by every rank, renamed by rank 0.

`accelerator.save_state` writes the model, optimizer, scheduler and RNG states (any ZeRO stage);
beside it we keep `trainer_state.json` (where in the data we are, best validation loss, skipped
steps) and the LoRA adapter in PEFT format, so any checkpoint can become the registered model
without the trainer. A crash mid-save leaves only a `.partial-*` folder, which is ignored and
cleaned up; the previous checkpoint stays usable.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

from ..utils.atomic import atomic_write_text

__all__ = ["TrainState", "latest_checkpoint", "prune_checkpoints", "save_checkpoint"]

STATE_FILE = "trainer_state.json"


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass
class TrainState:
    step: int = 0
    """Optimizer steps done."""
    epoch: int = 0
    """Current epoch (0-based)."""
    micro_in_epoch: int = 0
    """Micro-batches of the current epoch already applied (resume skips them)."""
    skipped_steps: int = 0
    bad_in_a_row: int = 0
    best_val: float | None = None
    best_checkpoint: str | None = None
    epoch_end: bool = False
    val_history: list[dict] = field(default_factory=list)
    mlflow_run_id: str | None = None
    """The MLflow run this job logs to: a resumed job (or an evicted pod's replacement) continues it."""
    layout: dict = field(default_factory=dict)
    """The data plan the step position refers to (`resume_check.run_layout`)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        return cls(**json.loads(text))


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def save_checkpoint(accelerator: Accelerator, root: Path, state: TrainState, export_adapter) -> Path:
    """Collective: every rank must call it. `export_adapter(dir)` runs on the main process only."""
    final = checkpoint_dir(root, state.step)
    partial = root / f".partial-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    export_adapter(partial / "adapter")  # collective under ZeRO-3 (gathers weights); rank 0 writes
    # Every rank must have finished writing its shards into `partial` before rank 0 renames it
    # (a slower rank would otherwise write into a folder that has moved).
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(partial / STATE_FILE, state.to_json())
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint (it has its state file); partial folders are skipped."""
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
    return max(done, key=lambda p: p.name) if done else None


def read_state(path: Path) -> TrainState:
    return TrainState.from_json((path / STATE_FILE).read_text())


def prune_checkpoints(root: Path, keep_epochs: int, protect: set[str]) -> list[Path]:
    """Keep the newest checkpoint, the last `keep_epochs` epoch-end ones and any in `protect` (best)."""
    done = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())
    if not done:
        return []
    epoch_ends = [p for p in done if read_state(p).epoch_end]
    keep = {done[-1].name, *protect, *(p.name for p in epoch_ends[-keep_epochs:])}
    removed = [p for p in done if p.name not in keep]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    for stale in root.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return removed
