"""Audio-space instrument: the transcriber and marker detector of preprocess, read as counts.

A clip's transcript (`transcribe.Transcriber`, the very object preprocess transcribes with, same
prompt, thresholds and hallucination guards) gives: the spoken words (fillers excluded), the
`[PAUSE]`/`[LONG]` markers it placed from measured silences, its filler markers, immediate word
repetitions ("I I think"), and the span of measured speech, from which the speech rate follows
(pauses included: a hesitant speaker is slower). With the intended text, the word errors of the
transcript against it (markers and fillers excluded on both sides: saying "uh" is the pattern,
not a mistake). Speaker similarity is a separate measurement (CAMPPlus), see `similarity`.

Counts only, as in `code_measures`: statistics over many clips are ratios of sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from ..pattern_markers import FILLER_KINDS, LONG, PATTERN_MARKERS, PAUSE
from ..transcribe.markers import filler_marker, normalize_word
from ..transcribe.transcriber import Transcript

__all__ = ["intended_words", "transcript_measures", "word_errors"]


def intended_words(text: str) -> list[str]:
    """The words a text asks to be said: markers and filler words dropped, normalized as the
    transcript's words are (`normalize_word`)."""
    out = []
    for token in text.split():
        if token.upper() in PATTERN_MARKERS or filler_marker(token) is not None:
            continue
        word = normalize_word(token)
        if word:
            out.append(word)
    return out


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions + insertions + deletions), one DP row."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]


def transcript_measures(transcript: Transcript, intended: str | None = None) -> dict[str, float]:
    """Counts of one clip. `intended`: the text the clip should say (None: no WER, e.g. training
    clips transcribed by this same ASR, whose WER against themselves would be 0 by construction)."""
    words = [normalize_word(w.text) for w in transcript.words if filler_marker(w.text) is None]
    words = [w for w in words if w]
    counts = transcript.marker_counts
    speech = transcript.speech
    out: dict[str, float] = {
        "clips": 1,
        "words": len(words),
        "pauses": counts.get(PAUSE, 0) + counts.get(LONG, 0),
        "long_pauses": counts.get(LONG, 0),
        "fillers": sum(counts.get(k, 0) for k in FILLER_KINDS),
        "repetitions": sum(a == b for a, b in pairwise(words)),
        "speech_s": (speech[-1][1] - speech[0][0]) if speech else 0.0,
    }
    if intended is not None:
        reference = intended_words(intended)
        out["word_errors"] = word_errors(reference, words)
        out["reference_words"] = len(reference)
    return out
