"""The espeak-ng test corpus: deterministic, and its ground truth is true of the audio it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indextts_dist.audio import frame_db, load_audio
from indextts_dist.corpus import CorpusClip, load_corpus, make_bad_inputs, synthesize_corpus

FORMATS = ("wav", "flac", "mp3", "ogg")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[CorpusClip]]:
    out = tmp_path_factory.mktemp("corpus")
    return out, synthesize_corpus(out, n_clips=12, seed=0, formats=FORMATS)


def silences(samples: np.ndarray, threshold_db: float = -50.0, min_s: float = 0.12) -> list[float]:
    """Durations of the quiet runs strictly inside the clip (10 ms frames below threshold)."""
    quiet = frame_db(samples, 16000) < threshold_db
    loud = np.flatnonzero(~quiet)
    runs, start = [], None
    for i in range(loud[0], loud[-1] + 1):
        if quiet[i] and start is None:
            start = i
        elif not quiet[i] and start is not None:
            if (i - start) / 100 >= min_s:
                runs.append((i - start) / 100)
            start = None
    return runs


def test_files_formats_and_manifest(corpus):
    out, clips = corpus
    assert len(clips) == 12
    assert {c.format for c in clips} == set(FORMATS)
    assert len({c.voice for c in clips}) >= 3 and len({c.speed for c in clips}) >= 3
    for c in clips:
        assert c.path.is_file() and c.path.suffix == f".{c.format}" and c.path.stat().st_size > 1000
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["seed"] == 0 and len(manifest["clips"]) == 12
    assert load_corpus(out) == clips
    assert not list(out.glob(".*.tmp")), "atomic write leaves no temp file"


def test_scripts_hold_the_patterns(corpus):
    _, clips = corpus
    first = clips[0]
    assert first.expected == "Well, [UH] I think [LONG] we should go to the store today."
    assert first.pauses[0].boundary == 3 and first.pauses[0].duration_s == 1.0
    assert first.fillers == [(1, "[UH]")]
    assert clips[1].expected.startswith("So I I I think [PAUSE] the plan")
    assert clips[1].repetitions == 2
    markers = [tok for c in clips for tok in c.expected.split() if tok.startswith("[")]
    for kind in ("[PAUSE]", "[LONG]", "[UH]", "[UM]", "[HMM]"):
        assert kind in markers
    for c in clips:
        assert c.expected.count("[PAUSE]") + c.expected.count("[LONG]") == len(c.pauses)
        assert len(c.words) == len(c.text.split()) - len(c.fillers)
        assert "<" not in c.text and "[" not in c.text


def test_ground_truth_pauses_are_in_the_audio(corpus):
    """Every written break is a silence of its length (±60 ms, lossy codecs included); every other
    silence stays clearly below the 0.3 s [PAUSE] threshold."""
    _, clips = corpus
    for c in clips:
        runs = silences(load_audio(c.path))
        long_runs = sorted(r for r in runs if r >= 0.3)
        truth = sorted(p.duration_s for p in c.pauses)
        assert len(long_runs) == len(truth), (c.path.name, runs, truth)
        assert np.allclose(long_runs, truth, atol=0.06), (c.path.name, long_runs, truth)
        assert max([r for r in runs if r < 0.3], default=0.0) <= 0.27, (c.path.name, runs)


def test_deterministic_given_the_seed(corpus, tmp_path):
    out, clips = corpus
    again = synthesize_corpus(tmp_path / "again", n_clips=12, seed=0, formats=FORMATS)
    assert [c.to_json(tmp_path / "again") for c in again] == [c.to_json(out) for c in clips]
    for a, b in zip(clips, again, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes(), a.path.name
    other = synthesize_corpus(tmp_path / "other", n_clips=12, seed=1, formats=FORMATS)
    assert [c.script for c in other[:4]] == [c.script for c in clips[:4]]  # the fixed anchors
    assert [c.script for c in other[4:]] != [c.script for c in clips[4:]]


def test_bad_inputs_zoo(tmp_path):
    bad = make_bad_inputs(tmp_path)
    expected = {
        "empty", "not_audio", "corrupt", "too_short", "too_long", "silent", "clipped", "unreadable",
        "empty_transcript", "duplicate", "duplicate_source", "non_utf8_name",
    }  # fmt: skip
    assert set(bad) == expected
    assert bad["empty"].stat().st_size == 0
    assert bad["duplicate"].read_bytes() == bad["duplicate_source"].read_bytes()
    assert bad["duplicate"].name != bad["duplicate_source"].name
    assert os.path.basename(os.fsencode(bad["non_utf8_name"])) == b"clip_\xff.wav"
    assert b"clip_\xff.wav" in os.listdir(os.fsencode(tmp_path))
    assert bad["unreadable"].is_symlink() and not bad["unreadable"].exists()
    copy = make_bad_inputs(tmp_path / "b", duplicate_of=bad["too_long"])
    assert "duplicate_source" not in copy
    assert copy["duplicate"].read_bytes() == bad["too_long"].read_bytes()


def test_cli(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "indextts_dist.corpus.espeak", str(tmp_path), "--clips", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote 2 clips" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr
    assert len(json.loads((tmp_path / "corpus.json").read_text())["clips"]) == 2
