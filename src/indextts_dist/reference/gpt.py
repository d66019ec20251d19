"""Recompute the GPT stage's reference outputs (REFERENCE.md) from a reference file's inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..generate import DecodingConfig, generate_codes
from ..model import GPTConfig, UnifiedVoice, strict_load
from .report import ReferenceError, ReferenceFile

__all__ = [
    "GPT_ATOL",
    "aligned_sequences",
    "greedy_padded",
    "load_reference_model",
    "need_inputs",
    "recompute_gpt",
]

GPT_ATOL = 1e-4


def need_inputs(ref: ReferenceFile, *names: str) -> None:
    missing = [n for n in names if n not in ref.inputs]
    if missing:
        raise ReferenceError(f"reference lacks input tensor(s): {', '.join('input.' + n for n in missing)}")


def load_reference_model(ref: ReferenceFile, spk_cond_mode: str) -> UnifiedVoice:
    """`UnifiedVoice` from the file's config, with `model.*` loaded strictly. `spk_cond_mode` is the
    official constructor argument the kind implies; the official files' configs omit it."""
    config = GPTConfig.from_dict({"spk_cond_mode": spk_cond_mode, **ref.meta["config"]})
    if config.spk_cond_mode != spk_cond_mode:
        raise ReferenceError(
            f"reference config has spk_cond_mode={config.spk_cond_mode!r}, this kind needs {spk_cond_mode!r}"
        )
    model = UnifiedVoice(config).eval()
    strict_load(model, {k: v.float() for k, v in ref.model.items()}, source="reference model.*")
    return model


def aligned_sequences(
    model: UnifiedVoice,
    text_ids: torch.Tensor,
    text_lengths: torch.Tensor,
    codes: torch.Tensor,
    code_lengths: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The official forward's aligned inputs/targets for text and codes (SPEC §e.1-2)."""
    out: dict[str, torch.Tensor] = {}
    out["text_inputs"], out["text_targets"] = model.align_text(text_ids, text_lengths)
    out["mel_inputs"], out["mel_targets"] = model.align_mel(codes, code_lengths)
    return out


def greedy_padded(
    model: UnifiedVoice,
    prefix: torch.Tensor,
    texts: Sequence[Sequence[int]],
    steps: int,
    langs: Sequence[int] | None = None,
    step_logits: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Greedy codes [B, steps] as the official `inference_speech` returns them: HF's output carries
    the stop code and stop padding up to the cap, ours is cut at the stop."""
    result = generate_codes(model, prefix, texts, DecodingConfig.greedy(steps), langs, step_logits)
    padded = torch.full((len(texts), steps), model.cfg.stop_mel_token, dtype=torch.long)
    for row, got in enumerate(result.codes):
        padded[row, : min(steps, got.numel())] = got[:steps]
    return padded


@torch.no_grad()
def recompute_gpt(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build `UnifiedVoice` from the file's config, load `model.*` strictly, recompute every output.

    Everything is recomputed from inputs alone: the logits and latents use our own conditioning,
    so a mismatch anywhere upstream shows up downstream too.
    """
    model = load_reference_model(ref, "conformer")
    need_inputs(ref, "feats", "feat_lengths", "text_ids", "text_lengths", "codes", "code_lengths")
    inp = ref.inputs
    feats, feat_lengths = inp["feats"].float(), inp["feat_lengths"].long()
    out: dict[str, torch.Tensor] = {}
    spk = model.get_conditioning(feats, feat_lengths)
    emo_raw = model.get_emo_raw(feats, feat_lengths)
    emo_vec = model.emo_layer(model.emovec_layer(emo_raw))
    out.update(spk_latents=spk, emo_raw=emo_raw, emo_vec=emo_vec)

    text_ids, text_lengths = inp["text_ids"].long(), inp["text_lengths"].long()
    codes, code_lengths = inp["codes"].long(), inp["code_lengths"].long()
    out.update(aligned_sequences(model, text_ids, text_lengths, codes, code_lengths))
    tf = model(model.build_prefix(spk, emo_vec), text_ids, text_lengths, codes, code_lengths)
    out["text_logits"] = tf.text_logits.transpose(1, 2)  # the official get_logits is vocab-major
    out["mel_logits"] = tf.mel_logits.transpose(1, 2)
    out["mel_latents"] = tf.mel_latents

    if "greedy_codes" in ref.outputs:
        steps = ref.outputs["greedy_codes"].shape[-1]
        text = text_ids[0, : int(text_lengths[0])].tolist()
        out["greedy_codes"] = greedy_padded(model, model.build_prefix(spk[:1], emo_vec[:1]), [text], steps)
    return out
