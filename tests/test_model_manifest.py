"""The official v2 key set, built on the meta device, and the config contract."""

from __future__ import annotations

import json

import pytest
import torch

from indextts_dist.model import CONDITIONING_MODULES, PRESETS, GPTConfig, UnifiedVoice, preset


def test_official_v2_has_exactly_the_665_official_keys_and_shapes(indextts2_dir):
    manifest = json.loads((indextts2_dir / "gpt_v2_state_dict_shapes.json").read_text())
    assert GPTConfig.from_dict(manifest["config"]) == preset("official-v2")
    with torch.device("meta"):
        model = UnifiedVoice(preset("official-v2"))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(ours) == manifest["num_keys"] == 665
    assert ours == manifest["shapes"]
    params = sum(p.numel() for p in model.parameters())
    assert params == manifest["total_parameters"]
    persistent = sorted(k for k, _ in model.named_buffers() if k in ours)
    assert persistent == sorted(manifest["persistent_buffers"])


def test_without_conditioning_encoders_drops_exactly_those_modules(indextts2_dir):
    manifest = json.loads((indextts2_dir / "gpt_v2_state_dict_shapes.json").read_text())
    with torch.device("meta"):
        model = UnifiedVoice(preset("official-v2"), with_conditioning_encoders=False)
    expected = {k for k in manifest["shapes"] if k.split(".")[0] not in CONDITIONING_MODULES}
    assert set(model.state_dict()) == expected
    with pytest.raises(RuntimeError, match="without conditioning encoders"):
        model.get_conditioning(torch.zeros(1, 5, 1024), torch.tensor([5]))


def test_config_round_trips_and_rejects_unknown_keys():
    for cfg in PRESETS.values():
        assert GPTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown GPT config keys: bogus"):
        GPTConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(model_dim=100, heads=3)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_tiny_preset_matches_the_tiny_tokenizer_and_codebook():
    cfg = preset("tiny")
    assert cfg.number_text_tokens == 256
    assert cfg.codebook_size == 64 and cfg.start_mel_token == 64 and cfg.stop_mel_token == 65
    assert cfg.prefix_rows == 34
