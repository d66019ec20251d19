"""Speaking-pattern markers from ASR words plus speech timing measured on the audio. Pure functions.

Why the audio decides pauses: Whisper's word end times stretch up to ~1 s into a following silence
(and the next word's start often moves early to meet it), so gaps between its timestamps say little.
Here a pause is a silence measured on the audio; the words only decide WHERE it goes (after the word
that was under way when the audio went quiet). A stretched timestamp cannot hide a pause, and a gap
between timestamps cannot invent one.

Fillers are mapped by spelling (case and punctuation ignored); repetitions ("I I I think") are
words like any other and are kept verbatim.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..pattern_markers import LONG_PAUSE_S, PATTERN_MARKERS, PAUSE_S, pause_marker

__all__ = [
    "FILLER_MARKERS",
    "HALLUCINATED_TAILS",
    "Pause",
    "Word",
    "drop_after_speech",
    "drop_hallucinated_tail",
    "drop_looped_phrases",
    "drop_packed_words",
    "drop_words_in_silence",
    "filler_marker",
    "find_pauses",
    "mark_transcript",
    "normalize_word",
    "pause_marker",
    "relabel_lookalike_fillers",
]

FILLER_MARKERS: dict[str, str] = {
    "uh": "[UH]",
    "uhh": "[UH]",
    "uhhh": "[UH]",
    "um": "[UM]",
    "umm": "[UM]",
    "ummm": "[UM]",
    "uhm": "[UM]",
    "hmm": "[HMM]",
    "hm": "[HMM]",
    "hmmm": "[HMM]",
    "mm": "[HMM]",
    "mmm": "[HMM]",
    "ah": "[AH]",
    "ahh": "[AH]",
    "aah": "[AH]",
    "er": "[ER]",
    "err": "[ER]",
    "erm": "[ER]",
}
"""Known spellings. Longer runs of the same letters (``uhhhh``, ``hmmmmm``) map by pattern too."""

_FILLER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"u+h+"), "[UH]"),
    (re.compile(r"u+h*m+"), "[UM]"),
    (re.compile(r"h+m+|m{2,}|h+n+"), "[HMM]"),
    (re.compile(r"a+h+"), "[AH]"),
    (re.compile(r"e+r+m*"), "[ER]"),
)

HALLUCINATED_TAILS: tuple[tuple[str, ...], ...] = (
    ("thank", "you", "so", "much", "for", "watching"),
    ("thank", "you", "for", "watching"),
    ("thanks", "for", "watching"),
    ("see", "you", "in", "the", "next", "video"),
    ("see", "you", "next", "time"),
    ("please", "subscribe"),
    ("bye",),
    ("you",),
)
"""Endings Whisper invents on silence or after a prompt; dropped only when improbable (see below)."""

LOOKALIKE_FILLERS: dict[str, str] = {"dumb": "um", "come": "um", "home": "hmm", "hum": "hmm"}
"""Words tiny.en writes for a filler it half heard (measured on the flite/espeak corpora, and the
issue's "um" heard as "come"/"dumb"); relabelled only when Whisper barely believed them."""

_PUNCT = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


@dataclass(frozen=True)
class Word:
    """One ASR word: its text as written (leading space stripped), times in seconds."""

    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Pause:
    """A measured silence after word ``after`` (index into the word list), ``duration`` seconds."""

    after: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def normalize_word(text: str) -> str:
    """Lower case without surrounding punctuation: ``"Um,"`` → ``"um"``, ``"...uh"`` → ``"uh"``."""
    return _PUNCT.sub("", text.strip().lower())


def filler_marker(text: str) -> str | None:
    """The marker for a filler word (``"Uh,"`` → ``"[UH]"``), None for any other word."""
    w = normalize_word(text)
    if not w:
        return None
    if w in FILLER_MARKERS:
        return FILLER_MARKERS[w]
    for pattern, marker in _FILLER_PATTERNS:
        if pattern.fullmatch(w):
            return marker
    return None


def find_pauses(
    words: Sequence[Word],
    speech: Sequence[tuple[float, float]],
    min_pause_s: float = PAUSE_S,
    start_tolerance_s: float = 0.05,
) -> list[Pause]:
    """Measured silences ≥ ``min_pause_s`` between ``speech`` segments, each placed after the last
    word that STARTED before the silence began (within ``start_tolerance_s``).

    Why starts: Whisper stretches a word's END into the silence that follows it (and often starts
    the next word early to meet it), but the word that was under way when the audio went quiet is
    the one the pause follows. A silence before the first word or after the last word started is
    not a pause between words (the clip's ends are trimmed anyway). Several silences after one word
    (an untranscribed filler between them) each give a pause. ``speech`` is sorted, non-overlapping.
    """
    pauses: list[Pause] = []
    if len(words) < 2:
        return pauses
    starts = [w.start for w in words]
    for (_, g0), (g1, _) in itertools.pairwise(speech):
        if g1 - g0 < min_pause_s:
            continue
        i = bisect.bisect_left(starts, g0 + start_tolerance_s) - 1
        if 0 <= i < len(words) - 1:
            pauses.append(Pause(after=i, start=g0, end=g1))
    return pauses


def drop_after_speech(words: Sequence[Word], speech_end_s: float, tolerance_s: float = 0.1) -> list[Word]:
    """Words that start after the audio's last speech (plus a tolerance) are hallucinations."""
    return [w for w in words if w.start <= speech_end_s + tolerance_s]


def relabel_lookalike_fillers(words: Sequence[Word], max_probability: float = 0.45) -> list[Word]:
    """``LOOKALIKE_FILLERS`` words Whisper gave a probability below ``max_probability`` become the
    filler they stand for ("Honestly, dumb." → "Honestly, um."); a confident "home" stays a word."""
    out = []
    for w in words:
        n = normalize_word(w.text)
        if n in LOOKALIKE_FILLERS and w.probability < max_probability:
            w = Word(w.text.lower().replace(n, LOOKALIKE_FILLERS[n], 1), w.start, w.end, w.probability)
        out.append(w)
    return out


def drop_words_in_silence(
    words: Sequence[Word], speech: Sequence[tuple[float, float]], min_overlap_s: float = 0.01
) -> list[Word]:
    """Words that lie in a measured silence between speech segments (overlap with speech below
    ``min_overlap_s``, with a 0.05 s allowance each side for timestamp jitter) were not said there:
    Whisper aligns invented text to wherever is left. Such a word is dropped, except a FILLER: tiny
    Whisper writes a real "uh" but times it into the pause that follows it, so a filler in a silence
    is moved to the end of the speech before that silence (and the pause then follows it, as it
    did in the audio). Words before the first speech are kept (the clip start is trimmed)."""
    if not speech:
        return []
    out: list[Word] = []
    for w in words:
        a, b = w.start - 0.05, max(w.end, w.start) + 0.05
        overlap = sum(max(0.0, min(b, e) - max(a, s)) for s, e in speech)
        if overlap >= min_overlap_s or w.end <= speech[0][0]:
            out.append(w)
            continue
        if filler_marker(w.text) is None:
            continue
        before = [e for _, e in speech if e <= w.start + 0.05]
        if not before:
            continue
        end = before[-1]
        start = max(end - 0.05, out[-1].start + 0.01 if out else 0.0)
        out.append(Word(w.text, min(start, end), end, w.probability))
    return out


def drop_packed_words(words: Sequence[Word], window: int = 4, min_span_s: float = 0.25) -> list[Word]:
    """Drop every run of ``window`` consecutive words squeezed into less than ``min_span_s`` (16
    words a second and more: no one speaks that fast). It is what Whisper's alignment does with text
    the audio does not hold ("Thank you very much for watching, see you in the next video, ..."
    piled onto the last 0.1 s)."""
    bad = [False] * len(words)
    for i in range(len(words) - window + 1):
        if words[i + window - 1].end - words[i].start < min_span_s:
            for k in range(i, i + window):
                bad[k] = True
    return [w for w, b in zip(words, bad, strict=True) if not b]


def drop_looped_phrases(
    words: Sequence[Word], max_word_repeats: int = 4, max_phrase_repeats: int = 2
) -> list[Word]:
    """Collapse a decoding loop to one copy: one word said more than ``max_word_repeats`` times in a
    row ("no, no, no, no, no, no, ..."), or a phrase of 2-8 words more than ``max_phrase_repeats``
    times. Stutters ("I I I", "the the") and a phrase said twice stay verbatim."""
    out = list(words)
    norm = [normalize_word(w.text) for w in out]
    i = 0
    while i < len(out):
        for n in range(1, 9):
            unit = norm[i : i + n]
            if len(unit) < n or not all(unit):
                break
            reps = 1
            while norm[i + reps * n : i + (reps + 1) * n] == unit:
                reps += 1
            if reps > (max_word_repeats if n == 1 else max_phrase_repeats):
                del out[i + n : i + reps * n]
                del norm[i + n : i + reps * n]
                break
        i += 1
    return out


def drop_hallucinated_tail(words: Sequence[Word], max_probability: float = 0.3) -> list[Word]:
    """Drop a trailing stock phrase ("Thank you.", "Thanks for watching") — or the start of one, when
    the rest was already cut as lying past the speech — if Whisper itself barely believed its first
    word. A spoken "thank you" comes with a high probability and stays. Repeated until stable, as
    the phrase is sometimes invented twice."""
    out = list(words)
    changed = True
    while changed and out:
        changed = False
        norm = [normalize_word(w.text) for w in out]
        for tail in HALLUCINATED_TAILS:
            for n in range(min(len(tail), len(out)), 0, -1):
                if tuple(norm[-n:]) == tail[:n] and out[-n].probability < max_probability:
                    out, changed = out[:-n], True
                    break
            if changed:
                break
    return out


def mark_transcript(
    words: Sequence[Word],
    pauses: Iterable[Pause] = (),
    pause_s: float = PAUSE_S,
    long_pause_s: float = LONG_PAUSE_S,
) -> tuple[str, dict[str, int]]:
    """Verbatim text with markers, and the count of each marker (every PATTERN_MARKERS key present).

    Fillers become their marker (the filler's own punctuation goes with it); other words are kept
    as written, repetitions included; each pause goes after its word as ``[PAUSE]`` or ``[LONG]``.
    """
    after: dict[int, list[str]] = {}
    for p in sorted(pauses, key=lambda p: (p.after, p.start)):
        marker = pause_marker(p.duration, pause_s, long_pause_s)
        if marker is not None:
            after.setdefault(p.after, []).append(marker)
    counts = dict.fromkeys(PATTERN_MARKERS, 0)
    out: list[str] = []
    for i, w in enumerate(words):
        marker = filler_marker(w.text)
        if marker is not None:
            out.append(marker)
            counts[marker] += 1
        elif w.text.strip():
            out.append(w.text.strip())
        for m in after.get(i, ()):
            out.append(m)
            counts[m] += 1
    return " ".join(out), counts
