"""Content path of S2Mel: `gpt_layer` and the interpolating length regulator (S2MEL.md (d)).

Also the 1.72 frames-per-code rule. Written from the spec, not from the official code.
"""

from __future__ import annotations

import torch
from torch import nn

from indextts_dist.speech.s2mel_config import CONTENT_DIM, GPT_LATENT_DIM, S2MelConfig

__all__ = [
    "GPTLayer",
    "LengthRegulator",
    "nearest_source_index",
    "target_lengths",
]


def target_lengths(code_lens: torch.Tensor | int, speed: float = 1.0) -> torch.Tensor:
    """Mel frames for N codes: `(N · 1.72)` truncated, the product in float32 as officially.

    Equals (172·N)//100 for every N ≤ 50 000. Returns int64 with the input's shape. `speed` ≠ 1
    (the speech endpoint's OpenAI `speed`) divides the frame count, so the length regulator spreads
    the same codes over fewer (faster) or more (slower) frames; at 1.0 it is the official formula.
    """
    lens = torch.as_tensor(code_lens, dtype=torch.int64)
    frames = lens.to(torch.float32) * torch.tensor(1.72, dtype=torch.float32)
    if speed != 1.0:
        frames = (frames / speed).clamp(min=1.0)
    return frames.to(torch.int64)


def nearest_source_index(n_in: int, n_out: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Source frame for each of `n_out` output frames under torch's float32 'nearest' rule.

    Identity when sizes match, j // 2 when doubling, else min(⌊fl32(j · fl32(n_in / n_out))⌋, n_in − 1).
    The float32 arithmetic matters: exact rational ⌊j·n_in/n_out⌋ picks a different frame for e.g.
    (26 → 44) at j = 22.
    """
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"cannot interpolate {n_in} frames to {n_out}")
    j = torch.arange(n_out, device=device)
    if n_out == n_in:
        return j
    if n_out == 2 * n_in:
        return j // 2
    scale = torch.tensor(n_in, dtype=torch.float32, device=device) / torch.tensor(
        n_out, dtype=torch.float32, device=device
    )
    src = torch.floor(j.to(torch.float32) * scale).to(torch.int64)
    return src.clamp_(max=n_in - 1)


class GPTLayer(nn.Sequential):
    """Linear d→256 → Linear 256→128 → Linear 128→1024, no activations (keys `gpt_layer.{0,1,2}`);
    d is the GPT stage's width (1280 officially)."""

    def __init__(self, gpt_latent_dim: int = GPT_LATENT_DIM) -> None:
        super().__init__(nn.Linear(gpt_latent_dim, 256), nn.Linear(256, 128), nn.Linear(128, CONTENT_DIM))


class LengthRegulator(nn.Module):
    """Continuous-input interpolating regulator: project, stretch to the target length, conv stack, mask.

    Key layout (registration order): `mask_token`, `model.*`, `embedding`, `content_in_proj`.
    `mask_token` and `embedding` are never used at inference; they exist for the strict load.
    """

    def __init__(self, cfg: S2MelConfig) -> None:
        super().__init__()
        c = cfg.lr_channels
        self.mask_token = nn.Parameter(torch.zeros(1, c))
        layers: list[nn.Module] = []
        for _ in cfg.sampling_ratios:
            layers += [nn.Conv1d(c, c, 3, padding=1), nn.GroupNorm(1, c), nn.Mish()]
        layers.append(nn.Conv1d(c, c, 1))
        self.model = nn.Sequential(*layers)
        self.embedding = nn.Embedding(cfg.lr_codebook_size, c)
        self.content_in_proj = nn.Linear(cfg.lr_in_channels, c)

    def forward(self, x: torch.Tensor, ylens: torch.Tensor) -> torch.Tensor:
        """x [B, N, 1024] content, ylens [B] int64 target frames → [B, max(ylens), C] (masked).

        Every item is stretched to max(ylens) and GroupNorm sees padded frames too (as officially;
        official inference is B = 1).
        """
        if x.dim() != 3:
            raise ValueError(
                f"length regulator expects [B, N, {self.content_in_proj.in_features}], got {list(x.shape)}"
            )
        ylens = torch.as_tensor(ylens, device=x.device).reshape(-1)
        t_out = int(ylens.max())
        h = self.content_in_proj(x).transpose(1, 2)
        idx = nearest_source_index(h.shape[-1], t_out, device=h.device)
        h = h.index_select(2, idx)
        h = self.model(h).transpose(1, 2)
        mask = (torch.arange(t_out, device=h.device)[None, :] < ylens[:, None]).unsqueeze(-1)
        return h * mask.to(h.dtype)
