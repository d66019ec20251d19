"""The evaluation instrument's pieces, each against a hand count: pause runs, loops, word errors,
ratio-of-sums statistics with paired bootstrap intervals, the pause-code choice, the held-out texts."""

from __future__ import annotations

import random

import pytest

from indextts_dist.corpus.espeak import _CLAUSES
from indextts_dist.corpus.speakers import HESITANT, _events, sentences
from indextts_dist.evaluate.audio_measures import intended_words, transcript_measures, word_errors
from indextts_dist.evaluate.code_measures import code_measures, pause_runs, repeated_ngrams
from indextts_dist.evaluate.data_measures import choose_pause_codes
from indextts_dist.evaluate.report import sanity
from indextts_dist.evaluate.statistics import CODE_STATISTICS, Statistic, bootstrap, summarize, value
from indextts_dist.evaluate.texts import HELD_OUT_TEXTS
from indextts_dist.pattern_markers import strip_markers
from indextts_dist.transcribe import Transcript, Word

P = 7  # a pause code


def test_pause_runs_count_maximal_runs_by_duration() -> None:
    codes = [1] + [P] * 15 + [2] + [P] * 14 + [3] + [P] * 35 + [P, 9]  # 0.3 s, 0.28 s, 0.72 s
    assert pause_runs(codes, {P}, 0.3) == 2
    assert pause_runs(codes, {P}, 0.7) == 1
    assert pause_runs([P] * 15, {P}, 0.3) == 1  # a run that ends the stream counts
    assert pause_runs([], {P}, 0.3) == 0


def test_repeated_ngrams_ignore_pure_silence() -> None:
    codes = [1, 2, 3, 4, 1, 2, 3, 4] + [P] * 10
    repeated, counted = repeated_ngrams(codes, {P})
    # 4-grams: 5 over the speech (one repeat: 1 2 3 4 again), 3 reaching into the silence, and the
    # 7 all-pause ones left out
    assert (repeated, counted) == (1, 8)
    assert repeated_ngrams(codes, None) == (7, 15)


def test_code_measures_without_pause_codes_leave_pause_counts_out() -> None:
    m = code_measures([1, 2, 3], text_tokens=2, pause_codes=None, stopped=False)
    assert m["codes"] == 3 and m["stopped"] == 0.0 and "pause_runs" not in m and "pause_codes" not in m
    assert code_measures([P] * 20, 4, {P})["pause_runs"] == 1


def test_word_errors_and_intended_words() -> None:
    assert intended_words("Well [UH] I think, [PAUSE] uh we go.") == ["well", "i", "think", "we", "go"]
    assert word_errors(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_errors([], ["a"]) == 1 and word_errors(["a"], []) == 1


def test_transcript_measures() -> None:
    words = [
        Word("Well,", 0.0, 0.3),
        Word("uh", 0.4, 0.5),
        Word("I", 1.0, 1.1),
        Word("I", 1.2, 1.3),
        Word("think", 1.4, 1.8),
    ]
    t = Transcript(
        "Well, [UH] [LONG] I I think",
        words,
        {"[UH]": 1, "[LONG]": 1, "[PAUSE]": 0},
        speech=[(0.0, 0.5), (1.0, 2.0)],
    )
    m = transcript_measures(t, "Well I think.")
    assert m == {
        "clips": 1,
        "words": 4,
        "pauses": 1,
        "long_pauses": 1,
        "fillers": 1,
        "repetitions": 1,
        "speech_s": 2.0,
        "word_errors": 1,
        "reference_words": 3,
    }


def test_statistics_are_ratios_of_sums_with_paired_intervals() -> None:
    stat = Statistic("x", "x", "n", "d", scale=100)
    base = [{"n": 1, "d": 10}, {"n": 3, "d": 30}]
    adapted = [{"n": 2, "d": 10}, {"n": 9, "d": 30}]
    assert value(base, stat) == pytest.approx(10.0) and value(adapted, stat) == pytest.approx(27.5)
    assert value([{"n": 1}], stat) is None
    lo, hi = bootstrap(adapted, stat, resamples=200)
    assert 20 <= lo <= 27.5 <= hi <= 30
    row = summarize(adapted, base, 30.0, stat, resamples=200)
    assert row["transfer"] == pytest.approx((27.5 - 10) / (30 - 10))
    lo, hi = row["transfer_ci"]  # paired: each resample is the same texts on both sides
    assert 0.5 <= lo <= row["transfer"] <= hi <= 1.0
    assert summarize(adapted, base[:1], 30.0, stat)["transfer_ci"] is None  # unpaired sides
    assert summarize(adapted, base, 10.0, stat)["transfer"] is None  # data == base: undefined


def test_sanity_figures() -> None:
    code = {"codes_per_text_token": {"base": 4.0, "data": 5.0}, "stop_rate": {"base": 0.5, "data": 1.0}}
    got = {s["statistic"]: s for s in sanity(code)}
    assert got["codes_per_text_token"]["ok"] is True and got["codes_per_text_token"]["figure"] == 0.8
    assert got["stop_rate"]["ok"] is False
    assert got["pause_code_share"]["ok"] is None
    assert [s.key for s in CODE_STATISTICS][:2] == ["pauses_per_100_tokens", "long_pauses_per_100_tokens"]


def test_pause_codes_are_enriched_in_silences() -> None:
    in_pauses = {"5": 90, "1": 10}  # 1 is common everywhere, 5 is silence
    overall = {5: 100, 1: 500, 2: 400}
    assert choose_pause_codes(in_pauses, overall) == {"5": 90}
    assert choose_pause_codes({}, overall) == {}


def _norm(text: str) -> str:
    return " ".join(w.strip(".,!?").lower() for w in text.split())


def test_held_out_texts_never_occur_in_the_training_grammars() -> None:
    seen = {_norm(s) for s in sentences(1680)} | {_norm(c) for c in _CLAUSES}
    assert len(HELD_OUT_TEXTS) >= 10 and not {_norm(t) for t in HELD_OUT_TEXTS} & seen
    assert all(strip_markers(t) == t for t in HELD_OUT_TEXTS)  # plain: no markers
    assert strip_markers("Well [UH] so [pause] yes") == "Well so yes"


def test_hesitant_events_keep_the_words_in_order() -> None:
    rng = random.Random(0)
    for text in sentences(20, seed=3):
        events = _events(text, HESITANT, rng)
        spoken = " ".join(e.text for e in events if e.kind == "words").split()
        deduped = [w for i, w in enumerate(spoken) if i == 0 or w.lower() != spoken[i - 1].lower()]
        assert deduped == text.split()  # only a repeated word added
    with pytest.raises(ValueError):
        sentences(10**6)
