"""Score processors with Hugging Face `generate` semantics (SPEC §f.3), as plain tensor functions.

Order matters and is HF's: repetition penalty, temperature, top-k, top-p. With beams, HF keeps at
least two candidates in top-k/top-p; `min_keep` carries that.
"""

from __future__ import annotations

import torch

__all__ = ["apply_processors", "repetition_penalty", "temperature", "top_k", "top_p"]


def repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF's rule on every id seen so far: negative scores x penalty, positive scores / penalty.

    `seen` is a bool mask [N, V]; HF penalises each id once however often it occurred.
    """
    if penalty == 1.0:
        return scores
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def temperature(scores: torch.Tensor, value: float) -> torch.Tensor:
    return scores if value == 1.0 else scores / value


def top_k(scores: torch.Tensor, k: int, min_keep: int = 1) -> torch.Tensor:
    """Keep the k best ids (ties with the k-th are kept, as HF does)."""
    if k <= 0:
        return scores
    k = min(max(k, min_keep), scores.size(-1))
    threshold = torch.topk(scores, k, dim=-1).values[..., -1, None]
    return scores.masked_fill(scores < threshold, float("-inf"))


def top_p(scores: torch.Tensor, p: float, min_keep: int = 1) -> torch.Tensor:
    """Nucleus filter: drop the least likely ids whose cumulative probability stays within 1 - p."""
    if p >= 1.0:
        return scores
    sorted_scores, sorted_idx = torch.sort(scores, descending=False, dim=-1)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - p)
    remove_sorted[..., -min_keep:] = False
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def apply_processors(
    scores: torch.Tensor,
    seen: torch.Tensor,
    *,
    penalty: float,
    do_sample: bool,
    temp: float,
    k: int,
    p: float,
    min_keep: int,
) -> torch.Tensor:
    """The whole HF chain; the sampling warpers only when sampling (greedy/beam search skip them)."""
    scores = repetition_penalty(scores, seen, penalty)
    if do_sample:
        scores = top_p(top_k(temperature(scores, temp), k, min_keep), p, min_keep)
    return scores
