"""BigVGAN v2 generator (`bigvgan_v2_22khz_80band_256x`), IndexTTS2's mel vocoder, from S2MEL.md (g), (i).

Input is a log-mel `[B, num_mels, F]`; output is a waveform `[B, 1, F · prod(upsample_rates)]` in [-1, 1].

Checkpoint layouts ((i)): the official file holds every conv either weight-normed (`<conv>.weight_g` +
`<conv>.weight_v`, 783 keys at the official size) or folded (`<conv>.weight`, 667 keys); the official
loader accepts both, and IndexTTS2 then runs with the weights folded (`remove_weight_norm`). We do the
same: `load_bigvgan` folds a weight-norm layout (w = g·v/‖v‖, norm over all dims but 0) and loads the
result strictly into a plain-weight generator. `BigVGAN(cfg, weight_norm=True)` registers the weight-norm
pair instead (the layout the official class has when constructed), for manifest checks and training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..model.checkpoint import CheckpointError, load_state_dict_file, strict_load_module
from .bigvgan_activations import Activation1d, Snake, SnakeBeta

__all__ = [
    "BIGVGAN_TINY",
    "AMPBlock1",
    "BigVGAN",
    "BigVGANConfig",
    "build_bigvgan",
    "fold_weight_norm",
    "load_bigvgan",
]


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class BigVGANConfig:
    """Generator-relevant keys of the official `config.json` (same names; defaults = the 22 kHz 80-band
    256× v2 model). Training-only keys of the JSON are ignored by `from_dict`."""

    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = field(
        default_factory=lambda: ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    )
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = False
    use_bias_at_final: bool = False
    sampling_rate: int = 22050
    hop_size: int = 256
    n_fft: int = 1024
    win_size: int = 1024
    fmin: float = 0
    fmax: float | None = None

    def __post_init__(self) -> None:
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(
            self,
            "resblock_dilation_sizes",
            tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes),
        )
        if self.resblock != "1":
            raise InputError(f"BigVGAN resblock {self.resblock!r} is not supported (only '1', AMPBlock1)")
        if self.activation not in ("snake", "snakebeta"):
            raise InputError(f"BigVGAN activation {self.activation!r} is not supported (snake | snakebeta)")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise InputError("BigVGAN: upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise InputError("BigVGAN: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            if (kernel - rate) % 2:
                raise InputError(f"BigVGAN: upsample kernel {kernel} - rate {rate} must be even")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise InputError("BigVGAN: upsample_initial_channel must halve cleanly at every stage")

    @property
    def total_upsample(self) -> int:
        """Output samples per mel frame (256 officially)."""
        out = 1
        for rate in self.upsample_rates:
            out *= rate
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BigVGANConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return out


BIGVGAN_TINY = BigVGANConfig(upsample_initial_channel=128)
"""The size of `reference_s2mel_tiny` (`config.bigvgan`): official layout, channels 128 → 2."""


class _WNConv(nn.Module):
    """Conv1d / ConvTranspose1d holding either a plain `weight` or the legacy weight-norm pair
    (`weight_g`, `weight_v`; dim 0). Registration order follows the official state dict: bias first."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        transposed: bool = False,
        stride: int = 1,
        dilation: int = 1,
        padding: int = 0,
        bias: bool = True,
        weight_norm: bool = False,
    ) -> None:
        super().__init__()
        self.transposed = transposed
        self.stride = stride
        self.dilation = dilation
        self.padding = padding
        shape = (
            (in_channels, out_channels, kernel_size)
            if transposed
            else (out_channels, in_channels, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if weight_norm:
            self.weight_g = nn.Parameter(torch.ones(shape[0], 1, 1))
            self.weight_v = nn.Parameter(torch.empty(shape))
            nn.init.normal_(self.weight_v, std=0.01)
        else:
            self.weight = nn.Parameter(torch.empty(shape))
            nn.init.normal_(self.weight, std=0.01)
        self.weight_norm = weight_norm

    def effective_weight(self) -> torch.Tensor:
        if self.weight_norm:
            return torch._weight_norm(self.weight_v, self.weight_g, 0)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        if self.transposed:
            return F.conv_transpose1d(x, weight, self.bias, stride=self.stride, padding=self.padding)
        return F.conv1d(
            x, weight, self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation
        )


def _activation(cfg: BigVGANConfig, channels: int) -> Activation1d:
    cls = SnakeBeta if cfg.activation == "snakebeta" else Snake
    return Activation1d(cls(channels, logscale=cfg.snake_logscale))


class AMPBlock1(nn.Module):
    """x += convs2.n(act(convs1.n(act(x)))) for each dilation; activations 2n / 2n+1."""

    def __init__(
        self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: Sequence[int], weight_norm: bool
    ) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            _WNConv(
                channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2, weight_norm=weight_norm
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            _WNConv(channels, channels, kernel, padding=(kernel - 1) // 2, weight_norm=weight_norm)
            for _ in dilations
        )
        self.activations = nn.ModuleList(_activation(cfg, channels) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            y = self.activations[2 * n](x)
            y = c1(y)
            y = self.activations[2 * n + 1](y)
            y = c2(y)
            x = x + y
        return x


class BigVGAN(nn.Module):
    """The generator: conv_pre → (upsample, mean of AMP blocks) per stage → act_post → conv_post → clamp."""

    def __init__(self, config: BigVGANConfig | None = None, *, weight_norm: bool = False) -> None:
        super().__init__()
        cfg = config or BigVGANConfig()
        self.config = cfg
        self.weight_norm = weight_norm
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = _WNConv(cfg.num_mels, ch0, 7, padding=3, weight_norm=weight_norm)
        self.ups = nn.ModuleList(
            nn.ModuleList(
                [
                    _WNConv(
                        ch0 // 2**i,
                        ch0 // 2 ** (i + 1),
                        k,
                        transposed=True,
                        stride=u,
                        padding=(k - u) // 2,
                        weight_norm=weight_norm,
                    )
                ]
            )
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList(
            AMPBlock1(cfg, ch0 // 2 ** (i + 1), k, d, weight_norm)
            for i in range(self.num_upsamples)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True)
        )
        ch_out = ch0 // 2**self.num_upsamples
        self.activation_post = _activation(cfg, ch_out)
        self.conv_post = _WNConv(ch_out, 1, 7, padding=3, bias=cfg.use_bias_at_final, weight_norm=weight_norm)

    def _run(self, mel: torch.Tensor, taps: dict[str, torch.Tensor] | None) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"BigVGAN expects a mel [B, {self.config.num_mels}, F], got {list(mel.shape)}")
        x = self.conv_pre(mel)
        if taps is not None:
            taps["conv_pre"] = x
        for i in range(self.num_upsamples):
            for layer in self.ups[i]:
                x = layer(x)
            if taps is not None:
                taps[f"up{i}"] = x
            acc = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                acc = y if acc is None else acc + y
            x = acc / self.num_kernels
            if taps is not None:
                taps[f"stage{i}"] = x
        x = self.activation_post(x)
        if taps is not None:
            taps["act_post"] = x
        x = self.conv_post(x)
        if taps is not None:
            taps["pre_clamp"] = x
        x = torch.tanh(x) if self.config.use_tanh_at_final else torch.clamp(x, -1.0, 1.0)
        if taps is not None:
            taps["wav"] = x
        return x

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel `[B, num_mels, F]` → wav `[B, 1, F · total_upsample]`."""
        return self._run(mel, None)

    def forward_with_intermediates(self, mel: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Like `forward`, also returning `conv_pre`, `up{i}`, `stage{i}`, `act_post`, `pre_clamp`, `wav`."""
        taps: dict[str, torch.Tensor] = {}
        wav = self._run(mel, taps)
        return wav, taps


def build_bigvgan(
    cfg: BigVGANConfig | Mapping[str, Any] | None = None, *, weight_norm: bool = False
) -> BigVGAN:
    if isinstance(cfg, Mapping):
        cfg = BigVGANConfig.from_dict(cfg)
    return BigVGAN(cfg, weight_norm=weight_norm)


def fold_weight_norm(state: Mapping[str, torch.Tensor], source: str = "BigVGAN") -> dict[str, torch.Tensor]:
    """Replace every `<p>.weight_g` + `<p>.weight_v` pair by `<p>.weight` = g·v/‖v‖ (norm over all dims
    but 0, as `remove_weight_norm` does); other keys pass through. A half pair is a `CheckpointError`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_g") or key.endswith(".weight_v"):
            prefix = key[: -len("_g")]
            g_key, v_key = prefix + "_g", prefix + "_v"
            if g_key not in state:
                raise CheckpointError(f"{source}: missing key {g_key!r} (weight-norm pair of {v_key!r})")
            if v_key not in state:
                raise CheckpointError(f"{source}: missing key {v_key!r} (weight-norm pair of {g_key!r})")
            if prefix in out:
                continue
            if prefix in state:
                raise CheckpointError(f"{source}: key {prefix!r} is present both folded and weight-normed")
            g, v = state[g_key], state[v_key]
            if g.dim() != v.dim() or g.shape[0] != v.shape[0] or g.numel() != g.shape[0]:
                raise CheckpointError(
                    f"{source}: key {g_key!r} has shape {list(g.shape)}, which does not fit {v_key!r} "
                    f"{list(v.shape)}"
                )
            dtype = torch.promote_types(g.dtype, torch.float32) if g.is_floating_point() else torch.float32
            out[prefix] = torch._weight_norm(v.to(dtype), g.to(dtype), 0)
        else:
            out[key] = value
    return out


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    """safetensors / torch file; `{'generator': sd}` (the official `bigvgan_generator.pt`) is unwrapped."""
    if path.suffix == ".safetensors" or not path.is_file():
        return load_state_dict_file(path)
    try:
        data: object = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the libraries raise many types for a corrupt file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from exc
    if isinstance(data, Mapping):
        for wrapper in ("generator", "model"):
            if wrapper in data and isinstance(data[wrapper], Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (optionally under 'generator')")
    return dict(data)


def load_bigvgan(
    path_or_state: str | Path | Mapping[str, torch.Tensor],
    cfg: BigVGANConfig | Mapping[str, Any] | None = None,
) -> BigVGAN:
    """Build BigVGAN at `cfg` (default: official) and load `path_or_state` strictly, in eval mode.

    Accepts the weight-norm layout (folded here, as IndexTTS2 does) or the folded one; the 218 (official)
    filter buffers must be present. A misfit is a one-line `CheckpointError` naming the first bad key.
    """
    if isinstance(path_or_state, (str, Path)):
        source = str(path_or_state)
        state = _read_file(Path(path_or_state))
    elif isinstance(path_or_state, Mapping):
        source = "BigVGAN state dict"
        state = dict(path_or_state)
    else:
        raise CheckpointError(f"BigVGAN: expected a path or a state dict, got {type(path_or_state).__name__}")
    model = build_bigvgan(cfg)
    strict_load_module(model, fold_weight_norm(state, source), source, what="BigVGAN")
    return model.eval()
