"""One clip's own conditioning: how a per-clip ("v1") model is used, and how v2 is compared with it.

A model trained with `--conditioning per-clip` saw each sample with its own clip's conditioning,
so it generates with the conditioning of a reference clip the user names (the guide's "old way"):
the clip is decoded and trimmed as preprocess does (`audio.prepare_clip`), its w2v-BERT features
(`features.SemanticFeatures`, the preset's) go through the base GPT's conditioning encoders, and the
speaker latents and emotion vector come out exactly as preprocess computed them for a training
clip. The result is a `GlobalConditioning` of one clip (method `clip`), tied to the same base.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..audio import ClipRejected, prepare_clip
from ..conditioning import GlobalConditioning
from ..errors import InputError
from ..features import SemanticFeatures
from ..model import RANDOM_PRESETS, build_model
from .base_model import BaseSpec

__all__ = ["clip_conditioning"]


@torch.no_grad()
def clip_conditioning(path: str | Path, base: BaseSpec, weights_dir: Path | None) -> GlobalConditioning:
    """The conditioning of the clip at `path` on `base` (float32, host)."""
    if base.gpt_config.is_v25:  # its speaker row needs the clip's CAMPPlus style (the second stage)
        raise InputError(f"{path}: a reference clip's conditioning is not available for IndexTTS-2.5 "
                         "models yet; use the package's global conditioning")  # fmt: skip
    try:
        clip = prepare_clip(path, min_seconds=0.5, max_seconds=60.0)
    except ClipRejected as exc:
        raise InputError(f"{path}: cannot be a reference clip ({exc.reason}: {exc.detail})") from None
    if base.preset in RANDOM_PRESETS:  # seeded random w2v-BERT, whether or not the GPT is pretrained
        features = SemanticFeatures.tiny(base.seed)
    elif weights_dir is not None:
        features = SemanticFeatures.official(weights_dir)
    else:
        raise InputError(
            "a reference clip on official weights needs --weights-dir (or $INDEXTTS_WEIGHTS_DIR)"
        )
    gpt = build_model(base.preset, base.weights, config=base.config, seed=base.seed)  # with its encoders
    feats = features(clip.samples)[None].float()
    lengths = torch.tensor([feats.size(1)])
    latents = gpt.get_conditioning(feats, lengths)[0].float()
    emo = gpt.get_emo_vec(feats, lengths)[0].float()
    metadata = {
        "base_model_fingerprint": base.fingerprint(),
        "method": "clip",
        "num_clips": "1",
        "source": Path(path).name,
    }
    return GlobalConditioning(latents, emo, metadata)
