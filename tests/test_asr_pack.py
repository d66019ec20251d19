"""Issue 13, speed: short clips packed into shared Whisper windows (`--asr-pack`).

The plan and the word split are pure and checked exactly; then real faster-whisper (bundled tiny.en)
on real flite and espeak-ng clips: every clip's words come back to that clip (none leaks into a
neighbour), and the preprocess grouping gives the same transcripts for 1, 2 and 3 processes.
"""

from __future__ import annotations

import difflib

import pytest

from indextts_dist.audio import prepare_clip
from indextts_dist.corpus import synth_corpus
from indextts_dist.errors import InputError
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.clip import StageTimer, packed_transcripts
from indextts_dist.preprocess.components import Components
from indextts_dist.preprocess.listing import deal, list_clips
from indextts_dist.preprocess.unit_key import asr_settings
from indextts_dist.transcribe import Transcriber, Word, normalize_word
from indextts_dist.transcribe.packing import GAP_S, pack_windows, split_words


def test_windows_are_greedy_in_order_and_a_long_clip_stands_alone():
    windows = pack_windows([4.0, 5.0, 20.0, 30.0, 2.0, 2.0], window_s=28.0, gap_s=1.5)
    assert [w.members for w in windows] == [(0, 1), (2,), (3,), (4, 5)]
    assert windows[0].offsets_s == (0.0, 5.5) and windows[0].duration_s == 10.5
    assert [w.members for w in pack_windows([1.0, 1.0, 1.0], window_s=0.0)] == [(0,), (1,), (2,)]
    assert pack_windows([]) == []


def test_window_audio_has_the_gaps_and_words_go_back_to_their_clip():
    import numpy as np

    clips = [np.ones(16000, np.float32), np.full(8000, 2.0, np.float32)]
    (window,) = pack_windows([1.0, 0.5], window_s=28.0, gap_s=GAP_S)
    audio = window.audio(clips, 16000)
    assert len(audio) == 16000 + round(GAP_S * 16000) + 8000
    assert audio[16000 : 16000 + round(GAP_S * 16000)].max() == 0.0 and audio[-1] == 2.0
    words = [
        Word("one", 0.1, 0.9),
        Word("stretched", 0.8, 1.6),  # end runs into the gap, middle still in clip 0's half
        Word("two", 2.45, 2.9),  # starts early, before clip 1 (at 2.5 s)
    ]
    first, second = split_words(window, words)
    assert [w.text for w in first] == ["one", "stretched"] and first[1].end == 1.0  # clamped
    assert [(w.text, w.start, round(w.end, 2)) for w in second] == [("two", 0.0, 0.4)]


def test_asr_pack_is_in_the_key_and_needs_whole_groups(tmp_path):
    assert asr_settings(None, None, pack=True) != asr_settings(None, None)
    with pytest.raises(InputError, match="multiple of 8"):
        PreprocessOptions(audio_dir=tmp_path, out=tmp_path / "o", asr_pack=True, clips_per_shard=12)
    opts = PreprocessOptions(audio_dir=tmp_path, out=tmp_path / "o", asr_pack=True, clips_per_shard=16)
    assert opts.deal_group == 8


# --- real audio, real Whisper --------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w for t in text.split() if not t.startswith("[") for w in [normalize_word(t)] if w]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 clips: 6 flite (voices rotate) and 6 espeak-ng, decoded as the job does."""
    out = tmp_path_factory.mktemp("pack")
    clips = synth_corpus(out / "flite", "flite", 6) + synth_corpus(out / "espeak", "espeak-ng", 6)
    return clips, [prepare_clip(c.path).samples for c in clips]


@pytest.mark.slow
def test_packed_words_stay_with_their_clip(corpus):
    clips, audio = corpus
    packed = Transcriber().transcribe_many(audio, pack=True)
    assert len(packed) == len(clips)

    def similarity(text: str, clip) -> float:
        return difflib.SequenceMatcher(a=_words(text), b=clip.words, autojunk=False).ratio()

    for i, (clip, tr) in enumerate(zip(clips, packed, strict=True)):
        scores = [similarity(tr.text, other) for other in clips]
        # its own sentence (ASR slips allowed: "ladder" for "letter"), not a neighbour's
        assert scores[i] >= 0.5 and scores[i] == max(scores), (clip.expected, tr.text)
        duration = prepare_clip(clip.path).duration_s
        assert all(0.0 <= w.start <= w.end <= duration + 1e-6 for w in tr.words)


@pytest.mark.slow
def test_packed_transcripts_do_not_depend_on_the_number_of_processes(corpus, tmp_path):
    clips, _ = corpus
    audio_dir = tmp_path / "clips"
    audio_dir.mkdir()
    for i, c in enumerate(clips):  # listing order = file name order
        (audio_dir / f"{i:02d}.wav").write_bytes(c.path.read_bytes())
    listed = list_clips(audio_dir)
    opts = PreprocessOptions(audio_dir=audio_dir, out=tmp_path / "o", asr_pack=True, clips_per_shard=16)
    comps = Components("tiny", None, None, None, None)
    # one block of 16 holds both packing groups (0-7, 8-11) with 1 process; 2 and 3 processes deal
    # the groups to different ranks: the groups, not the blocks, decide what is packed together
    by_world = {}
    for world in (1, 2, 3):
        texts = {}
        for rank in range(world):
            mine = deal(listed, rank, world, opts.deal_group)
            for start in range(0, len(mine), opts.clips_per_shard):
                block = mine[start : start + opts.clips_per_shard]
                done = packed_transcripts(block, comps, opts, StageTimer())
                texts.update({i: tr.text for i, (_, tr) in done.items()})
        by_world[world] = texts
    assert sorted(by_world[1]) == list(range(len(clips)))
    assert by_world[1] == by_world[2] == by_world[3]
