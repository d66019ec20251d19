"""Length-bucketed batches under a token budget, and the tensors a micro-batch carries.

Similar lengths are batched together (little padding) under `max_tokens` padded positions per
batch; `epoch_plan` decides which samples go together, `stream` reads them from the shards. The
positions include the model's conditioning prefix (`GPTConfig.prefix_rows`: 34 in v2, 3 in 2.5),
so the budget means the same memory whichever model is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..dataset import DatasetError

__all__ = ["Batch", "collate", "cut_batches", "padded_cost"]


def padded_cost(count: int, max_text: int, max_code: int, prefix_rows: int) -> int:
    """Positions the backbone processes for a batch: prefix + <s> text </s> + <start> codes <stop>."""
    return count * (prefix_rows + max_text + 2 + max_code + 2)


def cut_batches(lengths: Sequence[tuple[int, int]], max_tokens: int, prefix_rows: int) -> list[list[int]]:
    """Indices sorted by length, cut greedily so each batch's padded cost (with the model's
    `prefix_rows`) stays within `max_tokens`."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0] + lengths[i][1], i))
    batches, current, max_t, max_c = [], [], 0, 0
    for i in order:
        t, c = lengths[i]
        if current and padded_cost(len(current) + 1, max(max_t, t), max(max_c, c), prefix_rows) > max_tokens:
            batches.append(current)
            current, max_t, max_c = [], 0, 0
        current.append(i)
        max_t, max_c = max(max_t, t), max(max_c, c)
    if current:
        batches.append(current)
    return batches


@dataclass
class Batch:
    keys: list[str]
    text_ids: torch.Tensor
    text_lengths: torch.Tensor
    codes: torch.Tensor
    code_lengths: torch.Tensor
    weight: float = 1.0
    """Multiplies the batch's loss: 0.0 for a padding batch that only keeps ranks in step."""
    cond_latents: torch.Tensor | None = None
    """Per-clip training: each sample's own speaker latents [B, 32, D] (None: the global prefix)."""
    emo_vec: torch.Tensor | None = None
    """Per-clip training: each sample's own emotion vector [B, D]."""

    @property
    def real_tokens(self) -> int:
        return int(self.text_lengths.sum() + self.code_lengths.sum()) + len(self.keys) * 4

    @property
    def padded_tokens(self) -> int:
        """Text and code positions including padding (the prefix rows are not tokens)."""
        return padded_cost(len(self.keys), self.text_ids.size(1), self.codes.size(1), prefix_rows=0)

    def to(self, device: torch.device) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(
            self.keys,
            self.text_ids.to(device),
            self.text_lengths.to(device),
            self.codes.to(device),
            self.code_lengths.to(device),
            self.weight,
            move(self.cond_latents),
            move(self.emo_vec),
        )

    def conditioning(self) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """(latents, emotion vectors) of a per-clip batch, (None, None) for the global prefix."""
        if self.cond_latents is None or self.emo_vec is None:
            return None, None
        return self.cond_latents, self.emo_vec


def collate(samples: list[dict], weight: float = 1.0, per_clip: bool = False) -> Batch:
    """`per_clip`: also stack each sample's own conditioning (`cond_latents.npy`, `emo_vec.npy`)."""
    texts = [torch.as_tensor(s["text_ids.npy"], dtype=torch.long) for s in samples]
    codes = [torch.as_tensor(s["codes.npy"], dtype=torch.long) for s in samples]
    pad = torch.nn.utils.rnn.pad_sequence
    return Batch(
        [s["__key__"] for s in samples],
        pad(texts, batch_first=True),
        torch.tensor([len(t) for t in texts]),
        pad(codes, batch_first=True),
        torch.tensor([len(c) for c in codes]),
        weight,
        _stack(samples, "cond_latents.npy") if per_clip else None,
        _stack(samples, "emo_vec.npy") if per_clip else None,
    )


def _stack(samples: list[dict], name: str) -> torch.Tensor:
    missing = [s["__key__"] for s in samples if name not in s]
    if missing:
        raise DatasetError(f"sample {missing[0]!r} has no {name}: per-clip training needs a dataset "
                           "preprocessed with per-clip conditioning (re-run preprocess)")  # fmt: skip
    return torch.stack([torch.as_tensor(s[name], dtype=torch.float32) for s in samples])
