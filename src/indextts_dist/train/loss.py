"""The pattern-training loss: masked next-token CE over real tokens plus the first stop, 0.2·text + 0.8·mel.

Padding positions (targets that are stop tokens past the first one) are excluded, and each term is
averaged over its valid tokens in the batch, so a batch's loss does not depend on how much padding
it carries. This is the community trainers' recipe (SPEC §e), not the official v1 mean over all
positions, which would reward predicting padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..model.unified_voice import TeacherForced

__all__ = ["LossParts", "pattern_loss", "valid_target_mask"]


@dataclass
class LossParts:
    total: torch.Tensor
    text: torch.Tensor
    mel: torch.Tensor
    text_tokens: torch.Tensor
    mel_tokens: torch.Tensor


def valid_target_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """True on the first length + 1 targets of each row (the real tokens and the first stop)."""
    return torch.arange(width, device=lengths.device)[None, :] <= lengths[:, None]


def _masked_ce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    per_token = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
    count = mask.sum()
    return (per_token * mask).sum() / count.clamp_min(1), count


def pattern_loss(
    out: TeacherForced,
    text_lengths: torch.Tensor,
    code_lengths: torch.Tensor,
    text_weight: float = 0.2,
    mel_weight: float = 0.8,
) -> LossParts:
    text_mask = valid_target_mask(text_lengths, out.text_targets.size(1))
    mel_mask = valid_target_mask(code_lengths, out.mel_targets.size(1))
    text, n_text = _masked_ce(out.text_logits, out.text_targets, text_mask)
    mel, n_mel = _masked_ce(out.mel_logits, out.mel_targets, mel_mask)
    return LossParts(text_weight * text + mel_weight * mel, text, mel, n_text, n_mel)
