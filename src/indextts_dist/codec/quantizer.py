"""The codec's quantizer: one factorized VQ stage inside a residual-VQ shell (the official layout).

Key names follow the official state dict: `quantizers.0.{in_project,out_project,codebook}`, the two
projections weight-normed with `weight_g`/`weight_v` (legacy `torch.nn.utils.weight_norm` naming; the
`parametrizations` API would name them `parametrizations.weight.original0/1`, which a strict load of
the released file rejects, and the legacy API is deprecated, hence our own small module).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FactorizedVectorQuantizer", "ResidualVQ", "WeightNormPointwiseConv"]


class WeightNormPointwiseConv(nn.Module):
    """A 1×1 Conv1d whose weight is g · v / ‖v‖ (norm per output channel), with a bias.

    Parameters are registered as bias, weight_g, weight_v: the order the legacy hook leaves behind.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.weight_g = nn.Parameter(torch.empty(out_channels, 1, 1))
        self.weight_v = nn.Parameter(torch.empty(out_channels, in_channels, 1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Conv1d's default init for v and the bias; g = ‖v‖ so the effective weight starts equal to v."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.weight_v.shape[1])
        nn.init.uniform_(self.bias, -bound, bound)
        self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=(1, 2), keepdim=True))

    @property
    def weight(self) -> torch.Tensor:
        norm = torch.linalg.vector_norm(self.weight_v, dim=(1, 2), keepdim=True)
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias)


class FactorizedVectorQuantizer(nn.Module):
    """Project to a small space, pick the nearest code by cosine, embed the RAW code row back.

    The search uses L2-normalized frames and codebook rows; the embedding uses the un-normalized row
    (normalized rows change the tiny reference's output by up to 3.9).
    """

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.in_project = WeightNormPointwiseConv(input_dim, codebook_dim)
        self.out_project = WeightNormPointwiseConv(codebook_dim, input_dim)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_e [B, D, T] → indices [B, T] int64 (maximum cosine similarity)."""
        batch, dim, time = z_e.shape
        e = F.normalize(z_e.transpose(1, 2).reshape(-1, dim), dim=1, eps=1e-12)
        c = F.normalize(self.codebook.weight, dim=1, eps=1e-12)
        # The official squared-distance form; its argmax equals the max cosine up to float rounding.
        dist = e.pow(2).sum(1, keepdim=True) - 2 * e @ c.t() + c.pow(2).sum(1, keepdim=True).t()
        return (-dist).argmax(dim=1).view(batch, time)

    def vq2emb(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [B, T] → [B, input_dim, T] through the raw codebook row and out_project."""
        return self.out_project(self.codebook(indices).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, input_dim, T] → (embedding [B, input_dim, T], indices [B, T])."""
        z_e = self.in_project(x)
        indices = self.nearest(z_e)
        z_q = self.codebook(indices).transpose(1, 2)
        # Straight-through form of the official code: numerically z_q up to float32 rounding (~5e-7).
        z_q = z_e + (z_q - z_e)
        return self.out_project(z_q), indices


class ResidualVQ(nn.Module):
    """Residual stack of factorized stages; IndexTTS2 uses exactly one stage."""

    def __init__(self, num_quantizers: int, input_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.quantizers = nn.ModuleList(
            FactorizedVectorQuantizer(input_dim, codebook_size, codebook_dim) for _ in range(num_quantizers)
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, H, T] → (quantized [B, H, T], codes [n_q, B, T])."""
        residual, quantized, codes = z, None, []
        for stage in self.quantizers:
            z_q, indices = stage(residual)
            quantized = z_q if quantized is None else quantized + z_q
            residual = residual - z_q
            codes.append(indices)
        assert quantized is not None  # the config guarantees at least one stage
        return quantized, torch.stack(codes)

    def vq2emb(self, vq: torch.Tensor) -> torch.Tensor:
        """vq laid out [n_q, B, T] → [B, H, T] (sum over stages).

        The official `infer_v2` passes `codes.unsqueeze(1)` ([B, 1, T]), right only for B = 1; for
        B > 1 the official class silently embeds item 0. Here that layout is refused instead: pass
        `codes[None]`, or use `RepCodec.codes_to_embedding`.
        """
        if vq.dim() != 3:
            raise ValueError(f"vq2emb expects codes laid out [n_q, B, T], got shape {list(vq.shape)}")
        if vq.shape[0] > len(self.quantizers):
            raise ValueError(
                f"vq2emb got {vq.shape[0]} stages but the codec has {len(self.quantizers)} quantizer(s); "
                "codes [B, T] go in as codes[None] (layout [n_q, B, T]), not codes.unsqueeze(1)"
            )
        out = self.quantizers[0].vq2emb(vq[0])
        for stage, indices in zip(self.quantizers[1:], vq[1:], strict=False):
            out = out + stage.vq2emb(indices)
        return out
