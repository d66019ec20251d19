"""Perceiver resampler: a fixed number of learned latents cross-attend to a variable-length context.

Written from SPEC.md §b.2. The keys/values are taken over [latents ; context] (the latents also
attend to themselves), the feed-forward is GEGLU with exact-erf GELU, and the output is RMS-normed
(L2-normalise x sqrt(dim) x gamma). Module indices mirror the official state-dict names
(`layers.{i}.0` attention, `layers.{i}.1.0` / `.1.2` feed-forward linears).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PerceiverResampler"]

DIM_HEAD = 64


class GEGLU(nn.Module):
    """value * GELU(gate), value being the first half of the features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * F.gelu(gate)


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class CrossAttention(nn.Module):
    """Bias-free attention of the latents over [latents ; context]."""

    def __init__(self, dim: int, heads: int, dim_head: int = DIM_HEAD) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), x.size(1), self.heads, -1).transpose(1, 2)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        kv_input = torch.cat([latents, context], dim=1)
        q = self._heads(self.to_q(latents))
        k, v = (self._heads(t) for t in self.to_kv(kv_input).chunk(2, dim=-1))
        scores = (q @ k.transpose(-2, -1)) * self.scale
        scores = scores.masked_fill(~key_mask[:, None, None, :], -torch.finfo(scores.dtype).max)
        out = torch.softmax(scores, dim=-1) @ v
        return self.to_out(out.transpose(1, 2).reshape(latents.size(0), latents.size(1), -1))


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    inner = int(dim * mult * 2 / 3)
    return nn.Sequential(nn.Linear(dim, 2 * inner), GEGLU(), nn.Linear(inner, dim))


class PerceiverResampler(nn.Module):
    """Context [B, T, dim_context] (+ frame mask [B, T]) -> latents [B, num_latents, dim]."""

    def __init__(
        self, dim: int, dim_context: int, num_latents: int, heads: int, ff_mult: int, depth: int = 2
    ) -> None:
        super().__init__()
        self.proj_context = nn.Linear(dim_context, dim) if dim_context != dim else nn.Identity()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList([CrossAttention(dim, heads), feed_forward(dim, ff_mult)]) for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, context: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        batch = context.size(0)
        context = self.proj_context(context)
        latents = self.latents.unsqueeze(0).expand(batch, -1, -1)
        latent_slots = frame_mask.new_ones(batch, latents.size(1))
        key_mask = torch.cat([latent_slots, frame_mask], dim=1)
        for attention, ff in self.layers:
            latents = attention(latents, context, key_mask) + latents
            latents = ff(latents) + latents
        return self.norm(latents)
