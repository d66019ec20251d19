"""Resuming without unpickling: every checkpoint file is read with `torch.load(weights_only=True)`.

Accelerate already loads its files that way. DeepSpeed's own loader passes `weights_only=False`;
its ZeRO files hold tensors plus three plain data classes (a loss-scaler record, the ZeRO stage
enum, a fragment address). We allowlist exactly those and route DeepSpeed's loads through the
restricted unpickler, so a tampered checkpoint fails to load instead of running code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["restricted_checkpoint_loading"]


def _deepspeed_safe_globals() -> list:
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


@contextlib.contextmanager
def restricted_checkpoint_loading(model: object) -> Iterator[None]:
    """Within the block, DeepSpeed engines (if `model` is one) load with weights_only=True."""
    engine = getattr(model, "checkpoint_engine", None)
    if engine is None:
        yield
        return

    def load(path, map_location=None):
        return torch.load(path, map_location=map_location, weights_only=True)

    original = engine.load
    engine.load = load
    try:
        with torch.serialization.safe_globals(_deepspeed_safe_globals()):
            yield
    finally:
        engine.load = original
