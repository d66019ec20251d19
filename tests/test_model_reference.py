"""Our UnifiedVoice computes what the official one computes (reference_tiny.*, REFERENCE.md)."""

from __future__ import annotations

import pytest
import torch

from indextts_dist.generate import DecodingConfig, generate_codes

ATOL = 1e-4


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a.double() - b.double()).abs().max())


@torch.no_grad()
def test_conditioning_with_true_lengths(reference_model, reference_tiny):
    t, _ = reference_tiny
    spk = reference_model.get_conditioning(t["input.feats"], t["input.feat_lengths"])
    assert _max_diff(spk, t["output.spk_latents"]) <= ATOL
    # Item 1 is padded (45 of 61 frames): its latents must not depend on what the padding holds.
    feats = t["input.feats"].clone()
    feats[1, 45:] = torch.randn_like(feats[1, 45:]) * 100
    assert _max_diff(reference_model.get_conditioning(feats, t["input.feat_lengths"]), spk) <= 1e-5


@torch.no_grad()
def test_emotion_vector(reference_model, reference_tiny):
    t, _ = reference_tiny
    raw = reference_model.get_emo_raw(t["input.feats"], t["input.feat_lengths"])
    assert _max_diff(raw, t["output.emo_raw"]) <= ATOL
    vec = reference_model.get_emo_vec(t["input.feats"], t["input.feat_lengths"])
    assert _max_diff(vec, t["output.emo_vec"]) <= ATOL


def test_aligned_sequences(reference_model, reference_tiny):
    t, _ = reference_tiny
    text_in, text_tg = reference_model.align_text(t["input.text_ids"], t["input.text_lengths"])
    mel_in, mel_tg = reference_model.align_mel(t["input.codes"], t["input.code_lengths"])
    assert torch.equal(text_in, t["output.text_inputs"])
    assert torch.equal(text_tg, t["output.text_targets"])
    assert torch.equal(mel_in, t["output.mel_inputs"])
    assert torch.equal(mel_tg, t["output.mel_targets"])


@torch.no_grad()
@pytest.mark.parametrize("prefix_source", ["reference", "recomputed"])
def test_logits_and_latents(reference_model, reference_tiny, prefix_source):
    t, _ = reference_tiny
    if prefix_source == "reference":
        spk, emo = t["output.spk_latents"], t["output.emo_vec"]
    else:
        spk = reference_model.get_conditioning(t["input.feats"], t["input.feat_lengths"])
        emo = reference_model.get_emo_vec(t["input.feats"], t["input.feat_lengths"])
    out = reference_model(
        reference_model.build_prefix(spk, emo),
        t["input.text_ids"],
        t["input.text_lengths"],
        t["input.codes"],
        t["input.code_lengths"],
    )
    assert _max_diff(out.text_logits.transpose(1, 2), t["output.text_logits"]) <= ATOL
    assert _max_diff(out.mel_logits.transpose(1, 2), t["output.mel_logits"]) <= ATOL
    assert _max_diff(out.mel_latents, t["output.mel_latents"]) <= ATOL


def test_greedy_codes_exact(reference_model, reference_tiny):
    t, _ = reference_tiny
    prefix = reference_model.build_prefix(t["output.spk_latents"][:1], t["output.emo_vec"][:1])
    text = t["input.text_ids"][0, : int(t["input.text_lengths"][0])].tolist()
    steps = t["output.greedy_codes"].shape[1]
    result = generate_codes(reference_model, prefix, [text], DecodingConfig.greedy(steps))
    assert result.codes[0].tolist() == t["output.greedy_codes"][0].tolist()


def test_inputs_are_not_modified(reference_model, reference_tiny):
    """The official forward overwrites padding in place; ours must leave the caller's tensors alone."""
    t, _ = reference_tiny
    codes = t["input.codes"].clone()
    reference_model.align_mel(codes, t["input.code_lengths"])
    assert torch.equal(codes, t["input.codes"])
