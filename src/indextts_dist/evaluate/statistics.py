"""Which ratio of sums each statistic is, its bootstrap interval, and the transfer ratio.

A *unit* is one measured thing — one (text, seed) generation, or one training clip — holding the
counts of `code_measures` / `audio_measures` (plus `similarity` for audio). A statistic is
`scale * sum(numerator) / sum(denominator)` over units, so long texts weigh as much as their
length, as they do when listened to.

Intervals: percentile bootstrap over units (texts × seeds), resampled with replacement. The
adapted and base sides are paired — resampled with the SAME unit indices, since unit i of both is
the same text and seed — so the interval of their difference, and of the transfer ratio
`(adapted − base) / (data − base)`, reflects the texts and seeds, not two independent draws. The
data's value is the training clips' own ratio of sums (a point value from preprocess).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AUDIO_STATISTICS",
    "CODE_STATISTICS",
    "Statistic",
    "bootstrap",
    "summarize",
    "transfer_ratio",
    "value",
]

Unit = Mapping[str, float]


@dataclass(frozen=True)
class Statistic:
    key: str
    label: str
    numerator: str
    denominator: str
    scale: float = 1.0
    digits: int = 3


CODE_STATISTICS: tuple[Statistic, ...] = (
    Statistic(
        "pauses_per_100_tokens", "pauses ≥0.3 s / 100 text tokens", "pause_runs", "text_tokens", 100, 2
    ),
    Statistic(
        "long_pauses_per_100_tokens",
        "pauses ≥0.7 s / 100 text tokens",
        "long_pause_runs",
        "text_tokens",
        100,
        2,
    ),
    Statistic("codes_per_text_token", "codes per text token", "codes", "text_tokens"),
    Statistic("pause_code_share", "pause-code share", "pause_codes", "codes"),
    Statistic("stop_rate", "stop rate", "stopped", "units"),
    Statistic("repeated_ngram_share", "repeated code 4-grams", "repeated_ngrams", "ngrams"),
)
AUDIO_STATISTICS: tuple[Statistic, ...] = (
    Statistic("pauses_per_100_words", "pauses / 100 words", "pauses", "words", 100, 2),
    Statistic("long_pauses_per_100_words", "long pauses / 100 words", "long_pauses", "words", 100, 2),
    Statistic("fillers_per_100_words", "fillers / 100 words", "fillers", "words", 100, 2),
    Statistic("repetitions_per_100_words", "repetitions / 100 words", "repetitions", "words", 100, 2),
    Statistic("words_per_minute", "words per minute", "words", "speech_s", 60, 1),
    Statistic("wer", "WER of the intended text", "word_errors", "reference_words"),
    Statistic("speaker_similarity", "speaker similarity (CAMPPlus cos)", "similarity", "clips"),
)


def value(units: Sequence[Unit], stat: Statistic) -> float | None:
    """The ratio of sums, or None when no unit has the counts or the denominator is 0."""
    have = [u for u in units if stat.numerator in u and stat.denominator in u]
    den = sum(float(u[stat.denominator]) for u in have)
    if not have or den == 0:
        return None
    return stat.scale * sum(float(u[stat.numerator]) for u in have) / den


def _columns(units: Sequence[Unit], stat: Statistic) -> tuple[np.ndarray, np.ndarray]:
    num = np.array([float(u.get(stat.numerator, math.nan)) for u in units])
    den = np.array([float(u.get(stat.denominator, math.nan)) for u in units])
    return num, den


def _resampled(num: np.ndarray, den: np.ndarray, idx: np.ndarray, scale: float) -> np.ndarray:
    """The statistic on each resample (rows of `idx`); NaN where a resample's denominator is 0."""
    ok = ~(np.isnan(num) | np.isnan(den))
    n, d = np.where(ok, num, 0.0)[idx].sum(axis=1), np.where(ok, den, 0.0)[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, scale * n / np.where(d > 0, d, 1), np.nan)


def bootstrap(
    units: Sequence[Unit], stat: Statistic, *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile interval of the statistic over units resampled with replacement."""
    if value(units, stat) is None:
        return None
    idx = np.random.default_rng(seed).integers(0, len(units), size=(resamples, len(units)))
    draws = _resampled(*_columns(units, stat), idx, stat.scale)
    return _interval(draws, level)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float] | None:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def transfer_ratio(adapted: float | None, base: float | None, data: float | None) -> float | None:
    """(adapted − base) / (data − base): 0 = the adapter changed nothing toward the data, 1 = it
    reached the data's value, None when undefined (a missing side, or data == base)."""
    if adapted is None or base is None or data is None or data == base:
        return None
    return (adapted - base) / (data - base)


def summarize(
    adapted: Sequence[Unit],
    base: Sequence[Unit],
    data: float | None,
    stat: Statistic,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """One row: each side's value and interval, and the transfer ratio; its interval is paired,
    so it is given only when `adapted` and `base` list the same units (same texts and seeds in the
    same order: equal lengths) — wavs of the two sides made elsewhere may not pair up."""
    a, b = value(adapted, stat), value(base, stat)
    row: dict[str, object] = {
        "label": stat.label,
        "data": data,
        "base": b,
        "adapted": a,
        "base_ci": bootstrap(base, stat, resamples=resamples, seed=seed) if base else None,
        "adapted_ci": bootstrap(adapted, stat, resamples=resamples, seed=seed) if adapted else None,
        "transfer": transfer_ratio(a, b, data),
        "transfer_ci": None,
    }
    if row["transfer"] is not None and data is not None and len(adapted) == len(base):
        idx = np.random.default_rng(seed).integers(0, len(adapted), size=(resamples, len(adapted)))
        da = _resampled(*_columns(adapted, stat), idx, stat.scale)
        db = _resampled(*_columns(base, stat), idx, stat.scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            row["transfer_ci"] = _interval((da - db) / (data - db), 0.95)
    return row
