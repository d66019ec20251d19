"""Building a ready-to-use GPT stage from a preset: official weights from disk, or tiny random ones."""

from __future__ import annotations

from pathlib import Path

import torch

from ..utils.hashing import file_sha256
from ..weights_layout import weights_layout
from .checkpoint import CheckpointError, load_gpt_checkpoint, state_dict_fingerprint
from .config import GPTConfig, is_random_preset, preset
from .unified_voice import UnifiedVoice

__all__ = [
    "MINI_LABEL",
    "SEEDED_PRESETS",
    "TINY_LABEL",
    "base_fingerprint",
    "base_weights_file",
    "build_model",
    "preset_label",
]

TINY_LABEL = "tiny preset: seeded RANDOM weights, for tests and demos only; its output is not speech"
MINI_LABEL = "mini preset: trained here on synthetic speech, not IndexTTS2 quality"


SEEDED_PRESETS = ("tiny", "tiny-v2.5")
"""Presets whose GPT is always drawn from the seed: a weights folder given with them only supplies
other files (tiny-v2.5's tiktoken vocabulary). `mini` reads a pretrained base from its folder."""


def base_weights_file(preset_name: str, weights_dir: str | Path | None) -> Path | None:
    """The base GPT file a preset reads from `weights_dir` (`gpt.pth`, v2 or 2.5), None when its
    GPT is seeded (no folder, or a `SEEDED_PRESETS` one)."""
    if weights_dir is None or preset_name in SEEDED_PRESETS:
        return None
    return weights_layout(preset_name, weights_dir).gpt


def preset_label(preset_name: str) -> str | None:
    """The note every output of a preset's model carries (None for the official weights)."""
    return {"tiny": TINY_LABEL, "tiny-v2.5": TINY_LABEL, "mini": MINI_LABEL}.get(preset_name)


def build_model(
    preset_name: str = "tiny",
    weights: str | Path | None = None,
    *,
    config: GPTConfig | None = None,
    seed: int = 0,
    with_conditioning_encoders: bool = True,
) -> UnifiedVoice:
    """`official-v2`/`official-v2.5` need `weights` (gpt.pth); `tiny`/`tiny-v2.5` are built from `seed`
    unless weights are given."""
    cfg = config or preset(preset_name)
    if weights is None and not is_random_preset(preset_name):
        raise CheckpointError(f"preset {preset_name!r} needs its weights file (gpt.pth); none was given")
    if weights is not None:
        model = UnifiedVoice(cfg, with_conditioning_encoders=with_conditioning_encoders)
        load_gpt_checkpoint(model, weights)
        return model.eval()
    # Random weights are always drawn for the full model in one order, so the same seed gives the same
    # GPT whether or not the encoders are kept (preprocess keeps them, training drops them).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UnifiedVoice(cfg, with_conditioning_encoders=True)
    if not with_conditioning_encoders:
        model.drop_conditioning_encoders()
    return model.eval()


def base_fingerprint(preset_name: str, weights: str | Path | None = None, seed: int = 0) -> str:
    """Identifies the base GPT an adapter or a conditioning belongs to: the checkpoint file's sha256,
    or, for the tiny preset's random weights, a hash of the full state dict built from `seed`."""
    if weights is not None:
        return file_sha256(weights)
    if not is_random_preset(preset_name):
        raise CheckpointError(f"preset {preset_name!r} needs its weights file to be fingerprinted")
    return state_dict_fingerprint(build_model(preset_name, seed=seed).state_dict())
