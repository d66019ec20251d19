"""The preprocess job for real: espeak-ng clips, faster-whisper, the tiny models, webdataset tars,
1 process vs 2 gloo ranks under torchrun, the bad-input zoo, and resumption after a crash."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from indextts_dist.audio import ClipRejected, prepare_clip
from indextts_dist.conditioning import load_conditioning
from indextts_dist.corpus import make_bad_inputs, synthesize_corpus
from indextts_dist.distributed import World
from indextts_dist.features import SemanticFeatures
from indextts_dist.model import build_model
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.clip import process_clip
from indextts_dist.preprocess.components import load_components
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.preprocess.listing import list_clips
from indextts_dist.preprocess.shards import read_tar_samples
from indextts_dist.speech.second_stage import SecondStage, load_speaker_embeddings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
GOOD_CLIPS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("prep")
    audio = root / "audio"
    clips = synthesize_corpus(audio, n_clips=GOOD_CLIPS, seed=0)
    bad = make_bad_inputs(audio / "zz_bad", duplicate_of=clips[0].path)  # sorts after the originals
    # The first two clips get user transcripts (they override ASR); the rest go through Whisper.
    csv = root / "transcripts.csv"
    rows = [f"{c.path.name},{c.expected}" for c in clips[:2]]
    csv.write_text("file,text\n" + "\n".join(rows) + "\n")
    return audio, csv, bad


def options(audio: Path, csv: Path, out: Path) -> PreprocessOptions:
    return PreprocessOptions(audio_dir=audio, out=out, transcripts=csv, clips_per_shard=3)


def run_torchrun(audio: Path, csv: Path, out: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_port", str(free_port()), str(REPO / "preprocess" / "run.py"),
           "--audio-dir", str(audio), "--out", str(out), "--transcripts", str(csv),
           "--clips-per-shard", "3"]  # fmt: skip
    # The ranks use the thread count of the one-process run they are compared with: on some CPUs
    # Whisper's (CTranslate2) and torch's float results depend on it, which is no rank effect.
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def samples_of(out: Path) -> dict[str, tuple]:
    found = {}
    for tar in sorted(out.glob("shard-*.tar")):
        for s in read_tar_samples(tar):
            meta = s["json"]
            found[s["__key__"]] = (tuple(s["text_ids.npy"].tolist()), tuple(s["codes.npy"].tolist()),
                                   json.dumps(meta, sort_keys=True))  # fmt: skip
            assert s["text_ids.npy"].dtype == np.int32 and s["codes.npy"].dtype == np.int32
            assert meta["text_len"] == len(s["text_ids.npy"]) and meta["code_len"] == len(s["codes.npy"])
    return found


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory) -> Path:
    audio, csv, _ = inputs
    out = tmp_path_factory.mktemp("single")
    run_preprocess(options(audio, csv, out), World(0, 1, 0))
    return out


@pytest.fixture(scope="module")
def two_ranks(inputs, tmp_path_factory) -> Path:
    audio, csv, _ = inputs
    out = tmp_path_factory.mktemp("two")
    res = run_torchrun(audio, csv, out)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "accepted" in res.stdout
    return out


def test_every_input_ends_in_a_shard_or_in_rejects(inputs, single):
    audio, _, bad = inputs
    listed = list_clips(audio)
    info = json.loads((single / "dataset_info.json").read_text())
    rejects = [json.loads(line) for line in (single / "rejects.jsonl").read_text().splitlines()]
    accepted = samples_of(single)
    assert info["version"] == "v2_pattern_conditioned"
    assert len(accepted) + len(rejects) == len(listed) == info["counts"]["inputs"]
    assert info["counts"]["accepted"] == len(accepted)
    reasons = Counter(r["reason"] for r in rejects)
    for reason in ("empty_file", "undecodable", "too_short", "too_long", "silent", "clipped", "unreadable",
                   "empty_transcript", "duplicate", "non_utf8_name"):  # fmt: skip
        assert reasons[reason] >= 1, (reason, rejects)
    for r in rejects:
        assert r["message"] and "\n" not in r["message"]
    sources = {json.loads(v[2])["source"] for v in accepted.values()}
    assert len(sources) == GOOD_CLIPS + ("duplicate_source" in bad)


def test_markers_transcripts_and_coverage(inputs, single):
    info = json.loads((single / "dataset_info.json").read_text())
    metas = [json.loads(v[2]) for v in samples_of(single).values()]
    csv_rows = {m["source"]: m for m in metas if m["transcript_source"] == "csv"}
    assert len(csv_rows) == 2  # the user's transcripts won over ASR
    assert sum(info["markers"]["counts"].values()) >= 1
    assert info["tokenizer_coverage"]["unk_share_total"] < 0.2
    assert set(info["tokenizer_coverage"]["unk_share_per_clip"]) == {m["id"] for m in metas}
    assert (single / "transcripts_verbatim.csv").read_text().startswith("file,text\n")
    assert len(info["splits"]["val"]) >= 1
    pause_codes = info["markers"]["pause_codes"]  # the ASR clips' measured pauses, as codes
    assert pause_codes and all(0 <= int(c) < 64 and n > 0 for c, n in pause_codes.items())
    for m in metas:
        assert m["text_normalized"] == m["text_normalized"].upper()


def test_two_ranks_equal_one_rank(single, two_ranks):
    assert samples_of(single) == samples_of(two_ranks)
    assert len(list(two_ranks.glob("shard-001-*.tar"))) >= 1  # rank 1 really wrote shards
    one = load_conditioning(single / "global_conditioning.safetensors")
    two = load_conditioning(two_ranks / "global_conditioning.safetensors")
    assert float((one.gpt_conditioning - two.gpt_conditioning).abs().max()) <= 1e-6
    assert float((one.emo_vec - two.emo_vec).abs().max()) <= 1e-6
    assert one.metadata["num_clips"] == two.metadata["num_clips"]
    assert one.metadata["source_digest"] == two.metadata["source_digest"]
    read = lambda p: sorted(json.loads(x)["path"] for x in (p / "rejects.jsonl").read_text().splitlines())  # noqa: E731
    assert read(single) == read(two_ranks)


def accepted_sources(out: Path) -> list[str]:
    return sorted({json.loads(v[2])["source"] for v in samples_of(out).values()})


@torch.no_grad()
def test_conditioning_is_the_mean_of_per_clip_latents(inputs, single):
    """The expected mean comes from the GPT's own conditioning encoders, called here on each accepted
    clip's decoded audio features (the job's decoding and features, not its `process_clip`)."""
    audio, _, _ = inputs
    opts = options(audio, inputs[1], single)
    gpt, features = build_model("tiny", seed=0), SemanticFeatures.tiny(0)
    spk, emo = [], []
    for source in accepted_sources(single):
        clip = prepare_clip(audio / source, min_seconds=opts.min_seconds, max_seconds=opts.max_seconds)
        feats = features(clip.samples)[None]
        lengths = torch.tensor([feats.shape[1]])
        spk.append(gpt.get_conditioning(feats, lengths)[0].double())
        emo.append(gpt.get_emo_vec(feats, lengths)[0].double())
    cond = load_conditioning(single / "global_conditioning.safetensors")
    assert int(cond.metadata["num_clips"]) == len(spk) >= GOOD_CLIPS
    assert float((torch.stack(spk).mean(0).float() - cond.gpt_conditioning).abs().max()) <= 1e-6
    assert float((torch.stack(emo).mean(0).float() - cond.emo_vec).abs().max()) <= 1e-6


def test_speaker_embeddings_are_the_same_on_two_ranks_and_averaged_over_every_accepted_clip(
    inputs, single, two_ranks
):
    """Computed by preprocess beside the conditioning (styles summed per clip, reduced with it):
    1 and 2 ranks agree, the style is SecondStage's mean over ALL accepted clips, and ref_mel /
    prompt_condition are the reference clip's (`dataset_info.reference_clips[0]`)."""
    audio = inputs[0]
    info = json.loads((single / "dataset_info.json").read_text())
    assert info["speaker_embeddings"] == "speaker_embeddings.safetensors"
    one = load_speaker_embeddings(single / info["speaker_embeddings"])
    two = load_speaker_embeddings(two_ranks / info["speaker_embeddings"])
    assert float((one.style - two.style).abs().max()) <= 1e-6
    assert torch.allclose(one.style, two.style, rtol=1e-5, atol=1e-12)  # tiny styles are ~1e-4
    assert torch.equal(one.ref_mel, two.ref_mel) and torch.equal(one.prompt_condition, two.prompt_condition)

    stage = SecondStage.tiny(0)
    sources = accepted_sources(single)
    every = stage.speaker_embeddings([audio / s for s in sources]).style
    assert float((one.style - every).abs().max()) <= 1e-6
    assert torch.allclose(one.style, every, rtol=1e-5, atol=1e-12)
    assert not torch.allclose(one.style, stage.speaker_embeddings([audio / s for s in sources[1:]]).style,
                              rtol=1e-5, atol=1e-12)  # fmt: skip
    reference = stage.speaker_embeddings([], reference=audio / info["reference_clips"][0])
    assert torch.allclose(one.ref_mel, reference.ref_mel, atol=1e-6)
    assert torch.allclose(one.prompt_condition, reference.prompt_condition, atol=1e-6)
    copy = single / info["reference_files"][0]  # the dataset carries its reference clip
    assert copy.read_bytes() == (audio / info["reference_clips"][0]).read_bytes()


def test_rerun_after_a_crash_reuses_finished_shards(inputs, single, tmp_path):
    audio, csv, _ = inputs
    out = tmp_path / "resume"
    import shutil

    shutil.copytree(single, out)
    units = sorted(out.glob("shard-000-*.json"))
    assert len(units) >= 3
    crashed = units[1]
    crashed.unlink()  # the commit marker of a unit that was being written when the job died
    (out / "global_conditioning.safetensors").unlink()
    (out / "dataset_info.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("shard-000-*.tar") if p.stem != crashed.stem}
    run_preprocess(options(audio, csv, out), World(0, 1, 0))
    assert crashed.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished units were not redone
    assert samples_of(out) == samples_of(single)
    a = load_conditioning(single / "global_conditioning.safetensors")
    b = load_conditioning(out / "global_conditioning.safetensors")
    assert torch.equal(a.gpt_conditioning, b.gpt_conditioning) and torch.equal(a.emo_vec, b.emo_vec)


def test_a_transcript_the_tokenizer_cannot_spell_is_rejected(inputs, tmp_path):
    audio, csv, _ = inputs
    comps = load_components("tiny", None, None)
    clip = next(c for c in list_clips(audio) if c.reject is None)
    opts = options(audio, csv, tmp_path)
    with pytest.raises(ClipRejected) as err:
        process_clip(clip, comps, opts, "😂😂 👍👍 🎉🎉 ok")
    assert err.value.reason == "unknown_tokens" and "<unk>" in str(err.value)
    kept = process_clip(clip, comps, opts, "Well, [UH] this one is fine.")
    assert kept.meta["unk_share"] == 0 and kept.meta["markers"] == {"[UH]": 1}
