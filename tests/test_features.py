"""w2v-BERT features: transformers' own classes, the kept masked frame, truncation, normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertModel

from indextts_dist.features import FeatureStats, SemanticFeatures, load_stats, tiny_w2v_bert_config


def _audio(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def test_frame_count_is_50hz_with_the_masked_last_frame_kept():
    feats = SemanticFeatures.tiny()
    for samples in (16000, 16000 + 160, 32123):
        fbank = 1 + (samples - 400) // 160
        out = feats(np.zeros(samples, dtype=np.float32) + 0.01)
        assert out.shape == ((fbank + 1) // 2, 1024)


def test_batched_equals_one_by_one():
    feats = SemanticFeatures.tiny()
    clips = [_audio(1.3, 0), _audio(2.71, 1), _audio(1.0, 2)]
    batched = feats.batch(clips)
    for clip, got in zip(clips, batched, strict=True):
        assert float((feats(clip) - got).abs().max()) < 1e-4


@torch.no_grad()
def test_truncated_encoder_equals_the_full_models_hidden_state_and_stats_apply():
    torch.manual_seed(0)
    full = Wav2Vec2BertModel(tiny_w2v_bert_config(layers=3)).eval()
    stats = FeatureStats(torch.randn(1024) * 0.1, torch.rand(1024) + 0.5)
    fe = SeamlessM4TFeatureExtractor()
    clip = _audio(1.5, 3)
    inputs = fe(clip, sampling_rate=16000, return_tensors="pt")
    want = full(**inputs, output_hidden_states=True).hidden_states[2][0]
    want = (want - stats.mean) / stats.var.sqrt()
    truncated = SemanticFeatures(fe, full, stats, layer=2, fingerprint="test")
    assert len(truncated.model.encoder.layers) == 2
    assert float((truncated(clip) - want).abs().max()) < 1e-5


def test_stats_file_and_official_folder_errors(tmp_path):
    torch.save({"mean": torch.zeros(1024), "var": torch.ones(1024)}, tmp_path / "stats.pt")
    stats = load_stats(tmp_path / "stats.pt")
    assert stats.mean.shape == (1024,)
    torch.save({"mean": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="'mean' and 'var'"):
        load_stats(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match=r"no local w2v-BERT 2\.0 snapshot"):
        SemanticFeatures.official(tmp_path)
