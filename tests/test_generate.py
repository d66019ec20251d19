"""Decoding: HF processor semantics, KV cache == recomputation, batching, positions, stopping, caps."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.generate.beams import BeamHypotheses
from indextts_dist.generate.processors import repetition_penalty, temperature, top_k, top_p
from indextts_dist.model import build_model


@pytest.mark.parametrize("min_keep", [1, 2])
def test_processors_match_hugging_face(min_keep):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 50, generator=gen) * 3
    history = torch.randint(0, 50, (4, 7), generator=gen)
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter(1, history, True)
    hf = RepetitionPenaltyLogitsProcessor(10.0)(history, scores.clone())
    assert torch.allclose(repetition_penalty(scores, seen, 10.0), hf)
    assert torch.allclose(temperature(scores, 0.8), TemperatureLogitsWarper(0.8)(history, scores.clone()))
    hf_k = TopKLogitsWarper(30, min_tokens_to_keep=min_keep)(history, scores.clone())
    assert torch.equal(top_k(scores, 30, min_keep), hf_k)
    for p in (0.05, 0.8, 0.99):
        hf_p = TopPLogitsWarper(p, min_tokens_to_keep=min_keep)(history, scores.clone())
        assert torch.equal(top_p(scores, p, min_keep), hf_p)


@pytest.fixture(scope="module")
def tiny():
    model = build_model("tiny", seed=11)
    torch.nn.init.normal_(model.speed_emb.weight)  # make the speed rows matter too
    gen = torch.Generator().manual_seed(5)
    prefixes = torch.randn(3, 34, model.cfg.model_dim, generator=gen)
    texts = [[5, 9, 44, 100, 7], [3, 4], [200, 17, 18, 19, 20, 21, 22, 23]]
    return model, prefixes, texts


DECODINGS = {
    "greedy": DecodingConfig.greedy(30),
    "sample": DecodingConfig(num_beams=1, max_new_tokens=30, seed=1),
    "beam-sample": DecodingConfig(max_new_tokens=30, seed=2),
    "beam-search": DecodingConfig(do_sample=False, max_new_tokens=30),
    "greedy-training-positions": DecodingConfig.greedy(30, mel_positions="training"),
}


@pytest.mark.parametrize("name", DECODINGS)
def test_kv_cache_equals_full_recomputation(tiny, name):
    model, prefixes, texts = tiny
    cfg = DECODINGS[name]
    cached = generate_codes(model, prefixes, texts, cfg)
    recomputed = generate_codes(
        model, prefixes, texts, DecodingConfig(**{**cfg.to_dict(), "use_kv_cache": False})
    )
    assert [c.tolist() for c in cached.codes] == [c.tolist() for c in recomputed.codes]
    assert cached.stopped == recomputed.stopped


@pytest.mark.parametrize("name", ["greedy", "beam-search"])
def test_left_padded_batch_equals_one_by_one(tiny, name):
    model, prefixes, texts = tiny
    batched = generate_codes(model, prefixes, texts, DECODINGS[name])
    for i, text in enumerate(texts):
        single = generate_codes(model, prefixes[i], [text], DECODINGS[name])
        assert batched.codes[i].tolist() == single.codes[0].tolist()


def test_shared_prefix_broadcasts_over_the_batch(tiny):
    model, prefixes, texts = tiny
    shared = generate_codes(model, prefixes[0], texts, DECODINGS["greedy"])
    explicit = generate_codes(model, prefixes[0].expand(3, -1, -1), texts, DECODINGS["greedy"])
    assert [c.tolist() for c in shared.codes] == [c.tolist() for c in explicit.codes]


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny):
    model, prefixes, texts = tiny
    a = generate_codes(model, prefixes, texts, DECODINGS["beam-sample"])
    b = generate_codes(model, prefixes, texts, DECODINGS["beam-sample"])
    c = generate_codes(model, prefixes, texts, DecodingConfig(max_new_tokens=30, seed=99))
    assert [x.tolist() for x in a.codes] == [x.tolist() for x in b.codes]
    assert [x.tolist() for x in a.codes] != [x.tolist() for x in c.codes]
    for codes in a.codes + c.codes:
        assert codes.numel() <= 30
        assert bool(((codes >= 0) & (codes < model.cfg.number_mel_codes)).all())
        assert model.cfg.stop_mel_token not in codes.tolist()


@torch.no_grad()
def test_training_positions_reproduce_the_teacher_forced_argmax(tiny):
    """With training-consistent positions, greedy codes are exactly what the teacher-forced pass predicts."""
    model, prefixes, texts = tiny
    result = generate_codes(model, prefixes[:1], texts[:1], DECODINGS["greedy-training-positions"])
    codes = result.codes[0]
    out = model(
        prefixes[:1], torch.tensor([texts[0]]), torch.tensor([5]), codes[None], torch.tensor([codes.numel()])
    )
    assert out.mel_logits[0, : codes.numel()].argmax(-1).tolist() == codes.tolist()
    official = generate_codes(model, prefixes[:1], texts[:1], DECODINGS["greedy"])
    assert official.codes[0][0] == codes[0]  # the first code has no generated position yet
    assert official.codes[0].tolist() != codes.tolist()


@pytest.mark.parametrize("name", ["greedy", "sample", "beam-sample"])
def test_stop_code_ends_generation(name):
    model = build_model("tiny", seed=3)
    with torch.no_grad():
        model.mel_head.bias[model.cfg.stop_mel_token] = 50.0
    result = generate_codes(model, torch.zeros(34, 64), [[5, 6], [7]], DECODINGS[name])
    assert [c.numel() for c in result.codes] == [0, 0]
    assert result.stopped == [True, True]


def test_cap_and_never_stopping():
    model = build_model("tiny", seed=3)
    with torch.no_grad():
        model.mel_head.bias[model.cfg.stop_mel_token] = -50.0
    for cfg in (DecodingConfig.greedy(17), DecodingConfig(max_new_tokens=17, seed=0)):
        result = generate_codes(model, torch.zeros(34, 64), [[5, 6]], cfg)
        assert result.codes[0].numel() == 17
        assert result.stopped == [False]


def test_repetition_penalty_discourages_repeats():
    model = build_model("tiny", seed=3)
    plain = generate_codes(model, torch.zeros(34, 64), [[5, 6]], DecodingConfig.greedy(40))
    penalised = generate_codes(
        model, torch.zeros(34, 64), [[5, 6]], DecodingConfig.greedy(40, repetition_penalty=1e6)
    )
    distinct = len(set(penalised.codes[0].tolist()))
    assert distinct == penalised.codes[0].numel()  # an enormous penalty forbids any repeat
    assert len(set(plain.codes[0].tolist())) < plain.codes[0].numel()


def test_text_longer_than_the_model_limit_is_refused():
    model = build_model("tiny")
    with pytest.raises(ValueError, match="exceeds the model's limit of 120"):
        generate_codes(model, torch.zeros(34, 64), [list(range(2, 200))], DecodingConfig.greedy(2))


def test_decoding_config_validation():
    with pytest.raises(ValueError, match="top_p"):
        DecodingConfig(top_p=0)
    with pytest.raises(ValueError, match="mel_positions"):
        DecodingConfig(mel_positions="sideways")  # type: ignore[arg-type]
    assert DecodingConfig().to_dict()["num_beams"] == 3  # the official default


def test_beam_hypotheses_keep_the_best_and_stop_by_hf_rule():
    hyps = BeamHypotheses(num_beams=2, length_penalty=0.0)
    hyps.add(torch.tensor([1]), -5.0, 1)
    assert not hyps.is_done(-1.0, 1)
    hyps.add(torch.tensor([2]), -3.0, 1)
    hyps.add(torch.tensor([3]), -4.0, 1)  # evicts -5
    assert len(hyps) == 2 and hyps.worst_score == -4.0
    assert not hyps.is_done(-3.5, 2)  # an open beam could still beat the worst kept one
    assert hyps.is_done(-4.5, 2)
    assert hyps.best()[0].tolist() == [2]
