"""IndexTTS-2.5 through every stage at the tiny-v2.5 preset (seeded random weights: nothing here is
speech quality), beside v2: the real tiktoken vocabulary, the CAMPPlus speaker row, 25 Hz codes, the
language row in training and generation, the package's model version, the codec-decoded S2Mel input.

The 2.5 second stage (S2Mel on `EnhancedCodec.decode(codes)`) has no official reference tensors:
only its shapes and lengths are checked here, against the SPEC's formula.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from train_support import FAST, launch, preprocess_ranks

from indextts_dist.conditioning import GlobalConditioning, load_conditioning
from indextts_dist.corpus import synthesize_corpus
from indextts_dist.dataset import DatasetError
from indextts_dist.evaluate.code_measures import pause_runs
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.loaded import LoadedModel
from indextts_dist.model import CheckpointError, build_model, preset
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.transcripts import transcripts_csv
from indextts_dist.speech.length_regulator import target_lengths
from indextts_dist.speech.second_stage import OUTPUT_SAMPLE_RATE, SecondStage
from indextts_dist.text import LanguageTokenizer, language_id
from indextts_dist.tracking.local_server import LocalMlflowServer
from indextts_dist.weights_layout import WeightsLayoutV25

VOCAB = "official/multilingual_zh_ja_yue_char_del.tiktoken"
EN = 58838
"""`<|en|>` (SPEC_2_5 §4.1)."""


@pytest.fixture(scope="module")
def vocab_dir(indextts25_dir: Path) -> Path:
    """The folder a user passes as --weights-dir to tiny-v2.5: it holds the tiktoken file."""
    folder = indextts25_dir / "official"
    assert WeightsLayoutV25(folder).tiktoken == indextts25_dir / VOCAB
    return folder


@pytest.fixture(scope="module")
def tokenizer(vocab_dir: Path) -> LanguageTokenizer:
    return LanguageTokenizer.from_file(WeightsLayoutV25(vocab_dir).tiktoken, "en")


def test_the_other_versions_base_weights_are_refused_in_one_line(tmp_path):
    v2, v25 = tmp_path / "v2.pth", tmp_path / "v25.pth"
    torch.save(build_model("tiny").state_dict(), v2)
    torch.save(build_model("tiny-v2.5").state_dict(), v25)
    with pytest.raises(CheckpointError, match=r"^\S*v2\.pth: is an IndexTTS-2 GPT checkpoint, but this model "
                       r"is IndexTTS-2\.5 \(") as exc:  # fmt: skip
        build_model("tiny-v2.5", v2)
    assert "\n" not in str(exc.value)
    with pytest.raises(
        CheckpointError, match=r"is an IndexTTS-2\.5 GPT checkpoint, but this model is IndexTTS-2 "
    ):
        build_model("tiny", v25)


def test_segments_are_split_behind_the_language_prefix(tokenizer):
    cfg = preset("tiny-v2.5")
    model = build_model("tiny-v2.5", with_conditioning_encoders=False)
    cond = GlobalConditioning(torch.zeros(cfg.speaker_rows, cfg.model_dim), torch.zeros(cfg.model_dim))
    tts = LoadedModel(model, tokenizer, cond, segment_tokens=8)
    text = "Well, I think so! It is late. We should go home now, before the rain starts."
    prepared = tokenizer.prepare(text)
    segments = tts.segment(prepared)
    assert len(segments) > 2
    for ids in segments:
        assert ids[0] == EN and len(ids) <= 8 and 0 not in ids and 1 not in ids
    spoken = " ".join(tokenizer.decode(ids[1:]).strip() for ids in segments)
    assert spoken == prepared.replace("!", "")  # the deleted `!` (id 0) aside, nothing lost or doubled
    one = LoadedModel(model, tokenizer, cond).segment(prepared)
    assert one == [tokenizer.encode_prepared(prepared)]  # what preprocess stored for the same text


def test_pauses_are_counted_at_the_data_code_rate():
    codes = [7] * 10  # 0.4 s at 25 Hz, 0.2 s at 50 Hz; PAUSE_S = 0.3
    assert pause_runs(codes, {7}, 0.3, code_rate=25) == 1
    assert pause_runs(codes, {7}, 0.3, code_rate=50) == 0


def test_the_v25_second_stage_renders_decoded_codes_at_the_spec_length(tmp_path):
    stage = SecondStage.tiny(0, preset("tiny-v2.5").model_dim, "tiny-v2.5")
    assert stage.is_v25 and stage.campplus.config.embedding_size == 192
    t = np.arange(int(1.2 * OUTPUT_SAMPLE_RATE)) / OUTPUT_SAMPLE_RATE
    clip = tmp_path / "ref.wav"
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             OUTPUT_SAMPLE_RATE)  # fmt: skip
    emb = stage.speaker_embeddings([clip])
    assert emb.style.shape == (192,)  # the width 2.5's spk_emb_proj takes
    # 2.5 regulates the reference's own w2v-BERT features to its mel length (SPEC_2_5 §8)
    assert emb.prompt_condition.shape == (emb.ref_mel.shape[-1], stage.s2mel.cfg.lr_channels)
    codes = torch.randint(0, 64, (11,))
    content = stage.codec.decode(codes[None])
    assert content.shape == (1, 22, 1024)  # ×2 back to 50 Hz
    mel = stage.mel(codes, None, emb, steps=2)
    frames = int(target_lengths(22))  # ⌊2T'·1.72⌋ (SPEC_2_5 §5.1)
    assert frames == 37 and mel.shape == (1, 80, frames)
    assert stage.mel(codes, None, emb, steps=2, speed=2.0).shape[-1] == int(target_lengths(22, 2.0))
    wav = stage.synthesize(codes, None, emb, steps=2)
    assert wav.shape == (frames * 256,) and torch.isfinite(wav).all()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, vocab_dir) -> Path:
    """5 espeak-ng clips preprocessed by 2 ranks at tiny-v2.5."""
    root = tmp_path_factory.mktemp("v25")
    clips = synthesize_corpus(root / "audio", n_clips=5, seed=2, formats=("wav",))
    csv = root / "transcripts.csv"
    csv.write_text(transcripts_csv(sorted((c.path.name, c.expected) for c in clips)))
    opts = PreprocessOptions(root / "audio", root / "data", transcripts=csv, clips_per_shard=2,
                             preset="tiny-v2.5", weights_dir=vocab_dir, language="en")  # fmt: skip
    return preprocess_ranks(opts, world=2)


def test_a_v25_dataset_is_refused_by_a_v2_preset(dataset):
    from indextts_dist.train import TrainOptions
    from indextts_dist.train.loop import Trainer

    with pytest.raises(DatasetError, match=r"preprocessed for IndexTTS-2\.5 .* not 'tiny'"):
        Trainer(TrainOptions(data=dataset, out=dataset.parent / "refused", preset="tiny"))


@pytest.mark.slow
def test_tiny_v25_preprocess_train_register_infer_evaluate(dataset, vocab_dir, tmp_path):
    from indextts_dist.evaluate.evaluation import EvaluateOptions, evaluate_model

    info = json.loads((dataset / "dataset_info.json").read_text())
    assert info["preset"] == "tiny-v2.5" and info["text_language_id"] == language_id("en") == 0
    assert info["evaluation"]["instrument"]["code_rate"] == 25
    cond = load_conditioning(dataset / "global_conditioning.safetensors", preset("tiny-v2.5"))
    assert cond.gpt_conditioning.shape == (1, 64)  # one projected CAMPPlus row (the 3-row prefix's first)
    assert cond.metadata["num_clips"] == str(info["counts"]["accepted"])

    with LocalMlflowServer(tmp_path / "mlflow") as server:
        args = ["--data", str(dataset), "--out", str(tmp_path / "run"), "--preset", "tiny-v2.5",
                "--weights-dir", str(vocab_dir), "--epochs", "2", "--max-steps", "2", *FAST,
                "--mlflow-uri", server.uri, "--register-name", "spk25"]  # fmt: skip
        res = launch(args, engine="deepspeed", processes=2)
        assert res.returncode == 0, res.stderr[-4000:]
        assert "2 process(es)" in res.stderr and "[train] step 2 loss" in res.stderr
        tts = LoadedModel.load(
            "models:/spk25@candidate", tracking_uri=server.uri, cache_dir=tmp_path / "cache"
        )
    assert tts.manifest["model_version"] == "v2.5" and tts.manifest["language"] == "en"
    assert tts.label is not None and "RANDOM" in tts.label
    (result,) = tts(["Well, [UH] I think so."], DecodingConfig(seed=0, max_new_tokens=20), latents=False)
    assert result.segments[0][0] == EN and 0 < result.codes.numel() <= 20
    report = evaluate_model(
        tts,
        EvaluateOptions(out=tmp_path / "eval", texts=["It is late.", "We should go."], seeds=1, resamples=20,
                        decoding=DecodingConfig(seed=0, max_new_tokens=20)),
    )  # fmt: skip
    assert report["instrument"]["code_rate"] == 25
    assert (tmp_path / "eval" / "evaluation.json").is_file()
