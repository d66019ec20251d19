"""Building a ready-to-use GPT stage from a preset: official weights from disk, or tiny random ones."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_gpt_checkpoint
from .config import GPTConfig, preset
from .unified_voice import UnifiedVoice

__all__ = ["TINY_LABEL", "build_model"]

TINY_LABEL = "tiny preset: seeded RANDOM weights, for tests and demos only; its output is not speech"


def build_model(
    preset_name: str = "tiny",
    weights: str | Path | None = None,
    *,
    config: GPTConfig | None = None,
    seed: int = 0,
    with_conditioning_encoders: bool = True,
) -> UnifiedVoice:
    """`official-v2` needs `weights` (gpt.pth); `tiny` is built from `seed` unless weights are given."""
    cfg = config or preset(preset_name)
    if weights is None and preset_name != "tiny":
        raise CheckpointError(f"preset {preset_name!r} needs its weights file (gpt.pth); none was given")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UnifiedVoice(cfg, with_conditioning_encoders=with_conditioning_encoders)
    if weights is not None:
        load_gpt_checkpoint(model, weights)
    return model.eval()
