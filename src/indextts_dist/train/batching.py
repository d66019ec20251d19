"""Length-bucketed batches under a token budget, streamed from webdataset shards, equal steps per rank.

Each rank streams its own shards (split by node, then by DataLoader worker), shuffled per epoch with
a seed, cycling when its shards run out: an epoch is a fixed number of batches, the same on every
rank, so no rank waits forever in a collective at the end of an epoch when shards do not divide
evenly. Within a pool of samples, similar lengths are batched together (little padding) under
`max_tokens` padded positions per batch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..preprocess.shards import iter_tar_samples

__all__ = ["Batch", "BatchStream", "cut_batches", "padded_cost", "steps_per_epoch"]

PREFIX_ROWS = 34
POOL = 256


def padded_cost(count: int, max_text: int, max_code: int) -> int:
    """Positions the backbone processes for a batch: prefix + <s> text </s> + <start> codes <stop>."""
    return count * (PREFIX_ROWS + max_text + 2 + max_code + 2)


def cut_batches(lengths: Sequence[tuple[int, int]], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut greedily so each batch's padded cost stays within `max_tokens`."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0] + lengths[i][1], i))
    batches, current, max_t, max_c = [], [], 0, 0
    for i in order:
        t, c = lengths[i]
        if current and padded_cost(len(current) + 1, max(max_t, t), max(max_c, c)) > max_tokens:
            batches.append(current)
            current, max_t, max_c = [], 0, 0
        current.append(i)
        max_t, max_c = max(max_t, t), max(max_c, c)
    if current:
        batches.append(current)
    return batches


def steps_per_epoch(lengths: Sequence[tuple[int, int]], max_tokens: int, world: int, workers: int = 1) -> int:
    """Batches each rank runs per epoch: one pass over the data in pools, split evenly, rounded up."""
    total = sum(len(cut_batches(lengths[i : i + POOL], max_tokens)) for i in range(0, len(lengths), POOL))
    per_rank = math.ceil(total / world)
    return max(workers, math.ceil(per_rank / workers) * workers)


@dataclass
class Batch:
    keys: list[str]
    text_ids: torch.Tensor
    text_lengths: torch.Tensor
    codes: torch.Tensor
    code_lengths: torch.Tensor

    @property
    def real_tokens(self) -> int:
        return int(self.text_lengths.sum() + self.code_lengths.sum()) + len(self.keys) * 4

    @property
    def padded_tokens(self) -> int:
        return padded_cost(len(self.keys), self.text_ids.size(1), self.codes.size(1)) - PREFIX_ROWS * len(
            self.keys
        )

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.keys,
            self.text_ids.to(device),
            self.text_lengths.to(device),
            self.codes.to(device),
            self.code_lengths.to(device),
        )


def collate(samples: list[dict]) -> Batch:
    texts = [torch.as_tensor(s["text_ids.npy"], dtype=torch.long) for s in samples]
    codes = [torch.as_tensor(s["codes.npy"], dtype=torch.long) for s in samples]
    pad = torch.nn.utils.rnn.pad_sequence
    return Batch(
        [s["__key__"] for s in samples],
        pad(texts, batch_first=True),
        torch.tensor([len(t) for t in texts]),
        pad(codes, batch_first=True),
        torch.tensor([len(c) for c in codes]),
    )


def _share(items: list, index: int, count: int) -> list:
    """items[index::count], or one item by position when there are fewer items than takers."""
    mine = items[index::count]
    return mine if mine else [items[index % len(items)]]


class BatchStream(torch.utils.data.IterableDataset):
    """Exactly `steps` batches for this rank and epoch (split across DataLoader workers)."""

    def __init__(
        self,
        shards: Sequence[Path],
        *,
        rank: int,
        world: int,
        epoch: int,
        seed: int,
        steps: int,
        max_tokens: int,
        exclude: frozenset[str] = frozenset(),
        shuffle_buffer: int = 512,
    ) -> None:
        super().__init__()
        if not shards:
            raise ValueError("no shards to stream")
        self.shards = [str(s) for s in sorted(shards)]
        self.rank, self.world, self.epoch, self.seed = rank, world, epoch, seed
        self.steps, self.max_tokens, self.exclude, self.shuffle_buffer = (
            steps,
            max_tokens,
            exclude,
            shuffle_buffer,
        )

    def _one_pass(self, shards: list[str], rng: random.Random) -> Iterator[dict]:
        """This worker's shards once, in a seeded order, through a seeded shuffle buffer."""
        order = list(shards)
        rng.shuffle(order)
        buffer: list[dict] = []
        for url in order:
            for sample in iter_tar_samples(url):
                if sample["__key__"] in self.exclude:
                    continue
                buffer.append(sample)
                if len(buffer) >= self.shuffle_buffer:
                    yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def _pass_batches(self, shards: list[str], rng: random.Random) -> Iterator[Batch]:
        """Length-bucketed batches of one pass; a pool never spans two passes, so no sample repeats
        within a batch even when a small set is cycled."""
        pool: list[dict] = []

        def flush() -> Iterator[Batch]:
            lengths = [(len(s["text_ids.npy"]), len(s["codes.npy"])) for s in pool]
            batches = cut_batches(lengths, self.max_tokens)
            rng.shuffle(batches)
            for indices in batches:
                yield collate([pool[i] for i in indices])

        for sample in self._one_pass(shards, rng):
            pool.append(sample)
            if len(pool) == POOL:
                yield from flush()
                pool = []
        if pool:
            yield from flush()

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        shards = _share(_share(self.shards, self.rank, self.world), worker, workers)
        rng = random.Random(f"{self.seed}:{self.epoch}:{self.rank}:{worker}")
        quota, produced = self.steps // workers, 0
        while produced < quota:  # cycle: an epoch is a number of batches, not one pass over these shards
            empty = True
            for batch in self._pass_batches(shards, rng):
                empty = False
                yield batch
                produced += 1
                if produced == quota:
                    return
            if empty:
                raise ValueError(f"shards {shards} hold no training samples")
