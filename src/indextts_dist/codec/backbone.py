"""The codec's encoder body: a Vocos-style ConvNeXt backbone over 50 Hz feature frames.

Module and parameter names follow the official state dict (`embed`, `norm`, `convnext.N.*`,
`final_layer_norm`) so `encoder.0.*` / `decoder.0.*` load strictly. No adaptive norm: IndexTTS2's
codec builds the backbone without one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNeXtBlock", "VocosBackbone"]

LN_EPS = 1e-6
"""Every LayerNorm of the backbone uses this epsilon (not torch's 1e-5 default)."""


class ConvNeXtBlock(nn.Module):
    """x + γ ⊙ pw2(GELU(pw1(LN(dw(x))))) on channel-major [B, dim, T]; no downsampling, kernel 7."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init: float) -> None:
        super().__init__()
        # `gamma` is registered first so the state-dict order matches the official one.
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # [B, T, dim]: LayerNorm and Linear act on the last axis
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))  # exact erf GELU, as the official code
        return x + (self.gamma * h).transpose(1, 2)


class VocosBackbone(nn.Module):
    """Conv1d(k7) → LayerNorm → N ConvNeXt blocks → LayerNorm: [B, C_in, T] → [B, T, dim] (time-major)."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, layer_scale_init=1.0 / num_layers) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))
