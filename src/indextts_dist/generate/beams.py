"""Finished-hypothesis bookkeeping of HF's `BeamSearchScorer`, which the official decoding relies on."""

from __future__ import annotations

import torch

__all__ = ["BeamHypotheses"]


class BeamHypotheses:
    """Keeps the `num_beams` best finished hypotheses of one batch item.

    A hypothesis scores sum_logprobs / generated_len ** length_penalty; with the official
    length_penalty of 0 that is simply the summed (processed) log-probability.
    """

    def __init__(self, num_beams: int, length_penalty: float) -> None:
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.beams: list[tuple[float, torch.Tensor, bool]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def _score(self, sum_logprobs: float, generated_len: int) -> float:
        return sum_logprobs / (max(generated_len, 1) ** self.length_penalty)

    def add(
        self, tokens: torch.Tensor, sum_logprobs: float, generated_len: int, stopped: bool = True
    ) -> None:
        score = self._score(sum_logprobs, generated_len)
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens, stopped))
            if len(self) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        """HF's `early_stopping=False` rule: no open beam can still beat the worst kept hypothesis."""
        if len(self) < self.num_beams:
            return False
        return self.worst_score >= self._score(best_sum_logprobs, generated_len)

    def best(self) -> tuple[torch.Tensor, bool]:
        """The best hypothesis and whether it ended with the stop code."""
        _, tokens, stopped = max(self.beams, key=lambda item: item[0])
        return tokens, stopped
