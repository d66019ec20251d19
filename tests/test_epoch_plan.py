"""The epoch plan on its own: every training sample exactly once per epoch over all ranks, the same
number of micro-batches on every rank (a multiple of the accumulation), padding with zero weight,
for world sizes 1, 2 and 3, one shard or several uneven ones, odd sample counts."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from indextts_dist.model import preset
from indextts_dist.train.batching import cut_batches, padded_cost
from indextts_dist.train.epoch_plan import POOL, epoch_plan, micro_batches_per_rank
from indextts_dist.train.schedule import learning_rate_at


@dataclass(frozen=True)
class Meta:
    key: str
    shard: Path
    text_len: int
    code_len: int


def corpus(shard_sizes: list[int], seed: int = 0) -> list[Meta]:
    rng = random.Random(seed)
    out = []
    for s, size in enumerate(shard_sizes):
        for i in range(size):
            out.append(
                Meta(f"s{s}-{i:04d}", Path(f"shard-{s:03d}.tar"), rng.randint(3, 40), rng.randint(20, 300))
            )
    return out


LAYOUTS = {
    "one shard, 7 samples": [7],
    "one shard, 101 samples": [101],
    "uneven shards 3+3+1": [3, 3, 1],
    "uneven shards over two pools": [130, 7, 200, 1, 65],
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("grad_accum", [1, 3])
def test_every_sample_exactly_once_equal_steps(layout, world, grad_accum):
    samples = corpus(LAYOUTS[layout])
    for epoch in range(3):
        ranks = epoch_plan(
            samples, epoch=epoch, seed=5, world=world, grad_accum=grad_accum, max_tokens=900, prefix_rows=34
        )
        assert len(ranks) == world
        lengths = {len(r) for r in ranks}
        assert len(lengths) == 1, lengths  # the same number of micro-batches on every rank
        steps = lengths.pop()
        assert steps % grad_accum == 0
        assert steps == micro_batches_per_rank(
            samples, epoch=epoch, seed=5, world=world, grad_accum=grad_accum, max_tokens=900, prefix_rows=34
        )
        counted = Counter(k for r in ranks for b in r if b.weight > 0 for k in b.keys)
        assert counted == Counter(s.key for s in samples)  # every sample once, none twice
        pads = [b for r in ranks for b in r if b.weight == 0]
        assert all(len(b.keys) == 1 for b in pads)
        by_key = {s.key: s for s in samples}
        for r in ranks:
            for b in r:
                if len(b.keys) > 1:  # a batch within budget (a single long sample may exceed it)
                    t = max(by_key[k].text_len for k in b.keys)
                    c = max(by_key[k].code_len for k in b.keys)
                    assert padded_cost(len(b.keys), t, c, 34) <= 900


def test_the_set_of_batches_does_not_depend_on_the_world_size():
    samples = corpus([40, 13, 90])
    plans = {}
    for world in (1, 2, 3):
        ranks = epoch_plan(
            samples, epoch=1, seed=0, world=world, grad_accum=1, max_tokens=1200, prefix_rows=34
        )
        plans[world] = sorted(b.keys for r in ranks for b in r if b.weight > 0)
    assert plans[1] == plans[2] == plans[3]


def test_epochs_differ_and_the_plan_is_deterministic():
    samples = corpus([POOL + 10, 20])
    a = epoch_plan(samples, epoch=0, seed=0, world=2, grad_accum=1, max_tokens=1500, prefix_rows=34)
    b = epoch_plan(samples, epoch=1, seed=0, world=2, grad_accum=1, max_tokens=1500, prefix_rows=34)
    assert a == epoch_plan(samples, epoch=0, seed=0, world=2, grad_accum=1, max_tokens=1500, prefix_rows=34)
    assert a != b


def test_more_ranks_than_batches_pad_with_zero_weight():
    samples = corpus([2])
    ranks = epoch_plan(samples, epoch=0, seed=0, world=3, grad_accum=1, max_tokens=100_000, prefix_rows=34)
    weights = [[b.weight for b in r] for r in ranks]
    assert weights == [[1.0], [0.0], [0.0]]


@pytest.mark.parametrize("warmup,total", [(4, 24), (0, 10), (3, 3), (100, 24)])
def test_learning_rate_formula(warmup, total):
    peak = 5e-3
    lrs = [learning_rate_at(k, peak, warmup, total) for k in range(1, total + 1)]
    w = min(warmup, total)
    if w:
        assert lrs[w - 1] == pytest.approx(peak)
        assert all(a < b for a, b in itertools.pairwise(lrs[:w]))
    if total > w:
        assert lrs[-1] == pytest.approx(0.0, abs=1e-15)
        assert all(a >= b for a, b in itertools.pairwise(lrs[w:]))
    with pytest.raises(ValueError):
        learning_rate_at(0, peak, warmup, total)


def test_the_models_prefix_rows_count_in_the_budget():
    """The budget holds the prefix too, so a 2.5 model (3 rows) fits more items than v2 (34 rows)."""
    lengths = [(10, 20)] * 40
    sizes = {}
    for name in ("tiny", "tiny-v2.5"):
        rows = preset(name).prefix_rows
        batches = cut_batches(lengths, 600, rows)
        assert all(padded_cost(len(b), 10, 20, rows) <= 600 for b in batches)
        sizes[rows] = max(len(b) for b in batches)
    assert sizes == {34: 600 // (34 + 12 + 22), 3: 600 // (3 + 12 + 22)}
