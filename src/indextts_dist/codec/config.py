"""The semantic codec's configuration: the official `semantic_codec:` block of IndexTTS2's `config.yaml`.

The same block builds 2.5's `EnhancedCodec`; only the constructor default `downsample_scale` differs
(1 for v2's RepCodec, 2 for EnhancedCodec: stride-2 down/up convolutions, 25 Hz codes).

Same keys as the official block (plus the two constructor defaults it relies on), so the block pasted
from the released `config.yaml`, or a reference file's `config`, builds the model that loads MaskGCT's
`semantic_codec/model.safetensors` strictly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError

__all__ = ["CODEC_PRESETS", "FEATURE_RATE_HZ", "CodecConfig", "codec_preset"]

FEATURE_RATE_HZ = 50
"""Frames per second of the codec's input (w2v-BERT 2.0 features: a 20 ms hop at 16 kHz)."""


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class CodecConfig:
    """The `semantic_codec:` block (v2, 2.5) with `num_quantizers` and `downsample_scale` made explicit."""

    codebook_size: int = 8192
    """Number of semantic codes; the GPT's `number_mel_codes` is this + start + stop."""
    hidden_size: int = 1024
    """Width of the input features (w2v-BERT 2.0) and of the quantized embedding S2Mel consumes."""
    codebook_dim: int = 8
    """Width of the factorized codebook; the nearest neighbour is searched in this space."""
    vocos_dim: int = 384
    """Channels of the ConvNeXt (Vocos) backbone."""
    vocos_intermediate_dim: int = 2048
    """Inner width of each ConvNeXt block's pointwise MLP."""
    vocos_num_layers: int = 12
    """ConvNeXt blocks per backbone; the receptive field is ±(3 + 3·layers) frames."""
    num_quantizers: int = 1
    """Residual VQ stages. A constructor default the official config never sets; only 1 exists."""
    downsample_scale: int = 1
    """Temporal downsampling, a constructor default: 1 = one code per 50 Hz feature frame (v2's
    RepCodec); 2 = 2.5's EnhancedCodec, one code per two frames (25 Hz)."""

    def __post_init__(self) -> None:
        # Other values would add modules (more stages, other strides) that no IndexTTS file holds.
        if self.num_quantizers != 1:
            raise InputError(f"codec num_quantizers={self.num_quantizers} is not supported (only 1)")
        if self.downsample_scale not in (1, 2):
            raise InputError(
                f"codec downsample_scale={self.downsample_scale} is not supported "
                "(1: v2 RepCodec, 2: 2.5 EnhancedCodec)"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"codec {f.name} must be a positive integer, got {value!r}")

    @property
    def code_rate(self) -> float:
        """Codes per second of audio: 50 for v2's RepCodec, 25 for 2.5's EnhancedCodec."""
        return FEATURE_RATE_HZ / self.downsample_scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecConfig:
        """Build from an official `semantic_codec:` block; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown codec config keys: {', '.join(unknown)}")
        return cls(**data)


CODEC_PRESETS: dict[str, CodecConfig] = {
    "official-v2": CodecConfig(),
    # Exactly the config of `reference_codec_tiny.*`; its 64 codes are the tiny GPT preset's codebook.
    "tiny": CodecConfig(codebook_size=64, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=2),
    # The `semantic_codec:` block of configs/config_v2_5.yaml@aa01d63 (SPEC_2_5 §1.2, §5.1).
    "official-v2.5": CodecConfig(downsample_scale=2),
    # The tiny sizes with 2.5's down/up convs, at the real 1024-wide w2v-BERT features.
    "tiny-v2.5": CodecConfig(
        codebook_size=64, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=2, downsample_scale=2
    ),
    # The mini GPT preset's codebook: 1024 codes, so that the official decoding's repetition penalty
    # does not run out of codes within a sentence (a 64-code vocabulary does after ~40 codes).
    "mini": CodecConfig(codebook_size=1024, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=2),
}


def codec_preset(name: str) -> CodecConfig:
    """Return a named codec preset (`official-v2`, `tiny`, `official-v2.5` or `tiny-v2.5`)."""
    try:
        return CODEC_PRESETS[name]
    except KeyError:
        raise InputError(
            f"unknown codec preset {name!r}; choose one of: {', '.join(CODEC_PRESETS)}"
        ) from None
