"""IndexTTS-2.5's semantic codec (`EnhancedCodec`): v2's RepCodec plus stride-2 down/up convolutions.

Features [B, T, 1024] at 50 Hz → `gelu(down(x))` (T' = ⌈T/2⌉, 25 Hz) → encoder → VQ → codes [B, T'].
`decode` runs the way back (vq2emb → decoder → nearest ×2 → `up`) to [B, 2T', 1024]: 2.5 inference
feeds that to S2Mel instead of GPT latents (SPEC_2_5 §5.1, §8). `reconstruct` is the codec's own
training forward, kept so the reference's `forward_*` outputs can be checked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CodecConfig
from .repcodec import RepCodec

__all__ = ["EnhancedCodec"]


class EnhancedCodec(RepCodec):
    """`down` Conv1d(H, H, k3, s2, p1) before the encoder and `up` Conv1d(H, H, k3, s1, p1) after the
    decoder's ×2 nearest upsampling; the rest (keys included) is RepCodec's."""

    DOWNSAMPLE_SCALE = 2

    def _add_resampling(self, cfg: CodecConfig) -> None:
        h = cfg.hidden_size
        self.down = nn.Conv1d(h, h, kernel_size=3, stride=2, padding=1)
        self.up = nn.Conv1d(h, h, kernel_size=3, stride=1, padding=1)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, H] → gelu(down(xᵀ)) [B, H, ⌈T/2⌉]: an odd last frame is kept (as `quantize` does)."""
        self._check_features(x)
        return F.gelu(self.down(x.transpose(1, 2)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, H] → encoder output [B, H, ⌈T/2⌉] (channel-major: what the quantizer takes)."""
        return self.encoder(self.downsample(x)).transpose(1, 2)

    def decode_embedding(self, emb: torch.Tensor) -> torch.Tensor:
        """Quantized embedding [B, H, T'] → decoder → nearest ×2 → `up`: [B, 2T', H] (time-major)."""
        h = self.decoder(emb).transpose(1, 2)
        return self.up(F.interpolate(h, scale_factor=2, mode="nearest")).transpose(1, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T'] → [B, 2T', H] at 50 Hz: the content S2Mel's length regulator receives in 2.5."""
        return self.decode_embedding(self.codes_to_embedding(codes))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The codec's training forward: (x_rec [B, 2⌊T/2⌋, H], codes [n_q, B, ⌊T/2⌋], MSE loss).

        Unlike `quantize`, an odd last frame is dropped first so x_rec lines up with the input."""
        x = x[:, : x.size(1) // 2 * 2]
        quantized, codes = self.quantizer(self.encode(x))
        x_rec = self.decode_embedding(quantized)
        return x_rec, codes, F.mse_loss(x_rec, x)
