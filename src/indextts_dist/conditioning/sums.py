"""Running float64 sums of everything the global conditioning averages, and their per-unit file.

One type for the whole path: a clip adds its GPT speaker rows (`[32, D]` v2 latents, or 2.5's
one `[1, D]` projected CAMPPlus style), its emotion vector `[D]`
and (when the second stage is loaded) its CAMPPlus style `[S]`; a shard unit stores its sums beside
its tar (so a resumed run reduces over every clip without recomputing finished units); a rank merges
its units; the ranks add theirs in ONE all-reduce of `flat()` (`reduce.all_reduce_sums`); the total
divided by its counts is the conditioning. Float64 keeps 1 and N processes within well below 1e-6
whatever the summation order.

The style has its own count: a rank without second-stage weights adds clips but no styles, and
`mean_style` then refuses to call a partial average "the speaker's style".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..utils.atomic import atomic_write_bytes
from .store import ConditioningError

__all__ = ["ConditioningSums", "load_sums", "save_sums"]


@dataclass
class ConditioningSums:
    """Sums over `count` clips (and over the `style_count` of them that have a CAMPPlus style)."""

    spk: torch.Tensor
    """Sum of speaker rows, float64 [speaker_rows, model_dim]: v2's perceiver latents, 2.5's
    `spk_emb_proj(style)`."""
    emo: torch.Tensor
    """Sum of emotion vectors, float64 [model_dim]."""
    style: torch.Tensor
    """Sum of CAMPPlus styles, float64 [style_dim] (width 0 when styles are not collected at all)."""
    count: int = 0
    style_count: int = 0

    @classmethod
    def zeros(cls, latents: int, dim: int, style_dim: int = 0) -> ConditioningSums:
        f64 = torch.float64
        return cls(
            torch.zeros(latents, dim, dtype=f64),
            torch.zeros(dim, dtype=f64),
            torch.zeros(style_dim, dtype=f64),
        )

    def add(self, spk: torch.Tensor, emo: torch.Tensor, style: torch.Tensor | None = None) -> None:
        """One accepted clip; `style` is None when this rank has no second stage."""
        self.spk += spk.double().cpu()
        self.emo += emo.double().cpu()
        self.count += 1
        if style is not None:
            self.style += style.double().cpu()
            self.style_count += 1

    def merge(self, other: ConditioningSums) -> None:
        self.spk += other.spk
        self.emo += other.emo
        self.style += other.style
        self.count += other.count
        self.style_count += other.style_count

    def flat(self) -> torch.Tensor:
        """Everything in one float64 vector, counts last: what the one all-reduce carries."""
        counts = torch.tensor([float(self.count), float(self.style_count)], dtype=torch.float64)
        return torch.cat([self.spk.flatten(), self.emo, self.style, counts])

    def from_flat(self, flat: torch.Tensor) -> ConditioningSums:
        """The sums `flat` holds, in this instance's layout (the inverse of `flat`)."""
        flat = flat.detach().to("cpu", torch.float64)
        want = self.spk.numel() + self.emo.numel() + self.style.numel() + 2
        if flat.numel() != want:
            raise ValueError(f"a flat vector of {flat.numel()} values does not fit sums of {want}")
        a = self.spk.numel()
        b = a + self.emo.numel()
        c = b + self.style.numel()
        return ConditioningSums(
            flat[:a].view_as(self.spk).clone(),
            flat[a:b].clone(),
            flat[b:c].clone(),
            round(float(flat[c])),
            round(float(flat[c + 1])),
        )

    def mean_gpt(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean speaker latents, mean emotion vector) in float64."""
        if self.count == 0:
            raise ConditioningError("no clip was accepted: there is nothing to average")
        return self.spk / self.count, self.emo / self.count

    def mean_style(self) -> torch.Tensor | None:
        """The mean style over ALL clips in float64, or None unless every clip has one."""
        if self.count == 0 or self.style_count != self.count or self.style.numel() == 0:
            return None
        return self.style / self.count


def save_sums(sums: ConditioningSums, path: str | Path) -> Path:
    """A unit's sums as safetensors (tensors spk, emo, style; counts in the metadata), atomically."""
    tensors = {"spk": sums.spk.contiguous(), "emo": sums.emo.contiguous(), "style": sums.style.contiguous()}
    metadata = {"count": str(sums.count), "style_count": str(sums.style_count)}
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_sums(path: str | Path) -> ConditioningSums:
    """Read what `save_sums` wrote."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        spk, emo, style = (fh.get_tensor(k) for k in ("spk", "emo", "style"))
    return ConditioningSums(spk, emo, style, int(meta.get("count", "0")), int(meta.get("style_count", "0")))
