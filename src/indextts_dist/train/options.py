"""Training settings, grouped as a user thinks of them. Defaults are the guide's recommended values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import InputError
from ..lora import LoraSettings

__all__ = ["OptimSettings", "TrackingSettings", "TrainOptions"]


@dataclass(frozen=True)
class OptimSettings:
    learning_rate: float = 5e-4
    """AdamW peak learning rate, reached at the end of warm-up."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay on the adapter weights."""
    warmup_steps: int = 100
    """Linear warm-up, then cosine decay to zero at the last step."""
    epochs: int = 30
    """Passes over the training split; every sample contributes exactly once per epoch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Clip the adapter gradients' global norm to this before each optimizer step."""
    max_tokens_per_batch: int = 8192
    """Padded positions per micro-batch (prefix + text + codes); batches are built by length under it."""
    text_weight: float = 0.2
    """Weight of the text-token loss in the total loss."""
    mel_weight: float = 0.8
    """Weight of the semantic-code (mel) loss in the total loss."""
    max_bad_steps: int = 5
    """Stop with an error after this many consecutive non-finite losses (each one is skipped)."""


@dataclass(frozen=True)
class TrackingSettings:
    mlflow_uri: str | None = None
    """Tracking server URI; not given: no MLflow (the packaged model still lands in `--out`)."""
    experiment: str = "indextts-patterns"
    """MLflow experiment the training run is logged under."""
    register_name: str | None = None
    """Registered model name; not given: package only, do not register."""
    alias: str = "candidate"
    """Alias pointed at the newly registered version (`models:/NAME@ALIAS`)."""
    select: Literal["best", "last"] = "best"
    """Which checkpoint becomes the registered model: lowest validation loss, or the last one."""
    register_retries: int = 5
    """Registration attempts after the first, with exponential backoff (2 s, 4 s, ...)."""


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    """Preprocess output folder (shards, dataset_info.json, global conditioning)."""
    out: Path
    """Run folder: checkpoints and the packaged model."""
    preset: Literal["tiny", "mini", "official-v2", "tiny-v2.5", "official-v2.5"] = "tiny"
    """`tiny` (random weights, tests/demo), `mini` (4 × 256, learns on CPUs; trained here on
    synthetic speech, not IndexTTS2 quality), `official-v2` (real weights from `--weights-dir`),
    or IndexTTS-2.5's `tiny-v2.5` (random weights) and `official-v2.5`."""
    weights_dir: Path | None = None
    """Official weights folder (gpt.pth, bpe.model, ...); needed by `official-v2`; for `mini`, a
    folder holding a pretrained mini base as `gpt.pth` (default: its seeded random weights); the
    2.5 presets read the tiktoken vocabulary from it (tiny-v2.5: only that)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """The adapter (its own `--lora-*` flags)."""
    optim: OptimSettings = field(default_factory=OptimSettings)
    """Optimizer, schedule and batching."""
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    """MLflow logging and registration."""
    save_every: int = 0
    """Also checkpoint every K optimizer steps (0: only at epoch ends)."""
    keep_epochs: int = 3
    """Per-epoch checkpoints kept (the best one by validation loss is always kept)."""
    resume: bool = False
    """Continue from the newest checkpoint in `--out` (same data order and losses)."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0: load in the training process); any value resumes alike."""
    seed: int = 0
    """Seed of the tiny preset's weights (as preprocess's `--seed`), adapter initialization and data order."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs); for smoke runs."""
    conditioning: Literal["global", "per-clip"] = "global"
    """global: every sample against the dataset's ONE conditioning (the recipe); per-clip: each
    sample against its own clip's conditioning (the guide's "v1" way, for comparison; such a model
    generates with a reference clip's conditioning, `--reference-clip`)."""
    method: Literal["lora", "full"] = "lora"
    """lora: train the adapter on the frozen GPT; full: fine-tune every GPT weight (pretraining a
    small base, the community trainers' way); the package then holds the whole GPT."""

    mel_positions: Literal["training", "official"] = "training"
    """Mel positions of the teacher-forced pass: `training` (0, 1, 2, ... as the official forward)
    or `official` (the one-slot skip official inference gives every generated code, SPEC_2_5
    §5.3); whether 2.5 was trained with the skip is not known (SPEC_2_5 §7)."""

    def __post_init__(self) -> None:
        if self.preset in ("official-v2", "tiny-v2.5", "official-v2.5") and self.weights_dir is None:
            raise InputError(f"preset {self.preset!r} needs --weights-dir")
        if self.optim.epochs < 1 or self.optim.grad_accum < 1:
            raise InputError("epochs and grad_accum must be >= 1")
        if self.keep_epochs < 1:
            raise InputError("keep_epochs must be >= 1")

    def to_params(self) -> dict[str, object]:
        """Flat name -> value, for MLflow params and the packaged manifest."""
        flat: dict[str, object] = {"preset": self.preset, "seed": self.seed, "save_every": self.save_every,
                                   "conditioning": self.conditioning, "method": self.method,
                                   "mel_positions": self.mel_positions}  # fmt: skip
        flat.update({f"lora_{k}": v for k, v in self.lora.to_dict().items()})
        flat.update(asdict(self.optim))
        flat.update({"select": self.tracking.select, "num_workers": self.num_workers})
        return flat
