"""The anti-aliased Snake/SnakeBeta activation of BigVGAN v2, written from S2MEL.md (g).

`Activation1d` = upsample ×2 (Kaiser-windowed sinc, replicate padding) → Snake(Beta) → downsample ×2.
Key layout (`act.alpha`, `act.beta`, `upsample.filter`, `downsample.lowpass.filter`) follows the
official state dict, so the module loads strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FILTER_TAPS",
    "Activation1d",
    "Snake",
    "SnakeBeta",
    "kaiser_sinc_filter",
]

FILTER_TAPS = 12
"""Length of the low-pass filter (ratio 2 → kernel 6·ratio)."""
_CUTOFF = 0.25
"""Cutoff of the low-pass, as a fraction of the (upsampled) sampling rate: 0.5 / ratio."""
_HALF_WIDTH = 0.3
"""Transition half-width: 0.6 / ratio."""


def kaiser_sinc_filter(
    cutoff: float = _CUTOFF, half_width: float = _HALF_WIDTH, taps: int = FILTER_TAPS
) -> torch.Tensor:
    """The `[1, 1, taps]` Kaiser-windowed sinc low-pass, normalised to sum 1 (even `taps` only)."""
    if taps % 2:
        raise ValueError(f"kaiser_sinc_filter: taps must be even, got {taps}")
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, beta=beta, periodic=False, device="cpu")
    time = torch.arange(-half, half, device="cpu") + 0.5
    filt = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    filt = filt / filt.sum()
    return filt.view(1, 1, taps)


class SnakeBeta(nn.Module):
    """y = x + sin²(a·x) / (b + 1e-9), per channel; a = e^alpha, b = e^beta when `logscale`."""

    def __init__(self, channels: int, logscale: bool = True) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros if logscale else torch.ones
        self.alpha = nn.Parameter(init(channels))
        self.beta = nn.Parameter(init(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        beta = self.beta[None, :, None]
        if self.logscale:
            alpha = torch.exp(alpha)
            beta = torch.exp(beta)
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class Snake(nn.Module):
    """y = x + sin²(a·x) / (a + 1e-9), per channel; a = e^alpha when `logscale`."""

    def __init__(self, channels: int, logscale: bool = True) -> None:
        super().__init__()
        self.logscale = logscale
        self.alpha = nn.Parameter((torch.zeros if logscale else torch.ones)(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        if self.logscale:
            alpha = torch.exp(alpha)
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class _UpSample1d(nn.Module):
    """×2 upsampling: replicate-pad 5, depthwise transposed conv (stride 2), ×2, crop 15 per side."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_filter(), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        pad = FILTER_TAPS // 2 - 1  # 5
        crop = pad * 2 + (FILTER_TAPS - 2) // 2  # 15
        x = F.pad(x, (pad, pad), mode="replicate")
        weight = self.filter.to(x.dtype).expand(channels, -1, -1)
        x = 2 * F.conv_transpose1d(x, weight, stride=2, groups=channels)
        return x[..., crop:-crop]


class _LowPassFilter1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_filter(), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (FILTER_TAPS // 2 - 1, FILTER_TAPS // 2), mode="replicate")  # 5 left, 6 right
        weight = self.filter.to(x.dtype).expand(channels, -1, -1)
        return F.conv1d(x, weight, stride=2, groups=channels)


class _DownSample1d(nn.Module):
    """×2 downsampling: replicate-pad 5 left / 6 right, depthwise conv with the same filter, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.lowpass = _LowPassFilter1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased activation: `downsample(act(upsample(x)))`; keeps `[B, C, T]`."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.act = activation
        self.upsample = _UpSample1d()
        self.downsample = _DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))
