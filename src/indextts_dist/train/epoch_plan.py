"""One epoch's batches, planned from the manifest alone: every training sample exactly once.

Every rank computes the same plan from the same inputs (sample lengths and shards from the shard
records, the epoch, the seed) without talking to the others. The plan is made for the whole job
and then dealt to ranks, so the set of samples an epoch trains on does not depend on the world
size; only who runs which batch does:

1. shards in a seeded order, grouped until a group holds at least `POOL` samples (a group is what
   one reader holds in memory), the group's samples shuffled and cut by length under the token
   budget (little padding), the group's batches shuffled;
2. the job's batches dealt round-robin to ranks;
3. ranks with fewer batches padded with zero-weight batches, so every rank runs the same number of
   micro-batches and that number is a multiple of the gradient accumulation: no rank waits forever
   in a collective, and no accumulation window straddles an epoch end (an epoch-end checkpoint
   holds no pending gradients).

A zero-weight batch is one real sample whose loss is multiplied by 0: it keeps DDP/DeepSpeed's
collectives in step and contributes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .batching import cut_batches

__all__ = ["POOL", "PlannedBatch", "PlannedSample", "epoch_plan", "micro_batches_per_rank"]

POOL = 256
"""Samples cut into batches together (and held in memory by one reader at a time)."""


class PlannedSample(Protocol):
    """What planning needs to know of a sample (the manifest's `SampleMeta` is one)."""

    @property
    def key(self) -> str: ...
    @property
    def shard(self) -> Path: ...
    @property
    def text_len(self) -> int: ...
    @property
    def code_len(self) -> int: ...


@dataclass(frozen=True)
class PlannedBatch:
    keys: tuple[str, ...]
    weight: float
    """1.0 for a real batch, 0.0 for padding to equal steps."""


def _job_batches(
    samples: Sequence[PlannedSample], epoch: int, seed: int, max_tokens: int, prefix_rows: int
) -> list[tuple[str, ...]]:
    """The epoch's batches for the whole job, in the order they are dealt."""
    rng = random.Random(f"plan:{seed}:{epoch}")
    by_shard: dict[Path, list[PlannedSample]] = {}
    for s in sorted(samples, key=lambda s: (str(s.shard), s.key)):
        by_shard.setdefault(s.shard, []).append(s)
    shards = sorted(by_shard, key=str)
    rng.shuffle(shards)
    groups: list[list[PlannedSample]] = [[]]
    for shard in shards:
        if len(groups[-1]) >= POOL:
            groups.append([])
        groups[-1].extend(by_shard[shard])
    batches: list[tuple[str, ...]] = []
    for group in groups:
        rng.shuffle(group)
        cut: list[tuple[str, ...]] = []
        for start in range(0, len(group), POOL):
            pool = group[start : start + POOL]
            lengths = [(s.text_len, s.code_len) for s in pool]
            cut.extend(
                tuple(pool[i].key for i in indices)
                for indices in cut_batches(lengths, max_tokens, prefix_rows)
            )
        rng.shuffle(cut)
        batches.extend(cut)
    return batches


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def epoch_plan(
    samples: Sequence[PlannedSample],
    *,
    epoch: int,
    seed: int,
    world: int,
    grad_accum: int,
    max_tokens: int,
    prefix_rows: int,
) -> list[list[PlannedBatch]]:
    """Per rank, its micro-batches of `epoch` in order; all ranks' lists have the same length.
    `prefix_rows` is the model's conditioning prefix, counted in every item's padded cost."""
    if not samples:
        raise ValueError("no training samples to plan an epoch over")
    job = _job_batches(samples, epoch, seed, max_tokens, prefix_rows)
    ranks = [[PlannedBatch(keys, 1.0) for keys in job[r::world]] for r in range(world)]
    steps = _round_up(max(len(r) for r in ranks), grad_accum)
    filler = PlannedBatch(job[0][:1], 0.0)
    for mine in ranks:
        pad = PlannedBatch(mine[0].keys[:1], 0.0) if mine else filler
        mine.extend([pad] * (steps - len(mine)))
    return ranks


def micro_batches_per_rank(
    samples: Sequence[PlannedSample],
    *,
    epoch: int,
    seed: int,
    world: int,
    grad_accum: int,
    max_tokens: int,
    prefix_rows: int,
) -> int:
    """Micro-batches every rank runs in `epoch` (the same on all ranks)."""
    job = _job_batches(samples, epoch, seed, max_tokens, prefix_rows)
    return _round_up(-(-len(job) // world), grad_accum)
