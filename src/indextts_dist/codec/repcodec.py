"""MaskGCT's semantic codec (`RepCodec`) as IndexTTS2 uses it: w2v-BERT features → 50 Hz codes.

IndexTTS2 runs two things only: `quantize` on the speaker prompt's features (the codes are the GPT's
training targets; the embedding is S2Mel's prompt) and `quantizer.vq2emb` on generated codes. The
`decoder` exists so the released `semantic_codec/model.safetensors` loads strictly; it is never run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..model.checkpoint import (
    CheckpointError,
    load_state_dict_file,
    state_dict_fingerprint,
    strict_load_module,
)
from .backbone import VocosBackbone
from .config import CodecConfig, codec_preset
from .quantizer import ResidualVQ

__all__ = [
    "TINY_CODEC_LABEL",
    "RepCodec",
    "build_codec",
    "codec_fingerprint",
    "load_codec",
    "strict_load_codec",
]

TINY_CODEC_LABEL = (
    "tiny codec preset: seeded RANDOM weights, for tests and demos only; its codes mean nothing"
)


def _backbone_and_projection(cfg: CodecConfig) -> nn.Sequential:
    """`VocosBackbone` + Linear(vocos_dim → hidden): keys `<part>.0.*` and `<part>.1.*`."""
    return nn.Sequential(
        VocosBackbone(cfg.hidden_size, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers),
        nn.Linear(cfg.vocos_dim, cfg.hidden_size),
    )


class RepCodec(nn.Module):
    """Encoder + single-stage factorized VQ (+ an unused decoder), in the official state-dict layout."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _backbone_and_projection(cfg)
        self.decoder = _backbone_and_projection(cfg)  # only for the strict load; never run
        self.quantizer = ResidualVQ(cfg.num_quantizers, cfg.hidden_size, cfg.codebook_size, cfg.codebook_dim)

    def _check_features(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.cfg.hidden_size:
            raise ValueError(
                f"codec input must be time-major [B, T, {self.cfg.hidden_size}] (normalized w2v-BERT "
                f"layer-17 features), got shape {list(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, hidden] → encoder output [B, hidden, T] (channel-major: what the quantizer takes).

        No mask: padding frames leak into the last ±(3 + 3·layers) frames of shorter items, exactly
        as in the official code, which only ever runs B = 1 unpadded.
        """
        self._check_features(x)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, hidden] → (codes [B, T] int64, quantized [B, T, hidden]); one code per frame."""
        quantized, codes = self.quantizer(self.encode(x))
        return codes.squeeze(0), quantized.transpose(1, 2)

    def codes_to_embedding(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] → [B, hidden, T] for any B.

        The official `vq2emb(codes.unsqueeze(1))` is right for B = 1 only; this is `vq2emb(codes[None])`.
        """
        if codes.dim() != 2:
            raise ValueError(f"codes_to_embedding expects codes [B, T], got shape {list(codes.shape)}")
        return self.quantizer.vq2emb(codes[None])


def _resolve_config(preset_or_config: str | CodecConfig | Mapping) -> CodecConfig:
    if isinstance(preset_or_config, CodecConfig):
        return preset_or_config
    if isinstance(preset_or_config, str):
        return codec_preset(preset_or_config)
    return CodecConfig.from_dict(dict(preset_or_config))


def strict_load_codec(
    model: RepCodec, state: Mapping[str, torch.Tensor], source: str = "codec checkpoint"
) -> None:
    """Load `state` with every key and shape checked; a misfit is ONE line naming the first bad key."""
    strict_load_module(model, state, source, what="codec")


def load_codec(
    path_or_state: str | Path | Mapping[str, torch.Tensor],
    preset_or_config: str | CodecConfig | Mapping = "official-v2",
) -> RepCodec:
    """Build the codec for a preset name, a `CodecConfig` or an official config block, load strictly, eval.

    `path_or_state` is MaskGCT's `semantic_codec/model.safetensors`, a torch file (bare or under
    "model"), or a state dict already in memory.
    """
    cfg = _resolve_config(preset_or_config)
    if isinstance(path_or_state, (str, Path)):
        state, source = load_state_dict_file(path_or_state), str(path_or_state)
    else:
        state, source = dict(path_or_state), "codec state dict"
    model = RepCodec(cfg)
    strict_load_codec(model, state, source=source)
    return model.eval()


def build_codec(
    preset_name: str = "tiny",
    weights: str | Path | None = None,
    *,
    config: CodecConfig | None = None,
    seed: int = 0,
) -> RepCodec:
    """`official-v2` needs `weights`; `tiny` is seeded random (`TINY_CODEC_LABEL`) unless weights given."""
    cfg = config or codec_preset(preset_name)
    if weights is None and preset_name not in ("tiny", "mini"):
        raise CheckpointError(
            f"codec preset {preset_name!r} needs its weights file "
            "(MaskGCT semantic_codec/model.safetensors); none was given"
        )
    if weights is not None:
        return load_codec(weights, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RepCodec(cfg)
    return model.eval()


def codec_fingerprint(codec: RepCodec | Mapping[str, torch.Tensor]) -> str:
    """sha256 over key names, shapes and values: names the codec a set of extracted codes came from."""
    state = codec.state_dict() if isinstance(codec, RepCodec) else codec
    return state_dict_fingerprint(state)
