"""The assembled second stage at the tiny sizes: speaker embeddings, save/load, synthesis, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts_dist.audio import ClipRejected, load_audio
from indextts_dist.corpus import synthesize_corpus
from indextts_dist.speech.second_stage import (
    SecondStage,
    SpeakerEmbeddings,
    load_speaker_embeddings,
    save_speaker_embeddings,
)


@pytest.fixture(scope="module")
def stage() -> SecondStage:
    return SecondStage.tiny(seed=0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list:
    out = tmp_path_factory.mktemp("corpus")
    return [c.path for c in synthesize_corpus(out, n_clips=3)]


@pytest.fixture(scope="module")
def emb(stage, clips) -> SpeakerEmbeddings:
    return stage.speaker_embeddings(clips)


def test_embeddings_shapes_and_round_trip(stage, emb, tmp_path):
    assert emb.style.shape == (stage.s2mel.cfg.style_dim,)
    assert emb.ref_mel.shape[0] == 80
    assert emb.prompt_condition.shape == (emb.ref_mel.shape[1], stage.s2mel.cfg.lr_channels)
    path = save_speaker_embeddings(emb, tmp_path / "spk" / "speaker_embeddings.safetensors")
    back = load_speaker_embeddings(path, style_dim=32, condition_dim=64)
    for name in ("style", "ref_mel", "prompt_condition"):
        assert torch.equal(getattr(back, name), getattr(emb, name))
    assert not list(path.parent.glob("*.tmp"))


def test_reference_is_the_longest_clip(stage, clips, emb):
    longest = max(clips, key=lambda p: len(load_audio(p, 22050)))
    one = stage.speaker_embeddings(clips[:1], reference=longest)
    assert one.ref_mel.shape == emb.ref_mel.shape


def test_load_rejects_bad_shapes(emb, tmp_path):
    bad = SpeakerEmbeddings(emb.style, emb.ref_mel, emb.prompt_condition)
    path = save_speaker_embeddings(bad, tmp_path / "e.safetensors")
    with pytest.raises(ValueError, match="style has width"):
        load_speaker_embeddings(path, style_dim=192)
    from safetensors.torch import save_file

    save_file(
        {
            "style": emb.style.clone(),
            "ref_mel": emb.ref_mel.clone(),
            "prompt_condition": emb.prompt_condition[:-1].contiguous(),
        },
        str(tmp_path / "x.safetensors"),
    )
    with pytest.raises(ValueError, match=r"x\.safetensors: prompt_condition must be"):
        load_speaker_embeddings(tmp_path / "x.safetensors")


def test_synthesize_length_finite_deterministic(stage, emb):
    n = 13
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 64, (n,), generator=g)
    latents = torch.randn(n, 64, generator=g)
    a = stage.synthesize(codes, latents, emb, steps=2, seed=1)
    b = stage.synthesize(codes, latents, emb, steps=2, seed=1)
    assert a.dtype == torch.float32
    assert a.shape == ((172 * n) // 100 * 256,)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    m1 = stage.mel(codes, latents, emb, steps=2, seed=1)
    m2 = stage.mel(codes, latents, emb, steps=2, seed=2)
    assert m1.shape == (1, 80, (172 * n) // 100)
    assert not torch.equal(m1, m2)
    with pytest.raises(ValueError, match="gpt_latents"):
        stage.synthesize(codes, latents[:-1], emb, steps=1)


@pytest.mark.parametrize(
    ("name", "audio", "reason"),
    [
        ("short.wav", np.full(2000, 0.3, np.float32), "too_short"),
        ("quiet.wav", np.zeros(22050, np.float32), "silent"),
    ],
)
def test_bad_reference_is_one_line(stage, clips, tmp_path, name, audio, reason):
    path = tmp_path / name
    sf.write(str(path), audio, 22050)
    with pytest.raises(ClipRejected) as info:
        stage.speaker_embeddings(clips[:1], reference=path)
    msg = str(info.value)
    assert "\n" not in msg and name in msg and reason in msg


def test_official_empty_dir_names_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        SecondStage.official(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "s2mel.pth" in msg


def test_a_vocoder_at_another_sample_rate_is_refused(stage):
    from dataclasses import replace

    from indextts_dist.speech.bigvgan import BIGVGAN_TINY, build_bigvgan
    from indextts_dist.speech.second_stage import SecondStage

    wrong = build_bigvgan(replace(BIGVGAN_TINY, sampling_rate=24000))
    with pytest.raises(ValueError, match="24000 Hz vocoder"):
        SecondStage(stage.codec, stage.features, stage.s2mel, stage.campplus, wrong)
