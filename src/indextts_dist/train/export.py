"""The adapter a checkpoint carries, in PEFT format, from the fp32 master weights (or, for full
fine-tuning, the whole GPT's state dict as `FULL_WEIGHTS_FILE`, from the same masters).

Under DeepSpeed with bf16 the module's parameters are bf16 copies; the optimizer holds the fp32
masters (partitioned over ranks under ZeRO-1/2). Exporting the module's copies would round every
adapter weight to 8 bits of mantissa, so the masters are assembled instead
(`deepspeed.utils.safe_get_full_fp32_param`, a collective: every rank calls it, in the same order).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from safetensors.torch import save_file
from torch import nn

from ..tracking.package import FULL_WEIGHTS_FILE

__all__ = ["adapter_exporter", "fp32_trainable_state"]


def fp32_trainable_state(accelerator: Accelerator, model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter of the unwrapped module, in float32 on the CPU (collective)."""
    module = accelerator.unwrap_model(model)
    deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
    if deepspeed:
        from deepspeed.utils import safe_get_full_fp32_param
    state = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        master = safe_get_full_fp32_param(param) if deepspeed else None
        state[name] = (master if master is not None else param).detach().float().cpu().clone()
    return state


def adapter_exporter(
    accelerator: Accelerator, model: nn.Module, full: bool = False
) -> Callable[[Path], None]:
    """`export(folder)`: all ranks call it; the main process writes the PEFT adapter folder, or
    with `full` the GPT's complete state dict (every weight was trained; buffers are not weights)."""

    def export(target: Path) -> None:
        state = fp32_trainable_state(accelerator, model)
        if accelerator.is_main_process and full:
            gpt = {k[len("peft.") :]: v for k, v in state.items() if k.startswith("peft.")}
            target.mkdir(parents=True, exist_ok=True)
            save_file(gpt, str(target / FULL_WEIGHTS_FILE), metadata={"format": "indextts-dist/full-gpt"})
        elif accelerator.is_main_process:
            peft_state = {k[len("peft.") :]: v for k, v in state.items() if k.startswith("peft.")}
            accelerator.unwrap_model(model).peft.save_pretrained(
                str(target), state_dict=peft_state, safe_serialization=True
            )

    return export
