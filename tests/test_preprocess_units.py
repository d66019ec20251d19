"""Preprocess building blocks without audio models: listing, dealing, CSVs, splits, shard units."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from indextts_dist.codec import codec_preset
from indextts_dist.conditioning import ConditioningSums
from indextts_dist.preprocess.clip import ProcessedClip, count_markers, pause_code_counts
from indextts_dist.preprocess.dataset_info import validation_split
from indextts_dist.preprocess.listing import deal, list_clips
from indextts_dist.preprocess.shards import load_unit, read_tar_samples, write_unit
from indextts_dist.preprocess.transcripts import read_transcripts, transcripts_csv


def test_listing_sorts_dedupes_and_flags_bad_names(tmp_path):
    (tmp_path / "b.wav").write_bytes(b"same")
    (tmp_path / "a.flac").write_bytes(b"other")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.mp3").write_bytes(b"same")
    (tmp_path / "notes.txt").write_text("not audio by extension")
    os.close(os.open(os.fsencode(tmp_path) + b"/d_\xff.wav", os.O_CREAT | os.O_WRONLY))
    clips = list_clips(tmp_path)
    assert [c.relative for c in clips][:3] == ["a.flac", "b.wav", "d_\udcff.wav"]
    by_name = {c.relative: c for c in clips}
    assert by_name["sub/c.mp3"].reject == ("duplicate", "same content as b.wav")
    assert by_name["d_\udcff.wav"].reject[0] == "non_utf8_name"
    assert by_name["a.flac"].reject is None
    shares = [deal(clips, r, 3) for r in range(3)]
    assert sorted(c.index for s in shares for c in s) == list(range(len(clips)))
    assert [c.index for c in shares[1]] == [1]
    with pytest.raises(FileNotFoundError, match="audio folder not found"):
        list_clips(tmp_path / "missing")


def test_transcript_csv_round_trip_and_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(transcripts_csv([("a.wav", "Well, [UH] hi, there"), ("sub/b.wav", "ok")]))
    assert read_transcripts(path) == {"a.wav": "Well, [UH] hi, there", "sub/b.wav": "ok"}
    (tmp_path / "bad.csv").write_text("name,words\nx,y\n")
    with pytest.raises(ValueError, match="needs the header 'file,text'"):
        read_transcripts(tmp_path / "bad.csv")


def test_markers_are_counted_case_insensitively():
    assert count_markers("[uh] I [PAUSE] I [Pause] think [LONG]") == {"[UH]": 1, "[PAUSE]": 2, "[LONG]": 1}


def test_validation_split_is_deterministic_and_bounded():
    keys = [f"k{i}" for i in range(30)]
    val = validation_split(keys, 0.1, seed=0)
    assert len(val) == 3 and val == validation_split(list(reversed(keys)), 0.1, seed=0)
    assert validation_split(keys, 0.1, seed=1) != val
    assert validation_split(["a"], 0.5, 0) == []
    assert len(validation_split(["a", "b"], 0.01, 0)) == 1


def test_shard_unit_round_trip(tmp_path):
    sums = ConditioningSums.zeros(32, 8, style_dim=4)
    spk, emo = torch.randn(32, 8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    style = torch.randn(4, dtype=torch.float64)
    sums.add(spk, emo, style)
    sample = ProcessedClip(
        "k1", np.array([5, 6], np.int32), np.array([1, 2, 3], np.int32), {"id": "k1"}, spk, emo, style
    )
    reject = {"index": 1, "path": "x.wav", "reason": "silent", "message": "x.wav: silent"}
    write_unit(tmp_path, 0, 0, ["a.wav", "x.wav"], [sample], [reject], sums)
    assert load_unit(tmp_path, 0, 0, ["a.wav", "other.wav"]) is None  # covers other clips: recompute
    unit = load_unit(tmp_path, 0, 0, ["a.wav", "x.wav"])
    assert unit is not None and unit.reused and unit.rejects == [reject]
    assert unit.sums.count == 1 and torch.equal(unit.sums.spk, spk) and torch.equal(unit.sums.emo, emo)
    assert unit.sums.style_count == 1 and torch.equal(unit.sums.style, style)
    (got,) = read_tar_samples(tmp_path / "shard-000-00000.tar")
    assert got["__key__"] == "k1" and got["json"] == {"id": "k1"}
    assert got["codes.npy"].tolist() == [1, 2, 3] and got["text_ids.npy"].dtype == np.int32
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-000-00000.cond.safetensors", "shard-000-00000.json", "shard-000-00000.tar",
    ]  # fmt: skip


@pytest.mark.parametrize("codec", ["tiny", "tiny-v2.5"])
def test_pause_codes_are_the_codes_inside_measured_silences(codec):
    rate = codec_preset(codec).code_rate  # 50 codes/s (v2), 25 (2.5)
    codes = list(range(int(2 * rate)))  # 2 s of codes
    speech = [(0.0, 0.5), (0.9, 1.2), (1.3, 2.0)]  # a 0.4 s pause, then a 0.1 s gap (not a pause)
    inside = range(round(0.5 * rate), round(0.9 * rate))
    assert pause_code_counts(codes, speech, rate) == {str(c): 1 for c in inside}
    assert len(inside) == {50: 20, 25: 10}[int(rate)]
    assert pause_code_counts(codes, [], rate) == {}
