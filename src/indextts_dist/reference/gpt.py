"""Recompute the GPT stage's reference outputs (REFERENCE.md) from a reference file's inputs."""

from __future__ import annotations

import torch

from ..generate import DecodingConfig, generate_codes
from ..model import GPTConfig, UnifiedVoice, strict_load
from .report import ReferenceError, ReferenceFile

__all__ = ["GPT_ATOL", "recompute_gpt"]

GPT_ATOL = 1e-4


def _need(ref: ReferenceFile, *names: str) -> None:
    missing = [n for n in names if n not in ref.inputs]
    if missing:
        raise ReferenceError(f"reference lacks input tensor(s): {', '.join('input.' + n for n in missing)}")


@torch.no_grad()
def recompute_gpt(ref: ReferenceFile) -> dict[str, torch.Tensor]:
    """Build `UnifiedVoice` from the file's config, load `model.*` strictly, recompute every output.

    Everything is recomputed from inputs alone: the logits and latents use our own conditioning,
    so a mismatch anywhere upstream shows up downstream too.
    """
    model = UnifiedVoice(GPTConfig.from_dict(ref.meta["config"])).eval()
    strict_load(model, {k: v.float() for k, v in ref.model.items()}, source="reference model.*")
    _need(ref, "feats", "feat_lengths", "text_ids", "text_lengths", "codes", "code_lengths")
    inp = ref.inputs
    feats, feat_lengths = inp["feats"].float(), inp["feat_lengths"].long()
    out: dict[str, torch.Tensor] = {}
    spk = model.get_conditioning(feats, feat_lengths)
    emo_raw = model.get_emo_raw(feats, feat_lengths)
    emo_vec = model.emo_layer(model.emovec_layer(emo_raw))
    out.update(spk_latents=spk, emo_raw=emo_raw, emo_vec=emo_vec)

    text_ids, text_lengths = inp["text_ids"].long(), inp["text_lengths"].long()
    codes, code_lengths = inp["codes"].long(), inp["code_lengths"].long()
    out["text_inputs"], out["text_targets"] = model.align_text(text_ids, text_lengths)
    out["mel_inputs"], out["mel_targets"] = model.align_mel(codes, code_lengths)
    tf = model(model.build_prefix(spk, emo_vec), text_ids, text_lengths, codes, code_lengths)
    out["text_logits"] = tf.text_logits.transpose(1, 2)  # the official get_logits is vocab-major
    out["mel_logits"] = tf.mel_logits.transpose(1, 2)
    out["mel_latents"] = tf.mel_latents

    if "greedy_codes" in ref.outputs:
        steps = ref.outputs["greedy_codes"].shape[-1]
        text = text_ids[0, : int(text_lengths[0])].tolist()
        prefix = model.build_prefix(spk[:1], emo_vec[:1])
        result = generate_codes(model, prefix, [text], DecodingConfig.greedy(steps))
        got = result.codes[0]
        # The official output carries the stop code and stop padding up to the cap; ours is cut at it.
        padded = torch.full((steps,), model.cfg.stop_mel_token, dtype=torch.long)
        padded[: min(steps, got.numel())] = got[:steps]
        out["greedy_codes"] = padded[None]
    return out
