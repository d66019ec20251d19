"""CAMPPlus (CAM++), the speaker "style" encoder of IndexTTS2's second stage, written from S2MEL.md (c).

Input is a mean-removed Kaldi fbank `[B, F, feat_dim]`; output is the style vector `[B, embedding_size]`.
The module layout (names, registration order, shapes) reproduces the official state dict key for
key (`campplus_state_dict_shapes.json`, 937 keys at the official size), so `campplus_cn_common.bin`
loads strictly.
Everything runs in eval mode: BatchNorm uses its running statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..model.checkpoint import CheckpointError, load_state_dict_file, strict_load_module

__all__ = [
    "CAMPPLUS_TINY",
    "CAMPPlus",
    "CAMPPlusConfig",
    "build_campplus",
    "load_campplus",
]

HEAD_CHANNELS = 32
"""Width of the FCM head (fixed in the official class)."""
SEGMENT_FRAMES = 100
"""Segment length of the CAM layer's segment pooling."""
BLOCKS = ((12, 1), (24, 2), (16, 2))
"""(layers, dilation) of the three CAM dense blocks."""


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class CAMPPlusConfig:
    """Constructor arguments of the official `CAMPPlus` (same names and defaults)."""

    feat_dim: int = 80
    """Fbank bins (frequency height of the FCM image); must be divisible by 8."""
    embedding_size: int = 192
    """Size of the output style vector."""
    growth_rate: int = 32
    """Channels added by each dense layer (g)."""
    bn_size: int = 4
    """Bottleneck width = bn_size * growth_rate."""
    init_channels: int = 128
    """Output channels of `xvector.tdnn`."""
    config_str: str = "batchnorm-relu"
    """Nonlinearity recipe; only `batchnorm-relu` is used by IndexTTS2."""

    def __post_init__(self) -> None:
        if self.config_str != "batchnorm-relu":
            raise InputError(
                f"CAMPPlus config_str {self.config_str!r} is not supported (only batchnorm-relu)"
            )
        for name in ("feat_dim", "embedding_size", "growth_rate", "bn_size", "init_channels"):
            if getattr(self, name) <= 0:
                raise InputError(f"CAMPPlus {name} must be positive, got {getattr(self, name)}")
        if self.feat_dim % 8:
            raise InputError(f"CAMPPlus feat_dim must be divisible by 8, got {self.feat_dim}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CAMPPlusConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown CAMPPlus config key {unknown[0]!r}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CAMPPLUS_TINY = CAMPPlusConfig(feat_dim=80, embedding_size=32, growth_rate=8, bn_size=2, init_channels=16)
"""The tiny size of `reference_s2mel_tiny.json` (`config.campplus`)."""


class _BNReLU(nn.Sequential):
    """`batchnorm-relu`: registers `batchnorm` (keys `<name>.batchnorm.*`), then a plain ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.add_module("batchnorm", nn.BatchNorm1d(channels))
        self.add_module("relu", nn.ReLU())


class _BasicResBlock(nn.Module):
    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        s = (stride, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=s, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, channels, 1, stride=s, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class _FCMHead(nn.Module):
    """2-D front: [B, 1, feat, T] -> [B, 32 * feat/8, T] (channel index = c * feat/8 + f)."""

    def __init__(self, feat_dim: int) -> None:
        super().__init__()
        m = HEAD_CHANNELS
        self.conv1 = nn.Conv2d(1, m, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        self.layer1 = nn.Sequential(_BasicResBlock(m, 2), _BasicResBlock(m, 1))
        self.layer2 = nn.Sequential(_BasicResBlock(m, 2), _BasicResBlock(m, 1))
        self.conv2 = nn.Conv2d(m, m, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m)
        self.out_channels = m * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = F.relu(self.bn2(self.conv2(x)))
        b, c, f, t = x.shape
        return x.reshape(b, c * f, t)


class _TDNN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 5, stride=2, padding=2, bias=False)
        self.nonlinear = _BNReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


def _segment_pool(x: torch.Tensor) -> torch.Tensor:
    """Each frame gets the mean of its 100-frame segment (the last, partial one over its real frames)."""
    t = x.shape[-1]
    pooled = F.avg_pool1d(x, SEGMENT_FRAMES, SEGMENT_FRAMES, ceil_mode=True)
    return pooled.repeat_interleave(SEGMENT_FRAMES, dim=-1)[..., :t]


class _CAMLayer(nn.Module):
    def __init__(self, bn_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU()
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.linear_local(x)
        context = x.mean(dim=-1, keepdim=True) + _segment_pool(x)
        gate = torch.sigmoid(self.linear2(self.relu(self.linear1(context))))
        return local * gate


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth_rate: int, bn_channels: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _BNReLU(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _BNReLU(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, growth_rate, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.nonlinear2(self.linear1(self.nonlinear1(x)))
        return self.cam_layer(y)


class _DenseBlock(nn.Module):
    """Layers `tdnnd1..tdnndN`; each output is concatenated to the running input along channels."""

    def __init__(
        self, layers: int, in_channels: int, growth_rate: int, bn_channels: int, dilation: int
    ) -> None:
        super().__init__()
        for i in range(layers):
            layer = _DenseLayer(in_channels + i * growth_rate, growth_rate, bn_channels, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _BNReLU(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class _Dense(nn.Module):
    """1x1 conv to the embedding size, then BatchNorm1d without affine parameters."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)


class CAMPPlus(nn.Module):
    """CAM++ speaker encoder: fbank `[B, F, feat_dim]` -> style `[B, embedding_size]` (use in eval mode)."""

    def __init__(self, config: CAMPPlusConfig | None = None) -> None:
        super().__init__()
        cfg = config or CAMPPlusConfig()
        self.config = cfg
        self.head = _FCMHead(cfg.feat_dim)
        bn_channels = cfg.bn_size * cfg.growth_rate
        xvector = nn.Sequential()
        xvector.add_module("tdnn", _TDNN(self.head.out_channels, cfg.init_channels))
        channels = cfg.init_channels
        for i, (layers, dilation) in enumerate(BLOCKS, start=1):
            block = _DenseBlock(layers, channels, cfg.growth_rate, bn_channels, dilation)
            xvector.add_module(f"block{i}", block)
            channels += layers * cfg.growth_rate
            xvector.add_module(f"transit{i}", _Transit(channels, channels // 2))
            channels //= 2
        xvector.add_module("out_nonlinear", _BNReLU(channels))
        xvector.add_module("stats", _StatsPool())
        xvector.add_module("dense", _Dense(channels * 2, cfg.embedding_size))
        self.xvector = xvector

    def forward(
        self, feat: torch.Tensor, intermediates: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`feat` `[B, F, feat_dim]` (fbank minus its per-item time mean) -> `[B, embedding_size]`.

        When `intermediates` is a dict, the output of `head` and of every `xvector` stage is stored in it
        under its name (`head`, `tdnn`, `block1`, `transit1`, ..., `out_nonlinear`, `stats`, `dense`).
        """
        if feat.dim() != 3 or feat.shape[-1] != self.config.feat_dim:
            raise ValueError(f"CAMPPlus expects fbank [B, T, {self.config.feat_dim}], got {list(feat.shape)}")
        x = self.head(feat.transpose(1, 2).unsqueeze(1))
        if intermediates is not None:
            intermediates["head"] = x
        for name, stage in self.xvector.named_children():
            x = stage(x)
            if intermediates is not None:
                intermediates[name] = x
        return x


def build_campplus(cfg: CAMPPlusConfig | Mapping[str, Any] | None = None) -> CAMPPlus:
    """A CAMPPlus in eval mode at `cfg` (default: the official `CAMPPlus(80, 192)`)."""
    if isinstance(cfg, Mapping):
        cfg = CAMPPlusConfig.from_dict(cfg)
    return CAMPPlus(cfg).eval()


def load_campplus(
    path_or_state: str | Path | Mapping[str, torch.Tensor],
    cfg: CAMPPlusConfig | Mapping[str, Any] | None = None,
) -> CAMPPlus:
    """Build CAMPPlus at `cfg` and load `path_or_state` strictly (e.g. `campplus_cn_common.bin`).

    Every key and shape must match; otherwise one-line `CheckpointError` naming the first offending key.
    """
    if isinstance(path_or_state, (str, Path)):
        source = str(path_or_state)
        state = load_state_dict_file(path_or_state)
    elif isinstance(path_or_state, Mapping):
        source = "CAMPPlus state dict"
        state = dict(path_or_state)
    else:
        raise CheckpointError(
            f"CAMPPlus: expected a path or a state dict, got {type(path_or_state).__name__}"
        )
    model = build_campplus(cfg)
    strict_load_module(model, state, source, what="CAMPPlus")
    return model.eval()
