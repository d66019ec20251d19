"""This rank's micro-batches of one epoch, read from the webdataset shards as the plan says.

The plan (`epoch_plan`) fixes which keys form each batch; this reader only fetches them. Shards are
read in the order the batches first need them and a sample is dropped from memory once the last
batch that needs it has been yielded, so memory stays near one group of shards however large the
dataset is. DataLoader workers take every `workers`-th batch of the rank's list; the DataLoader's
round-robin over workers puts them back in plan order, so the number of workers changes neither
the data nor its order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ..dataset import iter_tar_samples
from ..errors import InputError
from .batching import Batch, collate
from .epoch_plan import PlannedBatch, PlannedSample, epoch_plan

__all__ = ["PlanStream"]


def _shard_order(batches: Sequence[PlannedBatch], shard_of: dict[str, Path]) -> list[Path]:
    """Shards in the order the batches first need them."""
    seen: dict[Path, None] = {}
    for batch in batches:
        for key in batch.keys:
            seen.setdefault(shard_of[key])
    return list(seen)


def read_batches(
    batches: Sequence[PlannedBatch], shard_of: dict[str, Path], per_clip: bool = False
) -> Iterator[Batch]:
    """`batches` in order, each collated as soon as the shards read so far hold all its samples
    (`per_clip`: with each sample's own conditioning)."""
    order = _shard_order(batches, shard_of)
    position = {shard: i for i, shard in enumerate(order)}
    ready_after = [max(position[shard_of[k]] for k in b.keys) for b in batches]
    uses = Counter(k for b in batches for k in b.keys)
    cache: dict[str, dict] = {}
    next_batch = 0
    for p, shard in enumerate(order):
        for sample in iter_tar_samples(shard):
            if uses.get(sample["__key__"], 0) > 0:
                cache[sample["__key__"]] = sample
        while next_batch < len(batches) and ready_after[next_batch] <= p:
            batch = batches[next_batch]
            missing = [k for k in batch.keys if k not in cache]
            if missing:
                raise InputError(f"{shard_of[missing[0]]}: sample {missing[0]!r} is listed but not in it")
            yield collate([cache[k] for k in batch.keys], batch.weight, per_clip)
            for k in batch.keys:
                uses[k] -= 1
                if uses[k] == 0:
                    del cache[k]
            next_batch += 1


class PlanStream(torch.utils.data.IterableDataset):
    """The `rank`'s micro-batches of `epoch`: every training sample once over all ranks."""

    def __init__(
        self,
        samples: Sequence[PlannedSample],
        *,
        rank: int,
        world: int,
        epoch: int,
        seed: int,
        grad_accum: int,
        max_tokens: int,
        prefix_rows: int,
        per_clip: bool = False,
    ) -> None:
        super().__init__()
        self.samples = list(samples)
        self.rank, self.world, self.epoch, self.seed = rank, world, epoch, seed
        self.grad_accum, self.max_tokens, self.prefix_rows = grad_accum, max_tokens, prefix_rows
        self.per_clip = per_clip

    def plan(self) -> list[PlannedBatch]:
        """This rank's batches in order (the same list whatever the number of DataLoader workers)."""
        ranks = epoch_plan(
            self.samples, epoch=self.epoch, seed=self.seed, world=self.world,
            grad_accum=self.grad_accum, max_tokens=self.max_tokens, prefix_rows=self.prefix_rows,
        )  # fmt: skip
        return ranks[self.rank]

    def __len__(self) -> int:
        return len(self.plan())

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        mine = self.plan()[worker::workers]
        yield from read_batches(mine, {s.key: s.shard for s in self.samples}, self.per_clip)
