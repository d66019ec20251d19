"""The Accelerator: DeepSpeed or DDP, on GPUs (NCCL) or CPUs (gloo), as the launch configured it.

On CPU, DDP needs `cpu=True`, while DeepSpeed must NOT get it (it would silently fall back to DDP)
and needs gloo passed explicitly (ENV.md §2). Device, dtype and backend otherwise come from
Accelerate. The engine in use is logged at start-up: a misconfigured launch that trains N
independent copies is the classic silent failure.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, InitProcessGroupKwargs

__all__ = ["describe", "make_accelerator", "zero_stage"]


def make_accelerator(grad_accum: int) -> Accelerator:
    on_cpu = not torch.cuda.is_available()
    use_ds = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    handlers = [InitProcessGroupKwargs(backend="gloo")] if (on_cpu and multi) else []
    accelerator = Accelerator(
        cpu=on_cpu and not use_ds, kwargs_handlers=handlers, gradient_accumulation_steps=grad_accum
    )
    if use_ds and accelerator.distributed_type != DistributedType.DEEPSPEED:
        raise RuntimeError(f"DeepSpeed was requested but Accelerate set up {accelerator.distributed_type}")
    return accelerator


def describe(accelerator: Accelerator) -> str:
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
    return (
        f"engine {accelerator.distributed_type.value}, {accelerator.num_processes} process(es), "
        f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}, backend {backend}"
    )


def zero_stage(accelerator: Accelerator) -> int | None:
    """The DeepSpeed ZeRO stage of this launch, None without DeepSpeed."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return None
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", plugin.zero_stage or 0))
