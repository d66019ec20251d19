"""Which base GPT a loaded model runs, and the checks that tie a conditioning or adapter to it.

A base is a preset plus either the official `gpt.pth` or, for the tiny preset, the seed its random
weights are drawn from. The loaded model keeps its `BaseSpec` so that `without_adapter()` can build
the same base again (diagnose compares the two on the same texts and seed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..conditioning import GlobalConditioning, check_base
from ..model import (
    RANDOM_PRESETS,
    SEEDED_PRESETS,
    GPTConfig,
    UnifiedVoice,
    base_fingerprint,
    build_model,
    preset,
)
from ..tracking.package import PackageError
from ..weights_layout import weights_layout

__all__ = ["WEIGHTS_DIR_ENV", "BaseSpec", "check_conditioning_base", "weights_dir_or_env", "weights_file"]

WEIGHTS_DIR_ENV = "INDEXTTS_WEIGHTS_DIR"
"""Folder holding the official `gpt.pth` (and the second stage) when no `weights_dir` is given."""


@dataclass(frozen=True)
class BaseSpec:
    """A base GPT, described well enough to build it again and to fingerprint it."""

    preset: str
    weights: Path | None = None
    """`gpt.pth` / `.safetensors`; None: the tiny preset's seeded random weights."""
    seed: int = 0
    config: GPTConfig | None = None
    """The package's recorded config (default: the preset's)."""

    @property
    def gpt_config(self) -> GPTConfig:
        return self.config or preset(self.preset)

    def fingerprint(self) -> str:
        return base_fingerprint(self.preset, self.weights, seed=self.seed)

    def build(self) -> UnifiedVoice:
        """On the host in float32, without the conditioning encoders (the conditioning is global)."""
        return build_model(
            self.preset, self.weights, config=self.config, seed=self.seed, with_conditioning_encoders=False
        )

    def describe(self) -> str:
        return str(self.weights) if self.weights else f"the {self.preset} preset's seed-{self.seed} weights"


def weights_dir_or_env(weights_dir: str | Path | None) -> Path | None:
    """The official weights folder: the one given, else `$INDEXTTS_WEIGHTS_DIR`, else None."""
    folder = weights_dir or os.environ.get(WEIGHTS_DIR_ENV)
    return Path(folder) if folder else None


def weights_file(preset_name: str, weights_dir: str | Path | None) -> Path | None:
    """The official `gpt.pth` in `weights_dir` (default `$INDEXTTS_WEIGHTS_DIR`); None for tiny.
    The mini preset takes its pretrained base from `weights_dir/gpt.pth` when a folder is given
    (`benchmarks/pattern_transfer.py` exports one), else its seeded random weights."""
    if preset_name in SEEDED_PRESETS:
        return None
    folder = weights_dir_or_env(weights_dir)
    if preset_name in RANDOM_PRESETS and folder is None:
        return None
    if folder is None:
        raise PackageError(
            f"preset {preset_name!r} needs the official weights: pass weights_dir or set {WEIGHTS_DIR_ENV}"
        )
    path = weights_layout(preset_name, folder).gpt
    if not path.is_file():
        raise PackageError(f"{path}: official GPT weights not found")
    return path


def check_conditioning_base(conditioning: GlobalConditioning, source: str | Path, base: BaseSpec) -> None:
    """The conditioning must have been computed on the base that runs (`conditioning.check_base`)."""
    check_base(conditioning, base.fingerprint(), str(source), base.describe())
