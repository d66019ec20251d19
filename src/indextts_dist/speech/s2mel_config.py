"""Configuration of the S2Mel model (gpt_layer + length regulator + CFM/DiT estimator).

Built from the official `s2mel:` block of `checkpoints/config.yaml` (`S2MelConfig.from_dict`); only the
fields that shape the inference path or the state-dict layout are kept. Written from
`shared/indextts2/S2MEL.md` (d), (e).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError

__all__ = ["CONTENT_DIM", "GPT_LATENT_DIM", "S2MelConfig", "s2mel_preset"]

GPT_LATENT_DIM = 1280
"""Width of the GPT latents fed to `gpt_layer` (hard-coded officially)."""
CONTENT_DIM = 1024
"""Width of the content embedding (vq2emb output, gpt_layer output); hard-coded officially."""


@dataclass(frozen=True)
class S2MelConfig:
    gpt_latent_dim: int = GPT_LATENT_DIM
    """Input width of `gpt_layer`: the GPT stage's model_dim (1280 officially; 64 for our tiny GPT)."""
    # length regulator
    lr_channels: int = 512
    lr_in_channels: int = CONTENT_DIM
    lr_codebook_size: int = 2048
    sampling_ratios: tuple[int, ...] = (1, 1, 1, 1)
    # DiT
    hidden_dim: int = 512
    num_heads: int = 8
    depth: int = 13
    in_channels: int = 80
    content_dim: int = 512
    content_codebook_size: int = 1024
    block_size: int = 16384
    # WaveNet head
    wavenet_hidden_dim: int = 512
    wavenet_layers: int = 8
    wavenet_kernel_size: int = 5
    wavenet_dilation_rate: int = 1
    # style (CAMPPlus embedding width)
    style_dim: int = 192
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.hidden_dim != self.wavenet_hidden_dim:
            raise InputError(
                f"DiT.hidden_dim ({self.hidden_dim}) must equal "
                f"wavenet.hidden_dim ({self.wavenet_hidden_dim})"
            )
        if self.content_dim != self.lr_channels:
            raise InputError(
                f"DiT.content_dim ({self.content_dim}) must equal "
                f"length_regulator.channels ({self.lr_channels})"
            )
        if self.hidden_dim % self.num_heads:
            raise InputError(
                f"DiT.hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}"
            )
        if (self.hidden_dim // self.num_heads) % 2:
            raise InputError("the DiT head dimension must be even (RoPE rotates pairs)")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def ffn_dim(self) -> int:
        """The next multiple of 256 at or above ⌊8H/3⌋."""
        base = int(2 * 4 * self.hidden_dim / 3)
        return -(-base // 256) * 256

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        data["sampling_ratios"] = list(self.sampling_ratios)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> S2MelConfig:
        """Accept either our flat `to_dict()` form or the official `s2mel:` block."""
        if "DiT" not in data:
            flat = dict(data)
            flat["sampling_ratios"] = tuple(flat.get("sampling_ratios", (1, 1, 1, 1)))
            return cls(**flat)
        lr, dit, wn = data["length_regulator"], data["DiT"], data["wavenet"]
        if lr.get("is_discrete", False) or lr.get("f0_condition", False) or dit.get("f0_condition", False):
            raise InputError(
                "only the continuous length regulator without f0 is supported (IndexTTS2 config)"
            )
        for flag, want in (
            ("time_as_token", False),
            ("style_as_token", False),
            ("is_causal", False),
            ("long_skip_connection", True),
            ("uvit_skip_connection", True),
            ("final_layer_type", "wavenet"),
        ):
            if dit.get(flag, want) != want:
                raise InputError(
                    f"unsupported DiT setting {flag}={dit.get(flag)!r} (IndexTTS2 uses {want!r})"
                )
        return cls(
            lr_channels=int(lr["channels"]),
            lr_in_channels=int(lr.get("in_channels", CONTENT_DIM)),
            lr_codebook_size=int(lr.get("content_codebook_size", 2048)),
            sampling_ratios=tuple(int(r) for r in lr["sampling_ratios"]),
            hidden_dim=int(dit["hidden_dim"]),
            num_heads=int(dit["num_heads"]),
            depth=int(dit["depth"]),
            in_channels=int(dit.get("in_channels", 80)),
            content_dim=int(dit["content_dim"]),
            content_codebook_size=int(dit.get("content_codebook_size", 1024)),
            wavenet_hidden_dim=int(wn["hidden_dim"]),
            wavenet_layers=int(wn["num_layers"]),
            wavenet_kernel_size=int(wn["kernel_size"]),
            wavenet_dilation_rate=int(wn["dilation_rate"]),
            style_dim=int(data["style_encoder"]["dim"]),
        )


def s2mel_preset(name: str = "official-v2") -> S2MelConfig:
    """`official-v2` (the released s2mel.pth layout) or `tiny` (the reference-fixture config)."""
    if name == "official-v2":
        return S2MelConfig()
    if name == "tiny":
        return S2MelConfig(
            lr_channels=64,
            lr_codebook_size=16,
            hidden_dim=64,
            num_heads=4,
            depth=5,
            content_dim=64,
            content_codebook_size=16,
            wavenet_hidden_dim=64,
            wavenet_layers=3,
            style_dim=32,
        )
    raise InputError(f"unknown S2Mel preset {name!r} (known: official-v2, tiny)")
