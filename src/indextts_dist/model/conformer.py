"""The conditioning conformer of IndexTTS2 (WeNet-style, pre-LN, rel-pos attention WITHOUT rel_shift).

Written from SPEC.md §b. No library has this exact block: the official encoder's relative-position
attention skips the usual `rel_shift`, so its positional term depends on absolute positions; the
released weights were trained that way, so we must compute it that way too.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ConditionModuleConfig

__all__ = ["ConformerEncoder", "lengths_to_mask", "sinusoid_table"]

FEATURE_DIM = 1024
"""Width of the w2v-BERT 2.0 layer-17 features every conditioning encoder consumes."""
POSITION_TABLE_ROWS = 5000
"""Rows of the persistent sinusoid buffer (part of the official state dict)."""


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask [B, max_len], True on real frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoid_table(rows: int, dim: int) -> torch.Tensor:
    """The standard transformer sinusoid (sin on even channels, cos on odd), shape [1, rows, dim]."""
    position = torch.arange(rows, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(rows, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table[None]


class RelPositionalEncoding(nn.Module):
    """Scales the input by sqrt(d) and hands out the first T rows of the sinusoid as `pos_emb`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = math.sqrt(dim)
        self.register_buffer("pe", sinusoid_table(POSITION_TABLE_ROWS, dim), persistent=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.scale, self.pe[:, : x.size(1)].to(x.dtype)


class Conv2dSubsampling2(nn.Module):
    """`conv2d2`: one stride-2 3x3 conv over (time, feature), flattened channel-major, then a Linear."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, out_dim, kernel_size=3, stride=2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(out_dim * ((in_dim - 1) // 2), out_dim))
        self.pos_enc = RelPositionalEncoding(out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # [B, C, T', F']
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        x, pos_emb = self.pos_enc(x)
        return x, pos_emb, mask[:, 2::2]


class RelPositionAttention(nn.Module):
    """Multi-head attention with the two learned position biases and no rel_shift (SPEC §b.1)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_k = dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), x.size(1), self.heads, self.d_k)  # [B, T, H, d]

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        q = self._split(self.linear_q(x))
        k = self._split(self.linear_k(x)).transpose(1, 2)
        v = self._split(self.linear_v(x)).transpose(1, 2)
        p = self._split(self.linear_pos(pos_emb)).transpose(1, 2)  # [1, H, T, d]
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        scores = (q_u @ k.transpose(-2, -1) + q_v @ p.transpose(-2, -1)) / math.sqrt(self.d_k)
        blocked = ~key_mask[:, None, None, :]
        weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
        out = (weights @ v).transpose(1, 2).reshape(x.size(0), x.size(1), -1)
        return self.linear_out(out)


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv (k=15) + LayerNorm + SiLU, pointwise conv; pads zeroed."""

    def __init__(self, dim: int, kernel_size: int = 15) -> None:
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, kernel_size=1)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        pad = ~frame_mask[:, None, :]
        x = x.transpose(1, 2).masked_fill(pad, 0.0)
        x = F.glu(self.pointwise_conv1(x), dim=1)
        x = self.depthwise_conv(x)
        x = F.silu(self.norm(x.transpose(1, 2)).transpose(1, 2))
        x = self.pointwise_conv2(x).masked_fill(pad, 0.0)
        return x.transpose(1, 2)


class FeedForward(nn.Module):
    """w_1 -> SiLU -> w_2."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim, inner)
        self.w_2 = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerBlock(nn.Module):
    """Pre-LN: attention, convolution, feed-forward residuals, then `norm_final` (no macaron FFN)."""

    def __init__(self, dim: int, heads: int, ffn_inner: int) -> None:
        super().__init__()
        self.self_attn = RelPositionAttention(dim, heads)
        self.feed_forward = FeedForward(dim, ffn_inner)
        self.conv_module = ConvolutionModule(dim)
        self.norm_ff = nn.LayerNorm(dim, eps=1e-5)
        self.norm_mha = nn.LayerNorm(dim, eps=1e-5)
        self.norm_conv = nn.LayerNorm(dim, eps=1e-5)
        self.norm_final = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), frame_mask, pos_emb)
        x = x + self.conv_module(self.norm_conv(x), frame_mask)
        x = x + self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Features [B, T, 1024] -> (hidden [B, T', D], frame mask [B, T']), T' = (T - 1) // 2."""

    def __init__(self, cfg: ConditionModuleConfig, input_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        dim = cfg.output_size
        self.embed = Conv2dSubsampling2(input_dim, dim)
        self.encoders = nn.ModuleList(
            ConformerBlock(dim, cfg.attention_heads, cfg.linear_units) for _ in range(cfg.num_blocks)
        )
        self.after_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_to_mask(lengths, feats.size(1))
        x, pos_emb, mask = self.embed(feats, mask)
        for block in self.encoders:
            x = block(x, mask, pos_emb)
        return self.after_norm(x), mask
