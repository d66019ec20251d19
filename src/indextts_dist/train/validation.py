"""Validation loss per epoch on the held-out keys of `dataset_info.json`, reduced over ranks.

Each rank evaluates every world-th batch with the unwrapped module (no collectives inside, so ranks
may hold different numbers of batches), then one all-reduce sums token-weighted losses.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn

from ..dataset import DatasetManifest, iter_tar_samples
from .batching import collate, cut_batches
from .options import TrainOptions

__all__ = ["validation_loss"]


def _val_samples(manifest: DatasetManifest) -> list[dict]:
    shards = sorted({s.shard for s in manifest.val_samples})
    found = []
    for shard in shards:
        for sample in iter_tar_samples(shard):
            if sample["__key__"] in manifest.val_keys:
                found.append(sample)
    return sorted(found, key=lambda s: s["__key__"])


@torch.no_grad()
def validation_loss(
    accelerator: Accelerator, model: nn.Module, manifest: DatasetManifest, opts: TrainOptions
) -> float | None:
    if not manifest.val_keys:
        return None
    samples = _val_samples(manifest)
    lengths = [(len(s["text_ids.npy"]), len(s["codes.npy"])) for s in samples]
    module = accelerator.unwrap_model(model)
    batches = cut_batches(lengths, opts.optim.max_tokens_per_batch, module.gpt.cfg.prefix_rows)
    was_training = module.training
    module.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)
    for i, indices in enumerate(batches):
        if i % accelerator.num_processes != accelerator.process_index:
            continue
        b = collate([samples[j] for j in indices], per_clip=opts.conditioning == "per-clip")
        b = b.to(accelerator.device)
        parts = module(b.text_ids, b.text_lengths, b.codes, b.code_lengths, *b.conditioning())
        sums += torch.stack(
            [
                parts.text * parts.text_tokens,
                parts.text_tokens,
                parts.mel * parts.mel_tokens,
                parts.mel_tokens,
            ]
        ).double()
    module.train(was_training)
    sums = accelerator.reduce(sums, reduction="sum")
    text = float(sums[0] / sums[1].clamp_min(1))
    mel = float(sums[2] / sums[3].clamp_min(1))
    return opts.optim.text_weight * text + opts.optim.mel_weight * mel
