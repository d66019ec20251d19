"""The learning rate as a function of the optimizer step alone: linear warm-up, then cosine to zero.

No stateful scheduler: a prepared scheduler is stepped once per process by Accelerate (the bug that
made the schedule depend on the world size), and a function of the step needs no checkpointing.
Optimizer step k (1-based) uses `peak * k / warmup` while k <= warmup, so the warm-up ends at
`--warmup-steps` with the peak, then `peak * (1 + cos(pi * (k - warmup) / (total - warmup))) / 2`,
which is 0 at the last step.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate_at"]


def learning_rate_at(step: int, peak: float, warmup: int, total: int) -> float:
    """The learning rate optimizer step `step` (1-based) uses."""
    if step < 1:
        raise ValueError(f"optimizer steps count from 1, got {step}")
    warmup = min(warmup, total)
    if step <= warmup:
        return peak * step / warmup
    if total <= warmup:
        return peak
    progress = min(1.0, (step - warmup) / (total - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
