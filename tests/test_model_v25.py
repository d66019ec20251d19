"""The IndexTTS-2.5 GPT stage: official layout, strict loading, and every output of reference_v25_tiny.*."""

from __future__ import annotations

import json

import pytest
import torch

from indextts_dist.conditioning import GlobalConditioning
from indextts_dist.conditioning.store import ConditioningError
from indextts_dist.errors import InputError
from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.model import (
    CheckpointError,
    GPTConfig,
    UnifiedVoice,
    base_fingerprint,
    build_model,
    preset,
    strict_load,
)
from indextts_dist.reference import compare_outputs, load_reference
from indextts_dist.reference.gpt import GPT_ATOL
from indextts_dist.reference.gpt_v25 import recompute_gpt_v25


@pytest.fixture(scope="module")
def ref25(indextts25_dir):
    return load_reference(
        indextts25_dir / "reference_v25_tiny.safetensors", indextts25_dir / "reference_v25_tiny.json"
    )


@pytest.fixture(scope="module")
def model25(ref25) -> UnifiedVoice:
    cfg = GPTConfig.from_dict({**ref25.meta["config"], "spk_cond_mode": "campplus"})
    model = UnifiedVoice(cfg).eval()
    strict_load(model, {k: v.float() for k, v in ref25.model.items()})
    return model


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a.double() - b.double()).abs().max())


def test_official_v25_has_exactly_the_456_official_keys_and_shapes(indextts25_dir):
    manifest = json.loads((indextts25_dir / "gpt_v25_state_dict_shapes.json").read_text())
    assert GPTConfig.from_dict({**manifest["config"], "spk_cond_mode": "campplus"}) == preset("official-v2.5")
    with torch.device("meta"):
        model = UnifiedVoice(preset("official-v2.5"))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(ours) == manifest["num_keys"] == 456
    assert ours == {k: v["shape"] for k, v in manifest["state_dict"].items()}
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"]
    assert sorted(k for k, _ in model.named_buffers() if k in ours) == manifest["persistent_buffers"]
    cfg = preset("official-v2.5")
    assert (cfg.prefix_rows, cfg.speaker_rows, cfg.version) == (3, 1, "v2.5")
    with torch.device("meta"):
        bare = UnifiedVoice(cfg, with_conditioning_encoders=False)
    kept = {k.split(".")[0] for k in bare.state_dict()}
    assert "spk_emb_proj" not in kept and "lang_embedding" in kept and "emo_layer" not in kept


def test_every_reference_output_within_tolerance(ref25):
    checks = compare_outputs(ref25.outputs, recompute_gpt_v25(ref25), GPT_ATOL)
    assert [c.line() for c in checks if not c.ok] == []
    assert len(checks) == len(ref25.outputs) == 22


@torch.no_grad()
def test_prefix_is_projected_style_plus_emotion_then_two_zero_rows(model25, ref25):
    inp, out = ref25.inputs, ref25.outputs
    conds = model25.build_prefix(out["spk_latent"], out["emo_vec"])
    assert conds.shape == (2, 3, 64) and torch.equal(conds[:, 1:], torch.zeros(2, 2, 64))
    assert _max_diff(model25.project_style(inp["campplus"][:, None, :]), out["spk_latent"]) <= GPT_ATOL
    with pytest.raises(RuntimeError, match="project_style"):
        model25.get_conditioning(inp["emo_feats"], inp["emo_feat_lengths"])
    with pytest.raises(ValueError, match="language ids"):
        model25(conds, inp["text_ids"], inp["text_lengths"], inp["codes"], inp["code_lengths"])


@torch.no_grad()
def test_packed_forward_with_language_rows(model25, ref25):
    """Item 0 has the longest text and codes, so the packed layout equals the official padded one;
    item 1 sees exactly what it sees alone (no padding attended), with the language row."""
    inp, out = ref25.inputs, ref25.outputs
    conds, langs = out["conds"], inp["langs"]
    args = (inp["text_ids"], inp["text_lengths"], inp["codes"], inp["code_lengths"])
    packed = model25.forward_packed(conds, *args, langs=langs)
    assert _max_diff(packed.mel_logits[0].T, out["mel_logits"][0]) <= GPT_ATOL
    assert _max_diff(packed.text_logits[0].T, out["text_logits"][0]) <= GPT_ATOL
    lt, lm = int(inp["text_lengths"][1]), int(inp["code_lengths"][1])
    alone = model25(
        conds[1:], inp["text_ids"][1:, :lt], inp["text_lengths"][1:], inp["codes"][1:, :lm],
        inp["code_lengths"][1:], langs=langs[1:],
    )  # fmt: skip
    assert _max_diff(packed.mel_logits[1, : lm + 2], alone.mel_logits[0]) <= 1e-5
    assert _max_diff(packed.text_logits[1, : lt + 2], alone.text_logits[0]) <= 1e-5
    other_language = model25.forward_packed(conds, *args, langs=torch.zeros_like(langs))
    assert _max_diff(other_language.mel_logits[0].T, out["mel_logits"][0]) > 0.01


@torch.no_grad()
@pytest.mark.parametrize("mel_positions, matches", [("official", True), ("training", False)])
def test_teacher_forcing_with_inference_mel_positions_replays_greedy_decoding(
    model25, ref25, mel_positions, matches
):
    """One packed pass over [start, g1 .. g(G-1)] gives every decode step's logits only with the
    official +1 mel-position skip (REFERENCE_2_5 `decode_as_one_pass_skip_maxabs`)."""
    inp, out = ref25.inputs, ref25.outputs
    greedy, steps = out["greedy_codes"], out["greedy_codes"].shape[1]
    lt = int(inp["text_lengths"][0])
    tf = model25.forward_packed(
        out["conds"][:1], inp["text_ids"][:1, :lt], inp["text_lengths"][:1], greedy[:, : steps - 1],
        torch.tensor([steps - 1]), langs=inp["langs"][:1], mel_positions=mel_positions,
    )  # fmt: skip
    diff = _max_diff(tf.mel_logits[:, :steps], out["greedy_step_logits"])
    assert (diff <= GPT_ATOL) if matches else (diff > 0.1)


def test_checkpoint_with_aliases_and_optimizer_loads_strictly_and_v2_is_refused(tmp_path):
    model = build_model("tiny-v2.5", seed=3)
    state = model.state_dict()
    aliased = {**state, "gpt.wte.weight": state["mel_embedding.weight"]}
    aliased.update({f"inference_model.{k}": v for k, v in list(state.items())[:3]})
    torch.save({"model": aliased, "epoch": 7}, tmp_path / "gpt.pth")
    loaded = build_model("tiny-v2.5", tmp_path / "gpt.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    torch.save(build_model("tiny", seed=3).state_dict(), tmp_path / "v2.pth")
    with pytest.raises(CheckpointError, match=r"v2\.pth: is an IndexTTS-2 GPT checkpoint"):
        build_model("tiny-v2.5", tmp_path / "v2.pth")


def test_conditioning_fits_the_one_speaker_row():
    cfg = preset("tiny-v2.5")
    GlobalConditioning(torch.zeros(1, 64), torch.zeros(64)).check_fits(cfg)
    with pytest.raises(ConditioningError, match=r"the model needs \[1, 64\]"):
        GlobalConditioning(torch.zeros(32, 64), torch.zeros(64)).check_fits(cfg)


@torch.no_grad()
def test_tiny_v25_preset_is_seeded_and_generation_needs_the_language():
    model = build_model("tiny-v2.5", seed=0, with_conditioning_encoders=False)
    assert base_fingerprint("tiny-v2.5") == base_fingerprint("tiny-v2.5") != base_fingerprint("tiny")
    g = torch.Generator().manual_seed(0)
    prefix = model.build_prefix(torch.randn(1, 64, generator=g), torch.randn(64, generator=g))
    with pytest.raises(InputError, match="one language id per text"):
        generate_codes(model, prefix, [[5, 6, 7]], DecodingConfig.greedy(3))
    scores = {}
    for lang in (0, 1):
        logits: list[torch.Tensor] = []
        generate_codes(model, prefix, [[5, 6, 7]], DecodingConfig.greedy(1), langs=[lang], step_logits=logits)
        scores[lang] = logits[0]
    assert (scores[0] - scores[1]).abs().max() > 1e-4  # the language row reaches the first step
