"""MaskGCT's semantic codec (`RepCodec`) as IndexTTS2 uses it: w2v-BERT features → 50 Hz codes.

IndexTTS2 runs two things only: `quantize` on the speaker prompt's features (the codes are the GPT's
training targets; the embedding is S2Mel's prompt) and `quantizer.vq2emb` on generated codes. The
`decoder` exists so the released `semantic_codec/model.safetensors` loads strictly; v2 never runs it
(2.5's `EnhancedCodec`, a subclass, does).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .backbone import VocosBackbone
from .config import CodecConfig
from .quantizer import ResidualVQ

__all__ = ["RepCodec"]


def _backbone_and_projection(cfg: CodecConfig) -> nn.Sequential:
    """`VocosBackbone` + Linear(vocos_dim → hidden): keys `<part>.0.*` and `<part>.1.*`."""
    return nn.Sequential(
        VocosBackbone(cfg.hidden_size, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers),
        nn.Linear(cfg.vocos_dim, cfg.hidden_size),
    )


class RepCodec(nn.Module):
    """Encoder + single-stage factorized VQ (+ an unused decoder), in the official state-dict layout."""

    DOWNSAMPLE_SCALE = 1
    """The `downsample_scale` this class implements (2.5's `EnhancedCodec` has 2)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        if cfg.downsample_scale != self.DOWNSAMPLE_SCALE:
            raise InputError(
                f"{type(self).__name__} needs downsample_scale={self.DOWNSAMPLE_SCALE}, got "
                f"{cfg.downsample_scale} (RepCodec is v2's codec, EnhancedCodec 2.5's)"
            )
        self.cfg = cfg
        self._add_resampling(cfg)  # registered first: the official state-dict order
        self.encoder = _backbone_and_projection(cfg)
        self.decoder = _backbone_and_projection(cfg)  # v2: only for the strict load; 2.5 decodes
        self.quantizer = ResidualVQ(cfg.num_quantizers, cfg.hidden_size, cfg.codebook_size, cfg.codebook_dim)

    def _add_resampling(self, cfg: CodecConfig) -> None:
        """v2 has no temporal resampling; `EnhancedCodec` adds its down/up convolutions here."""

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
        """x [B, T, hidden] → (codes [B, T'] int64, quantized [B, T', hidden]); one code per frame
        (T' = T), or per two frames in `EnhancedCodec` (T' = ⌈T/2⌉)."""
        quantized, codes = self.quantizer(self.encode(x))
        return codes.squeeze(0), quantized.transpose(1, 2)

    def codes_to_embedding(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] → [B, hidden, T] for any B.

        The official `vq2emb(codes.unsqueeze(1))` is right for B = 1 only; this is `vq2emb(codes[None])`.
        """
        if codes.dim() != 2:
            raise ValueError(f"codes_to_embedding expects codes [B, T], got shape {list(codes.shape)}")
        return self.quantizer.vq2emb(codes[None])
