"""The loss against a hand computation, and its independence from padding."""

from __future__ import annotations

import math

import torch

from indextts_dist.model import build_model
from indextts_dist.train.loss import pattern_loss, valid_target_mask


def test_mask_covers_real_tokens_and_the_first_stop():
    mask = valid_target_mask(torch.tensor([2, 0]), 4)
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False]]


@torch.no_grad()
def test_loss_equals_a_hand_computation():
    torch.manual_seed(0)
    model = build_model("tiny", with_conditioning_encoders=False)
    prefix = torch.randn(1, 34, 64)
    text, codes = torch.tensor([[5, 6, 7]]), torch.tensor([[3, 4]])
    out = model.forward_packed(prefix, text, torch.tensor([3]), codes, torch.tensor([2]))
    parts = pattern_loss(out, torch.tensor([3]), torch.tensor([2]))

    def nll(logits_row: torch.Tensor, target: int) -> float:
        return -float(torch.log_softmax(logits_row.double(), -1)[target])

    # Targets: text [5, 6, 7, stop(1)] + one padding stop; mel [3, 4, stop(65)] + one padding stop.
    text_terms = [nll(out.text_logits[0, i], t) for i, t in enumerate([5, 6, 7, 1])]
    mel_terms = [nll(out.mel_logits[0, i], t) for i, t in enumerate([3, 4, 65])]
    want_text, want_mel = sum(text_terms) / 4, sum(mel_terms) / 3
    assert math.isclose(float(parts.text), want_text, rel_tol=1e-5)
    assert math.isclose(float(parts.mel), want_mel, rel_tol=1e-5)
    assert math.isclose(float(parts.total), 0.2 * want_text + 0.8 * want_mel, rel_tol=1e-5)
    assert int(parts.text_tokens) == 4 and int(parts.mel_tokens) == 3


@torch.no_grad()
def test_loss_does_not_depend_on_padding():
    torch.manual_seed(1)
    model = build_model("tiny", with_conditioning_encoders=False)
    prefix = torch.randn(1, 34, 64)
    text_a, codes_a = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[3, 4, 5]])
    text_b, codes_b = torch.tensor([[9, 10]]), torch.tensor([[7, 8, 9, 10, 11]])

    def loss(text: torch.Tensor, codes: torch.Tensor, tl: list[int], cl: list[int]):
        tl_t, cl_t = torch.tensor(tl), torch.tensor(cl)
        return pattern_loss(model.forward_packed(prefix, text, tl_t, codes, cl_t), tl_t, cl_t)

    single_a = loss(text_a, codes_a, [4], [3])
    # The same item padded with junk far beyond its length: the loss is unchanged.
    padded_text = torch.cat([text_a, torch.full((1, 9), 42)], 1)
    padded_codes = torch.cat([codes_a, torch.full((1, 13), 17)], 1)
    padded = loss(padded_text, padded_codes, [4], [3])
    assert math.isclose(float(single_a.total), float(padded.total), rel_tol=1e-5)
    # In a batch, the loss is the token-weighted mean of the members' losses.
    batch_text = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    batch_codes = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]])
    batch = loss(batch_text, batch_codes, [4, 2], [3, 5])
    single_b = loss(text_b, codes_b, [2], [5])
    # Packed layout: each item sees exactly what it sees alone, so the batch loss is the
    # token-weighted mean of the single-item losses.
    assert int(batch.text_tokens) == 5 + 3 and int(batch.mel_tokens) == 4 + 6
    want_text = (float(single_a.text) * 5 + float(single_b.text) * 3) / 8
    want_mel = (float(single_a.mel) * 4 + float(single_b.mel) * 6) / 10
    assert math.isclose(float(batch.text), want_text, rel_tol=1e-5)
    assert math.isclose(float(batch.mel), want_mel, rel_tol=1e-5)


@torch.no_grad()
def test_packed_layout_equals_the_official_forward_for_one_item():
    torch.manual_seed(2)
    model = build_model("tiny", with_conditioning_encoders=False)
    prefix = torch.randn(1, 34, 64)
    text, codes = torch.tensor([[5, 6, 7]]), torch.tensor([[3, 4, 9, 9]])
    args = (prefix, text, torch.tensor([3]), codes, torch.tensor([4]))
    official, packed = model(*args), model.forward_packed(*args)
    assert torch.allclose(official.mel_logits, packed.mel_logits, atol=1e-5)
    assert torch.allclose(official.text_logits, packed.text_logits, atol=1e-5)
    assert torch.allclose(official.mel_latents, packed.mel_latents, atol=1e-5)
