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
    "filler_marker",
    "find_pauses",
    "mark_transcript",
    "normalize_word",
    "pause_marker",
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
    (re.compile(r"h+m+|m{2,}"), "[HMM]"),
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
