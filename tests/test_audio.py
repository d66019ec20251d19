"""Decoding, validation and trimming on real files: every format, every bad input."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from indextts_dist.audio import ClipRejected, display_path, frame_db, load_audio, prepare_clip
from indextts_dist.corpus import CorpusClip, make_bad_inputs, synthesize_corpus

FORMATS = ("wav", "flac", "mp3", "ogg", "m4a")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, CorpusClip]:
    """The same first (anchor) clip in every format."""
    root = tmp_path_factory.mktemp("formats")
    return {fmt: synthesize_corpus(root / fmt, n_clips=1, formats=(fmt,))[0] for fmt in FORMATS}


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_mono_16k_float32(clips, fmt):
    clip = clips[fmt]
    audio = load_audio(clip.path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16000 == pytest.approx(clip.duration_s, abs=0.06)
    assert 0.2 < np.abs(audio).max() <= 1.0
    assert np.isfinite(audio).all()


def test_formats_agree_with_the_wav(clips):
    ref = load_audio(clips["wav"].path)
    assert np.abs(load_audio(clips["flac"].path) - ref).max() < 1e-4  # lossless
    for fmt in ("mp3", "ogg", "m4a"):
        other = load_audio(clips[fmt].path)
        n = min(len(ref), len(other))
        lag = np.argmax(np.correlate(other[:n], ref[:n], "full")) - (n - 1)
        assert abs(lag) < 0.03 * 16000, (fmt, lag)  # no stray codec delay worth a marker


def test_stereo_44k_is_downmixed_and_resampled(clips, tmp_path):
    src = clips["wav"].path
    stereo = tmp_path / "stereo.wav"
    subprocess.run(["sox", str(src), "-r", "44100", "-c", "2", str(stereo)], check=True)
    assert sf.info(str(stereo)).channels == 2
    audio = load_audio(stereo)
    assert audio.ndim == 1 and len(audio) / 16000 == pytest.approx(clips["wav"].duration_s, abs=0.01)
    native = load_audio(src, sample_rate=22050)
    assert len(native) == sf.info(str(src)).frames


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty_file"),
        ("not_audio", "undecodable"),
        ("corrupt", "undecodable"),
        ("too_short", "too_short"),
        ("too_long", "too_long"),
        ("silent", "silent"),
        ("clipped", "clipped"),
        ("unreadable", "unreadable"),
    ],
)
def test_bad_input_reason_and_one_line_message(bad, name, reason):
    with pytest.raises(ClipRejected) as info:
        prepare_clip(bad[name])
    exc = info.value
    assert exc.reason == reason
    msg = str(exc)
    assert "\n" not in msg and bad[name].name in msg and reason in msg
    assert isinstance(exc, ValueError)
    again = pickle.loads(pickle.dumps(exc))  # crosses process boundaries intact
    assert (again.reason, str(again)) == (reason, msg)


def test_a_directory_is_unreadable(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(ClipRejected) as info:
        load_audio(tmp_path / "folder.wav")
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize("name", ["empty_transcript", "duplicate", "duplicate_source", "non_utf8_name"])
def test_inputs_that_only_later_stages_reject_pass_validation(bad, name):
    clip = prepare_clip(bad[name])
    assert 1.0 <= clip.duration_s <= 15.0 and clip.sample_rate == 16000


def test_non_utf8_names_print_on_one_line(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"bad_\xff\nname.wav")
    with open(raw, "wb"):
        pass
    with pytest.raises(ClipRejected) as info:
        load_audio(raw)
    msg = str(info.value)
    assert info.value.reason == "empty_file"
    assert "bad_\\xff\\nname.wav" in msg and "\n" not in msg
    msg.encode("utf-8")  # printable: no lone surrogates
    assert display_path(os.fsdecode(raw)).endswith("bad_\\xff\\nname.wav")


def test_bounds_are_options(bad):
    assert prepare_clip(bad["too_long"], max_seconds=25).duration_s == pytest.approx(20.0, abs=0.1)
    assert prepare_clip(bad["too_short"], min_seconds=0.2).duration_s < 0.5
    with pytest.raises(ClipRejected, match="too_short"):
        prepare_clip(bad["empty_transcript"], min_seconds=3.0)


def test_trimming_removes_known_silence(clips, tmp_path):
    src = clips["wav"].path
    orig = load_audio(src)
    loud = np.flatnonzero(frame_db(orig, 16000) >= -40.0)
    onset, offset, length = loud[0] / 100, (loud[-1] + 1) / 100, len(orig) / 16000
    audio, sr = sf.read(str(src), dtype="float32")
    rng = np.random.default_rng(0)
    padded = np.concatenate([np.zeros(int(0.5 * sr)), audio, np.zeros(int(0.8 * sr))]).astype(np.float32)
    padded += rng.normal(0, 10 ** (-65 / 20), len(padded)).astype(np.float32)  # a quiet noise floor
    path = tmp_path / "padded.wav"
    sf.write(str(path), padded, sr, subtype="FLOAT")
    clip = prepare_clip(path)
    # cut up to the first/last sound above -40 dBFS, keeping a 50 ms margin
    assert clip.trimmed_start_s == pytest.approx(0.5 + onset - 0.05, abs=0.015)
    assert clip.trimmed_end_s == pytest.approx(0.8 + (length - offset) - 0.05, abs=0.015)
    assert clip.duration_s == pytest.approx(offset - onset + 0.1, abs=0.015)
    assert clip.duration_s == len(clip.samples) / 16000
    first = np.flatnonzero(frame_db(clip.samples, 16000) >= -40.0)[0] / 100
    assert first == pytest.approx(0.05, abs=0.015)


def test_a_copy_with_a_strange_name_decodes_identically(bad, tmp_path):
    target = os.path.join(os.fsencode(tmp_path), b"\xe9t\xe9.flac")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(bad["duplicate_source"]), "tmp.flac"], cwd=tmp_path, check=True
    )
    shutil.move(tmp_path / "tmp.flac", os.fsdecode(target))
    assert np.allclose(load_audio(target), load_audio(bad["duplicate_source"]), atol=1e-4)
