"""Filled pauses Whisper dropped, found on the audio and confirmed by decoding them alone.

Why a second look: in running speech tiny Whisper reads a filler with its fluent neighbours as
context and writes it as nothing, or as a word ("um" → "come", "that", "don't"), while the same
sound cut out and decoded ON ITS OWN comes back as "Uh..." / "Um..." / "Hmm." (measured on flite,
espeak-ng and festival). So:

1. ``sound_stretches``: inside the measured speech, the runs of sound separated by short quiet gaps
   (≥ 50 ms: the breath around a filler) — each a word group or a lone filler.
2. ``filler_candidates``: stretches of a filler's length (0.12–1.0 s) that no filler Whisper already
   wrote belongs to, and that sound like one (``sounds_like_filler``: one sustained, spectrally
   stable sound) — a cheap screen, so only ~40% of the stretches cost a decode.
3. The caller decodes each candidate alone (``Transcriber``); ``confirmed_filler`` accepts it only
   when EVERYTHING decoded there is a filler (a candidate holding any word stays as transcribed:
   a filler marker where the speaker said a word is worse than a missed filler).
4. ``merge_fillers`` puts each confirmed filler into the word list at its time; a word Whisper
   started inside the filler but that runs past it (the next word, started early to meet it)
   starts at the next stretch instead, so a silence after the filler goes after the filler.

Pure functions except for the decode, which the ``Transcriber`` owns; it runs the check for English
(the fillers it knows — "uh", "um", "hmm", "ah", "er" — are English spellings), not for a clip in
another language or one whose language a multilingual model detects per clip.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .levels import frame_db, quiet_frames
from .markers import LOOKALIKE_FILLERS, Word, filler_marker, normalize_word, relabel_lookalike_fillers

__all__ = [
    "FillerStretch",
    "confirmed_filler",
    "filler_candidates",
    "merge_fillers",
    "sound_stretches",
    "sounds_like_filler",
    "spectral_flux",
]

MIN_FILLER_S = 0.12
MAX_FILLER_S = 1.0
"""A filled pause lasts ~0.15–1 s; stretches outside this range are never candidates."""
MIN_CONFIDENCE = 0.1
"""Fillers decoded alone come back at a mean token probability of 0.12-0.7; a schwa-like word
("the") that Whisper read as "ah" at 0.03 is not one."""
SHORT_FILLER_S = 0.45
SHORT_MAX_FLUX = 1.1
LONG_MAX_FLUX = 0.7
"""The screen's limits, measured on flite, espeak-ng and festival (benchmarks/markers.py corpora):
every stretch that decoded alone as a filler lasted ≤ 0.40 s with a spectral flux ≤ 1.05, while a
word group changes faster (median flux 1.0–1.7); a longer sound must be steadier still (≤ 0.7,
a held "uhhh"). 69 of 172 candidate stretches pass, and none of the fillers is lost."""


@dataclass(frozen=True)
class FillerStretch:
    """A stretch of sound [start, end) seconds and, once decoded alone, the filler it holds."""

    start: float
    end: float
    text: str = ""
    probability: float = 0.0


def sound_stretches(
    samples: np.ndarray,
    speech: Sequence[tuple[float, float]],
    sample_rate: int = 16000,
    *,
    min_gap_s: float = 0.05,
    floor_margin_db: float = 12.0,
    min_energy_db: float = -50.0,
) -> list[tuple[float, float]]:
    """Runs of sound inside each speech segment, split at quiet gaps of at least ``min_gap_s``
    (10 ms frames below max(``min_energy_db``, the clip's 10th-percentile level + margin), the
    quiet test ``speech_segments`` uses). Shorter dips (a stop consonant) do not split."""
    if samples.size == 0 or not speech:
        return []
    hop = round(0.01 * sample_rate)
    quiet = quiet_frames(frame_db(samples, hop), floor_margin_db, min_energy_db)
    gap = max(1, round(min_gap_s * 100))
    out: list[tuple[float, float]] = []
    for s, e in speech:
        f0, f1 = int(s * 100), min(len(quiet), int(np.ceil(e * 100)))
        loud = np.flatnonzero(~quiet[f0:f1])
        if loud.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(loud) > gap)
        starts = np.concatenate([[loud[0]], loud[breaks + 1]])
        ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
        out += [((a + f0) / 100, (b + f0) / 100) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    return out


def filler_candidates(
    samples: np.ndarray,
    stretches: Sequence[tuple[float, float]],
    words: Sequence[Word],
    sample_rate: int = 16000,
) -> list[tuple[float, float]]:
    """The stretches worth a decode: of a filler's length, sounding like one (``sounds_like_filler``),
    and not already holding a filler Whisper wrote. A written filler holds the filler-like stretches
    its own span mostly covers (a "the" inside an "Um..." stretched over 1.8 s is not a second
    filler: alone, a schwa sounds like "uh"), or else the one nearest its middle — Whisper's times run
    late by up to ~0.4 s on short sounds, so its "uh" may sit over the next word's sound — so a
    filler it did write is not found twice."""
    like = [
        i
        for i, (s, e) in enumerate(stretches)
        if MIN_FILLER_S <= e - s <= MAX_FILLER_S
        and sounds_like_filler(samples[round(s * sample_rate) : round(e * sample_rate)], sample_rate)
    ]
    claimed: set[int] = set()
    for w in (w for w in words if filler_marker(w.text) is not None):
        # a stretch mostly under the filler's own span: Whisper wrote ONE filler over that time
        covered = {i for i in like if _overlap(stretches[i], (w.start, w.end)) > 0.5}
        claimed |= covered
        free = [i for i in like if i not in claimed]
        if free and not covered:
            mid = (w.start + w.end) / 2
            claimed.add(min(free, key=lambda i: _distance(mid, stretches[i])))
    return [stretches[i] for i in like if i not in claimed]


def _overlap(span: tuple[float, float], other: tuple[float, float]) -> float:
    """The share of ``span`` that ``other`` covers."""
    return max(0.0, min(span[1], other[1]) - max(span[0], other[0])) / max(span[1] - span[0], 1e-9)


def _distance(t: float, span: tuple[float, float]) -> float:
    return max(span[0] - t, 0.0, t - span[1])


def spectral_flux(samples: np.ndarray, sample_rate: int = 16000) -> float:
    """Median change of the spectrum's shape between frames 20 ms apart (25 ms frames, 24
    log-spaced bands, level removed, RMS over bands): near 0.3–1 for a held vowel or nasal, higher
    across the consonant-vowel transitions of words. Infinite for a stretch under two frames."""
    win, hop = round(0.025 * sample_rate), round(0.01 * sample_rate)
    if len(samples) < win + 2 * hop:
        return float("inf")
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(samples, np.float64), win)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames * np.hanning(win), 512)) ** 2
    edges = np.unique(np.geomspace(3, 200, 25).astype(int))
    bands = np.log(np.stack([power[:, a:b].sum(axis=1) for a, b in itertools.pairwise(edges)], axis=1) + 1e-8)
    bands -= bands.mean(axis=1, keepdims=True)
    change = np.linalg.norm(bands[2:] - bands[:-2], axis=1) / np.sqrt(bands.shape[1])
    return float(np.median(change))


def sounds_like_filler(samples: np.ndarray, sample_rate: int = 16000) -> bool:
    """The screen before a decode: a short stretch (≤ ``SHORT_FILLER_S``) that is fairly steady, or
    a longer one that is very steady (see the limits' note)."""
    flux = spectral_flux(samples, sample_rate)
    short = len(samples) / sample_rate <= SHORT_FILLER_S
    return flux <= (SHORT_MAX_FLUX if short else LONG_MAX_FLUX)


def confirmed_filler(
    start: float, end: float, decoded: Sequence[Word], min_probability: float = MIN_CONFIDENCE
) -> FillerStretch | None:
    """The stretch as a filler when what was decoded from it alone is fillers only ("Uh...", or a
    barely believed lookalike such as "Come." for "um") read with at least ``min_probability``;
    None when it holds any word, or nothing, or Whisper all but guessed."""
    words = relabel_lookalike_fillers(decoded)
    if not words or any(filler_marker(w.text) is None for w in words):
        return None
    if max(w.probability for w in words) < min_probability:
        return None
    best = max(words, key=lambda w: w.probability)
    return FillerStretch(start, end, normalize_word(best.text), best.probability)


def merge_fillers(
    words: Sequence[Word], fillers: Sequence[FillerStretch], stretches: Sequence[tuple[float, float]]
) -> list[Word]:
    """The words with each confirmed filler in place (ordered by start time).

    Inside a confirmed filler's stretch nothing but the filler was heard, so a word Whisper placed
    there is corrected: a lookalike ("come", "dumb", ...) lying wholly inside it (±30 ms) is the
    filler misheard and goes; a word that starts inside and runs past the stretch is the next word started
    early and now starts at the next stretch of sound. Other words are kept as they are."""
    out = list(words)
    for f in fillers:
        kept: list[Word] = []
        for w in out:
            inside = f.start - 0.03 <= w.start and w.end <= f.end + 0.03
            if inside and normalize_word(w.text) in LOOKALIKE_FILLERS:
                continue
            if f.start <= w.start < f.end and w.end > f.end + 0.05:
                nxt = [s for s, _ in stretches if s >= f.end]
                if nxt and nxt[0] < w.end:
                    w = Word(w.text, nxt[0], w.end, w.probability)
            kept.append(w)
        kept.append(Word(f.text, f.start, f.end, f.probability))
        out = sorted(kept, key=lambda w: w.start)
    return out
