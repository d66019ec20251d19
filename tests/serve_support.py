"""Tiny registered-model packages for the server's tests and benchmark: a seeded non-zero LoRA on the
tiny preset's seed-0 base, a conditioning made for that base, and (by default) the second stage's
speaker embeddings, so the package speaks — noise: the tiny preset is random weights, not speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from indextts_dist.conditioning import GlobalConditioning, save_conditioning
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import TINY_LABEL, base_fingerprint, build_model, preset
from indextts_dist.text import tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import package_model


def tiny_package(root: Path, adapter_seed: int = 0, *, speaker_embeddings: bool = True) -> Path:
    """`root/package`; different `adapter_seed`s give packages that make different audio."""
    from indextts_dist.speech.second_stage import SecondStage, save_speaker_embeddings

    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(adapter_seed)
    model = apply_lora(
        build_model("tiny", with_conditioning_encoders=False), LoraSettings(rank=4, alpha=8, dropout=0.0)
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(str(root / "adapter"), safe_serialization=True)
    fingerprint = base_fingerprint("tiny")
    meta = {"base_model_fingerprint": fingerprint, "method": "mean", "num_clips": "1"}
    cond = GlobalConditioning(torch.randn(32, 64, generator=gen), torch.randn(64, generator=gen), meta)
    cond_path = save_conditioning(cond, root / "global_conditioning.safetensors")
    tiny_tokenizer()
    clip = root / "speaker.wav"
    sf.write(clip, (0.1 * np.sin(np.arange(13230) / 8)).astype(np.float32), 22050)  # 0.6 s: short CFM prompt
    emb = None
    if speaker_embeddings:
        stage = SecondStage.tiny(0)
        emb = save_speaker_embeddings(
            stage.speaker_embeddings([clip]), root / "speaker_embeddings.safetensors"
        )
    return package_model(
        root / "package", adapter_dir=root / "adapter", conditioning_path=cond_path,
        tokenizer_path=tiny_model_path(), gpt_config=preset("tiny"), preset="tiny", seed=0,
        base_fingerprint=fingerprint, params={}, selection={"select": "best"}, reference_clips=[clip],
        dataset_info={"version": "v2_pattern_conditioned"}, speaker_embeddings=emb, label=TINY_LABEL,
    )  # fmt: skip
