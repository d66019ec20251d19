"""MaskGCT's semantic codec (RepCodec) as IndexTTS2 uses it: our implementation, loading the official file
strictly. Features [B, T, 1024] → codes [B, T] (50 Hz) and the embedding S2Mel consumes."""

from .config import CODEC_PRESETS, CodecConfig, codec_preset
from .repcodec import (
    TINY_CODEC_LABEL,
    RepCodec,
    build_codec,
    codec_fingerprint,
    load_codec,
    strict_load_codec,
)

__all__ = [
    "CODEC_PRESETS",
    "TINY_CODEC_LABEL",
    "CodecConfig",
    "RepCodec",
    "build_codec",
    "codec_fingerprint",
    "codec_preset",
    "load_codec",
    "strict_load_codec",
]
