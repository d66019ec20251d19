"""What the loaded model returns per text: the one result type every door hands on.

A module of its own so that the outputs (`outputs`, `speech_output`, `code_stats`) depend on the
result, not on the model that made it: nothing here imports the model, and nothing imports back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Synthesis"]


@dataclass
class Synthesis:
    text: str
    normalized: str
    segments: list[list[int]]
    """Text ids of each segment (no start/stop)."""
    codes: torch.Tensor
    """Semantic codes of all segments, joined [N] (int64, on the host)."""
    latents: torch.Tensor | None
    """GPT latents [N, model_dim] (float32, on the host), one row per code; None when the caller
    asked for codes only (`latents=False`: `generate`, `diagnose`, the pyfunc)."""
    stopped: list[bool]
    """Per segment: ended with the stop code (False: hit the cap)."""
    segment_codes: list[int]
    """Codes per segment (the second stage renders segments separately and joins them)."""

    @property
    def text_ids(self) -> list[int]:
        """All segments' text ids in order: what the codes were generated for."""
        return [i for segment in self.segments for i in segment]

    @property
    def all_stopped(self) -> bool:
        """Every segment ended by itself (none ran to the cap)."""
        return all(self.stopped)
