"""Building a semantic codec from a preset or config, loading its weights strictly, fingerprinting it.

The config decides the class: `downsample_scale` 1 is v2's `RepCodec` (MaskGCT
`semantic_codec/model.safetensors`), 2 is 2.5's `EnhancedCodec` (`codec.pth`, which may also carry
optimizer state: only its `model` entry is read, with `weights_only=True`, so nothing is unpickled).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..model.checkpoint import (
    CheckpointError,
    load_state_dict_file,
    state_dict_fingerprint,
    strict_load_module,
)
from ..weights_layout import WeightsLayoutV25
from .config import CodecConfig, codec_preset
from .enhanced import EnhancedCodec
from .repcodec import RepCodec

__all__ = [
    "TINY_CODEC_LABEL",
    "TINY_CODEC_PRESETS",
    "build_codec",
    "codec_fingerprint",
    "load_codec",
    "new_codec",
    "strict_load_codec",
]

TINY_CODEC_LABEL = (
    "tiny codec preset: seeded RANDOM weights, for tests and demos only; its codes mean nothing"
)

TINY_CODEC_PRESETS = ("tiny", "tiny-v2.5", "mini")
"""Codec presets drawn from a seed unless a weights file is given (`mini`: 1024 random codes)."""


def new_codec(cfg: CodecConfig) -> RepCodec:
    """An untrained codec of the class the config describes (RepCodec, or EnhancedCodec at scale 2)."""
    return EnhancedCodec(cfg) if cfg.downsample_scale == 2 else RepCodec(cfg)


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

    `path_or_state` is MaskGCT's `semantic_codec/model.safetensors`, 2.5's `codec.pth` or another
    torch file (bare or under "model"; other entries such as optimizer state are ignored), or a state
    dict already in memory.
    """
    cfg = _resolve_config(preset_or_config)
    if isinstance(path_or_state, (str, Path)):
        state, source = load_state_dict_file(path_or_state), str(path_or_state)
    else:
        state, source = dict(path_or_state), "codec state dict"
    model = new_codec(cfg)
    strict_load_codec(model, state, source=source)
    return model.eval()


def build_codec(
    preset_name: str = "tiny",
    weights: str | Path | None = None,
    *,
    config: CodecConfig | None = None,
    seed: int = 0,
) -> RepCodec:
    """`official-v2`/`official-v2.5` need `weights`; `tiny`/`tiny-v2.5` are seeded random
    (`TINY_CODEC_LABEL`) unless weights are given."""
    cfg = config or codec_preset(preset_name)
    if weights is None and preset_name not in TINY_CODEC_PRESETS:
        names = WeightsLayoutV25(Path("."))
        file = names.codec.name if cfg.downsample_scale == 2 else f"MaskGCT {names.semantic_codec}"
        raise CheckpointError(f"codec preset {preset_name!r} needs its weights file ({file}); none was given")
    if weights is not None:
        return load_codec(weights, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = new_codec(cfg)
    return model.eval()


def codec_fingerprint(codec: RepCodec | Mapping[str, torch.Tensor]) -> str:
    """sha256 over key names, shapes and values: names the codec a set of extracted codes came from."""
    state = codec.state_dict() if isinstance(codec, RepCodec) else codec
    return state_dict_fingerprint(state)
