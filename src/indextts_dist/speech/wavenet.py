"""Weight-normed layers and the gated WaveNet head of the S2Mel estimator (S2MEL.md (e).6, (i)).

Weight norm uses the legacy layout (`bias`, `weight_g`, `weight_v`; effective weight g·v/‖v‖ with the
norm over every dim but 0) so the released checkpoint loads strictly under its own key names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WaveNet", "WeightNormConv1d", "WeightNormLinear", "reflect_pad1d"]


class _WeightNormed(nn.Module):
    """The legacy weight-norm parameters of a layer whose `weight_v` has shape `v_shape`: `bias`,
    `weight_g` (one norm per output row) and `weight_v`, registered in the released order."""

    def __init__(self, v_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(v_shape[0]))
        self.weight_g = nn.Parameter(torch.empty(v_shape[0], *([1] * (len(v_shape) - 1))))
        self.weight_v = nn.Parameter(torch.empty(v_shape))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch's default Linear/Conv init for `weight_v` and `bias`, and `weight_g` = the norm of
        each output row of `weight_v`, so the layer starts equal to a plain one."""
        if self.weight_v.is_meta:
            return
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        fan_in = math.prod(self.weight_v.shape[1:])
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=self._norm_dims, keepdim=True))

    @property
    def _norm_dims(self) -> tuple[int, ...]:
        return tuple(range(1, self.weight_v.dim()))

    @property
    def weight(self) -> torch.Tensor:
        """g · v / ‖v‖, the norm over every dim but 0."""
        v = self.weight_v
        return v * (self.weight_g / torch.linalg.vector_norm(v, dim=self._norm_dims, keepdim=True))


class WeightNormLinear(_WeightNormed):
    """Linear with legacy weight norm: keys `bias`, `weight_g` [out, 1], `weight_v` [out, in]."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__((out_features, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class WeightNormConv1d(_WeightNormed):
    """Conv1d (no built-in padding) with legacy weight norm: `bias`, `weight_g` [out,1,1], `weight_v`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> None:
        super().__init__((out_channels, in_channels, kernel_size))
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, dilation=self.dilation)


class _Wrap(nn.Module):
    """One level of nesting (`.conv`), so keys read `<layer>.conv.conv.weight_g` as in the release."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.conv = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def reflect_pad1d(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the signal is not longer than the pad.

    Short inputs are zero-extended on the right to max_pad + 1 samples, reflected, and the extra
    samples removed from the end.
    """
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = 0
    if length <= max_pad:
        extra = max_pad - length + 1
        x = F.pad(x, (0, extra))
    out = F.pad(x, (left, right), mode="reflect")
    return out[..., : out.shape[-1] - extra] if extra else out


class _ReflectConv(nn.Module):
    """Weight-normed dilated conv with 'same' reflect padding (left gets the larger half)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = _Wrap(WeightNormConv1d(in_channels, out_channels, kernel_size, dilation))
        total = (kernel_size - 1) * dilation
        self.pad = (total - total // 2, total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(reflect_pad1d(x, *self.pad))


class _Pointwise(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = _Wrap(WeightNormConv1d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class WaveNet(nn.Module):
    """Gated non-causal WaveNet conditioned on a global vector (t2). Dropout is inference-off.

    Keys: `in_layers.i`, `res_skip_layers.i`, `cond_layer` (each `.conv.conv.{bias,weight_g,weight_v}`).
    """

    def __init__(self, hidden: int, num_layers: int, kernel_size: int, dilation_rate: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_layers = num_layers
        self.in_layers = nn.ModuleList(
            _ReflectConv(hidden, 2 * hidden, kernel_size, dilation_rate**i) for i in range(num_layers)
        )
        self.res_skip_layers = nn.ModuleList(
            _Pointwise(hidden, 2 * hidden if i < num_layers - 1 else hidden) for i in range(num_layers)
        )
        self.cond_layer = _Pointwise(hidden, 2 * hidden * num_layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """x [B, Hw, T], mask [B, 1, T] (1 = valid), g [B, Hw, 1] → [B, Hw, T] (masked)."""
        hw = self.hidden
        cond = self.cond_layer(g)
        out = torch.zeros_like(x)
        for i in range(self.num_layers):
            a = self.in_layers[i](x) + cond[:, 2 * hw * i : 2 * hw * (i + 1)]
            acts = torch.tanh(a[:, :hw]) * torch.sigmoid(a[:, hw:])
            r = self.res_skip_layers[i](acts)
            if i < self.num_layers - 1:
                x = (x + r[:, :hw]) * mask
                out = out + r[:, hw:]
            else:
                out = out + r
        return out * mask
