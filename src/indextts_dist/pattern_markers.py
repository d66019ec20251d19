"""The speaking-pattern vocabulary and the pause thresholds, in one place.

Transcripts carry these markers verbatim (`[PAUSE]`, `[LONG]`, and one marker per filler kind);
the text front end spells them as ordinary pieces (`[PAUSE]` → `'PAUSE'`, no special id),
preprocess counts them, the test corpora write them as ground truth and evaluation reads them
back. A silence of at least `PAUSE_S` seconds between words is a `[PAUSE]`, of at least
`LONG_PAUSE_S` a `[LONG]` (the guide's thresholds; both stay options where a command measures
pauses).
"""

from __future__ import annotations

import re

__all__ = [
    "AH",
    "ER",
    "FILLER_KINDS",
    "HMM",
    "LONG",
    "LONG_PAUSE_S",
    "PATTERN_MARKERS",
    "PAUSE",
    "PAUSE_S",
    "UH",
    "UM",
    "pause_marker",
    "strip_markers",
]

PAUSE, LONG = "[PAUSE]", "[LONG]"
UH, UM, HMM, AH, ER = "[UH]", "[UM]", "[HMM]", "[AH]", "[ER]"
FILLER_KINDS: tuple[str, ...] = (UH, UM, HMM, AH, ER)
"""One marker per kind of filled pause."""
PATTERN_MARKERS: tuple[str, ...] = (PAUSE, LONG, *FILLER_KINDS)
"""Every marker a transcript may carry."""

PAUSE_S = 0.3
"""Shortest silence between words that is a pause."""
LONG_PAUSE_S = 0.7
"""Shortest silence between words that is a long pause."""


def pause_marker(
    duration_s: float, pause_s: float = PAUSE_S, long_pause_s: float = LONG_PAUSE_S
) -> str | None:
    """`[LONG]`, `[PAUSE]` or None for a silence of `duration_s` seconds."""
    if duration_s >= long_pause_s:
        return LONG
    if duration_s >= pause_s:
        return PAUSE
    return None


_MARKER_RE = re.compile("|".join(re.escape(m) for m in PATTERN_MARKERS), re.IGNORECASE)


def strip_markers(text: str) -> str:
    """The text without its markers, spaces collapsed: the plain text a held-out evaluation text
    is, so "per 100 text tokens" counts the same tokens on the data's side and the model's."""
    return " ".join(_MARKER_RE.sub(" ", text).split())
