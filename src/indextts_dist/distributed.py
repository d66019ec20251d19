"""The process group of a `torchrun` launch (or none for a plain single process).

Backend comes from torch: NCCL for CUDA tensors and gloo for CPU tensors when CUDA exists, gloo
alone otherwise. Nothing here hard-codes a device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "init_world", "reduction_device"]


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world() -> World:
    """Join the group torchrun describes in the environment; a lone process is world size 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if size > 1 and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return World(rank, size, local_rank)


def reduction_device() -> torch.device:
    """Where collective tensors must live for the group's backend."""
    return (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
