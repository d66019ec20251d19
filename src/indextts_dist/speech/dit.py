"""The S2Mel flow-matching estimator: a U-ViT-style DiT with a WaveNet head (S2MEL.md (e)).

`DiTEstimator(x, prompt_x, x_lens, t, style, mu) -> velocity [B, 80, T]`. Written from the spec.
Key layout follows the released `s2mel.pth` (`cfm.estimator.*`), registration order included.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from indextts_dist.speech.s2mel_config import S2MelConfig
from indextts_dist.speech.wavenet import WaveNet, WeightNormLinear

__all__ = ["DiTEstimator", "apply_rope", "rope_table"]

MAX_FRAMES = 16384
"""Size of the `input_pos` buffer and of the RoPE table: the longest sequence (prompt + generated)."""


def rope_table(length: int, head_dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[length, head_dim/2, 2] (cos, sin) of θ = p · 10000^(−2i/head_dim), computed in float32."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, device=device)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (2i, 2i+1) of x [B, T, heads, d] by table [T, d/2, 2], in float32."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    tab = table.view(1, xs.shape[1], 1, xs.shape[3], 2)
    a, b = xs[..., 0], xs[..., 1]
    cos, sin = tab[..., 0], tab[..., 1]
    out = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1)
    return out.flatten(3).type_as(x)


class _RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class AdaRMSNorm(nn.Module):
    """out = w ⊙ RMSNorm(x) + b with [w | b] = project_layer(c). Keys: `project_layer`, `norm`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_layer = nn.Linear(dim, 2 * dim)
        self.norm = _RMSNorm(dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        w, b = self.project_layer(c).chunk(2, dim=-1)
        return w * self.norm(x) + b


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bsz, length, dim = x.shape
        d = dim // self.heads
        q, k, v = self.wqkv(x).split(dim, dim=-1)
        q = apply_rope(q.view(bsz, length, self.heads, d), rope)
        k = apply_rope(k.view(bsz, length, self.heads, d), rope)
        v = v.view(bsz, length, self.heads, d)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=1.0 / math.sqrt(d))
        return self.wo(y.transpose(1, 2).reshape(bsz, length, dim))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class _Block(nn.Module):
    """Keys (in order): attention, feed_forward, ffn_norm, attention_norm, skip_in_linear."""

    def __init__(self, cfg: S2MelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.attention = _Attention(h, cfg.num_heads)
        self.feed_forward = _FeedForward(h, cfg.ffn_dim)
        self.ffn_norm = AdaRMSNorm(h)
        self.attention_norm = AdaRMSNorm(h)
        self.skip_in_linear = nn.Linear(2 * h, h)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor,
        skip: torch.Tensor | None,
    ) -> torch.Tensor:
        if skip is not None:
            x = self.skip_in_linear(torch.cat([x, skip], dim=-1))
        h = x + self.attention(self.attention_norm(x, c), rope, mask)
        return h + self.feed_forward(self.ffn_norm(h, c))


# duplicates: its forward takes the block's inputs (x, c, rope, mask) plus a trace; the blocks and
# the stack are separate modules because the release's state dict nests them so.
class _Transformer(nn.Module):
    def __init__(self, cfg: S2MelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = AdaRMSNorm(cfg.hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        depth = len(self.layers)
        half = depth // 2
        stack: list[torch.Tensor] = []
        outs = []
        for i, block in enumerate(self.layers):
            skip = stack.pop() if i > half else None
            x = block(x, c, rope, mask, skip)
            if i < half:
                stack.append(x)
            outs.append(x)
        if trace is not None:
            trace["block_out"] = torch.stack(outs)
        return self.norm(x, c)


class TimestepEmbedder(nn.Module):
    """Sinusoidal (cos ‖ sin, 256 wide, of 1000·t) → Linear → SiLU → Linear. Keys: `freqs`, `mlp.{0,2}`."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        half = freq_dim // 2
        self.register_buffer(
            "freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        )
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (1000 * t.float())[:, None] * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class _FinalLayer(nn.Module):
    """LayerNorm (no affine, eps 1e-6) modulated by t1, then a weight-normed Linear."""

    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        self.linear = WeightNormLinear(out, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * out))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        x = F.layer_norm(x, (x.shape[-1],), eps=1e-6)
        x = x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
        return self.linear(x)


class DiTEstimator(nn.Module):
    """`cfm.estimator`: velocity field v(x, t | prompt_x, mu, style)."""

    def __init__(self, cfg: S2MelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, hw, mels = cfg.hidden_dim, cfg.wavenet_hidden_dim, cfg.in_channels
        self.register_buffer("input_pos", torch.arange(MAX_FRAMES, dtype=torch.int64))
        self.transformer = _Transformer(cfg)
        self.x_embedder = WeightNormLinear(mels, h)  # unused at inference
        self.cond_embedder = nn.Embedding(cfg.content_codebook_size, h)  # unused
        self.cond_projection = nn.Linear(cfg.content_dim, h)
        self.t_embedder = TimestepEmbedder(h)
        self.t_embedder2 = TimestepEmbedder(hw)
        self.conv1 = nn.Linear(h, hw)
        self.conv2 = nn.Conv1d(hw, mels, 1)
        self.wavenet = WaveNet(hw, cfg.wavenet_layers, cfg.wavenet_kernel_size, cfg.wavenet_dilation_rate)
        self.final_layer = _FinalLayer(h, hw)
        self.res_projection = nn.Linear(h, hw)
        self.content_mask_embedder = nn.Embedding(1, h)  # unused
        self.skip_linear = nn.Linear(h + mels, h)
        self.cond_x_merge_linear = nn.Linear(h + 2 * mels + cfg.style_dim, h)
        self._rope: torch.Tensor | None = None

    def _rope_for(self, length: int, device: torch.device) -> torch.Tensor:
        if length > MAX_FRAMES:
            raise ValueError(f"S2Mel supports at most {MAX_FRAMES} frames (prompt + generated), got {length}")
        if self._rope is None or self._rope.device != device:
            self._rope = rope_table(MAX_FRAMES, self.cfg.head_dim, device=device)
        return self._rope[:length]

    def forward(
        self,
        x: torch.Tensor,
        prompt_x: torch.Tensor,
        x_lens: torch.Tensor,
        t: torch.Tensor,
        style: torch.Tensor,
        mu: torch.Tensor,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x, prompt_x [B, 80, T]; x_lens [B] or [1]; t [B]; style [B, S]; mu [B, T, C] → [B, 80, T].

        `trace`, when a dict, receives the intermediates (t1, t2, cond_proj, x_in, block_out,
        transformer_out, skip_out, wavenet_out, final_layer_out).
        """
        bsz, _, length = x.shape
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(bsz)
        t1 = self.t_embedder(t)
        t2 = self.t_embedder2(t)
        cond_proj = self.cond_projection(mu)
        x_t = x.transpose(1, 2)
        x_in = torch.cat(
            [x_t, prompt_x.transpose(1, 2), cond_proj, style[:, None, :].expand(-1, length, -1)], dim=-1
        )
        h = self.cond_x_merge_linear(x_in)

        x_lens = torch.as_tensor(x_lens, device=x.device).reshape(-1)
        valid = torch.arange(length, device=x.device)[None, :] < x_lens[:, None]  # [B or 1, T]
        valid = valid.expand(bsz, length)
        attn_mask = valid[:, None, None, :].expand(bsz, 1, length, length)
        rope = self._rope_for(length, x.device)

        out = self.transformer(h, t1.unsqueeze(1), rope, attn_mask, trace)
        x_res = self.skip_linear(torch.cat([out, x_t], dim=-1))
        w = self.conv1(x_res).transpose(1, 2)
        wn = self.wavenet(w, valid.unsqueeze(1).to(x.dtype), t2.unsqueeze(-1))
        y = self.final_layer(wn.transpose(1, 2) + self.res_projection(x_res), t1)
        v = self.conv2(y.transpose(1, 2))
        if trace is not None:
            trace.update(
                t1=t1,
                t2=t2,
                cond_proj=cond_proj,
                x_in=h,
                transformer_out=out,
                skip_out=x_res,
                wavenet_out=wn,
                final_layer_out=y,
            )
        return v
