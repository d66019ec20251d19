"""The semantic codecs, our implementation, loading the official files strictly: MaskGCT's RepCodec
(v2; features [B, T, 1024] → codes [B, T] at 50 Hz) and IndexTTS-2.5's EnhancedCodec (codes [B, ⌈T/2⌉]
at 25 Hz, and `decode` back to 50 Hz content for S2Mel)."""

from .config import CODEC_PRESETS, CodecConfig, codec_preset
from .enhanced import EnhancedCodec
from .loading import (
    TINY_CODEC_LABEL,
    TINY_CODEC_PRESETS,
    build_codec,
    codec_fingerprint,
    load_codec,
    new_codec,
    strict_load_codec,
)
from .repcodec import RepCodec

__all__ = [
    "CODEC_PRESETS",
    "TINY_CODEC_LABEL",
    "TINY_CODEC_PRESETS",
    "CodecConfig",
    "EnhancedCodec",
    "RepCodec",
    "build_codec",
    "codec_fingerprint",
    "codec_preset",
    "load_codec",
    "new_codec",
    "strict_load_codec",
]
