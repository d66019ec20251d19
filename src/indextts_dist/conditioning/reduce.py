"""The preprocess job's one collective: every rank's conditioning sums added up.

One `all_reduce(SUM)` of one flat float64 vector (speaker latents, emotion vectors, styles and both
counts together), so the ranks need no other communication: each rank ends with the same totals,
and rank 0 divides them. A lone process has nothing to reduce and calls no collective at all.
"""

from __future__ import annotations

import torch.distributed as dist

from ..distributed import World, reduction_device
from .sums import ConditioningSums

__all__ = ["all_reduce_sums"]


def all_reduce_sums(
    sums: ConditioningSums, world: World, group: dist.ProcessGroup | None = None
) -> ConditioningSums:
    """The totals over the ranks of `world` (of `group`, default the whole job); `sums` is left as is.

    Every rank must call it with sums of the same layout (same model sizes): the vector is reduced
    element by element."""
    if world.size == 1:
        return sums
    flat = sums.flat().to(reduction_device())
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    return sums.from_flat(flat)
