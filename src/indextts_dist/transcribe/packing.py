"""Several short clips in one Whisper window: the plan, the packed audio, and the words split back.

Why: Whisper's encoder always reads a 30 s window, so a 4 s clip pays for 30 s of encoder, and the
decoder's per-window overheads (prompt, start, alignment pass) are paid per clip. Clips laid end to
end with a silent gap between them, up to ``window_s``, share one window; each word goes back to the
clip its middle lies in, with the clip's own time origin. Pure functions: no model here.

The transcript of a clip then depends on the clips packed with it (the decoder reads them as
context), so callers pack a fixed group of clips (preprocess: by position in the listing, never by
rank), which keeps the transcripts independent of the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .markers import Word

__all__ = ["GAP_S", "WINDOW_S", "PackedWindow", "pack_windows", "split_words"]

WINDOW_S = 28.0
"""Audio per packed window: under Whisper's 30 s so the last word's timestamp and a trailing gap fit."""
GAP_S = 1.5
"""Silence between two packed clips: longer than any pause a clip carries inside (the longest
measured pause type starts at 0.7 s and the corpora go to 1.0 s), so the decoder ends one clip's
sentence before the next starts, and a stretched word end still lands in its own clip's half."""


@dataclass(frozen=True)
class PackedWindow:
    """Clips ``members`` (indices into the caller's list) laid out from ``offsets_s`` (seconds from the
    window's start) in one window ``duration_s`` long (the gaps included)."""

    members: tuple[int, ...]
    offsets_s: tuple[float, ...]
    durations_s: tuple[float, ...]

    @property
    def duration_s(self) -> float:
        return self.offsets_s[-1] + self.durations_s[-1]

    def audio(self, clips: Sequence[np.ndarray], sample_rate: int, gap_s: float = GAP_S) -> np.ndarray:
        """The window's samples: the member clips with ``gap_s`` of zeros between them."""
        gap = np.zeros(round(gap_s * sample_rate), np.float32)
        parts: list[np.ndarray] = []
        for k, i in enumerate(self.members):
            if k:
                parts.append(gap)
            parts.append(np.asarray(clips[i], np.float32))
        return np.concatenate(parts)


def pack_windows(
    durations_s: Sequence[float], window_s: float = WINDOW_S, gap_s: float = GAP_S
) -> list[PackedWindow]:
    """Greedy in the given order (a clip never moves ahead of another, so the plan is a function of
    the list alone); a clip longer than ``window_s`` gets a window of its own (Whisper then reads
    it in 30 s windows as it would alone). ``window_s <= 0`` packs nothing: one clip per window."""
    windows: list[PackedWindow] = []
    members: list[int] = []
    offsets: list[float] = []
    lengths: list[float] = []
    end = 0.0

    def close() -> None:
        if members:
            windows.append(PackedWindow(tuple(members), tuple(offsets), tuple(lengths)))

    for i, d in enumerate(durations_s):
        start = end + gap_s if members else 0.0
        if members and (window_s <= 0 or start + d > window_s):
            close()
            members, offsets, lengths, start = [], [], [], 0.0
        members.append(i)
        offsets.append(start)
        lengths.append(float(d))
        end = start + d
    close()
    return windows


def split_words(window: PackedWindow, words: Sequence[Word], gap_s: float = GAP_S) -> list[list[Word]]:
    """The window's words per member clip, in the clip's own time (clamped to [0, its duration]).

    A word belongs to the clip whose span, widened by half a gap on each side, holds the word's
    middle: Whisper stretches a last word's end into the silence after it, and an early start into
    the one before, but not across half of a 1.5 s gap.
    """
    out: list[list[Word]] = [[] for _ in window.members]
    half = gap_s / 2
    for w in words:
        mid = (w.start + w.end) / 2
        for k, (off, dur) in enumerate(zip(window.offsets_s, window.durations_s, strict=True)):
            if off - half <= mid < off + dur + half:
                start = min(max(0.0, w.start - off), dur)
                end = min(max(start, w.end - off), dur)
                out[k].append(Word(w.text, start, end, w.probability))
                break
    return out
