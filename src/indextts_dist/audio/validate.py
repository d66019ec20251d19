"""Validate a decoded clip and trim its silent ends.

Order matters: silence and clipping are judged on the whole decoded clip (a clip that is all
silence has no "ends" to trim), the duration bounds on the trimmed audio (what training will see).
Silence is energy-based on 10 ms frames against an absolute dBFS threshold, so it is cheap,
deterministic and needs no model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .decode import ClipRejected, load_audio

__all__ = ["PreparedClip", "frame_db", "prepare_clip", "trim_bounds"]

FRAME_S = 0.010
MARGIN_S = 0.050
CLIP_LEVEL = 0.999


@dataclass
class PreparedClip:
    """A decoded, validated, trimmed clip. ``trimmed_start_s``/``trimmed_end_s`` are the seconds of
    silence REMOVED at the start and at the end; ``duration_s`` is what remains."""

    samples: np.ndarray
    sample_rate: int
    duration_s: float
    trimmed_start_s: float
    trimmed_end_s: float


def frame_db(samples: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of consecutive frames in dBFS (the last partial frame included)."""
    hop = max(1, round(frame_s * sample_rate))
    n = -(-len(samples) // hop)
    padded = np.zeros(n * hop, np.float64)
    padded[: len(samples)] = samples
    power = (padded.reshape(n, hop) ** 2).mean(axis=1)
    return 10.0 * np.log10(power + 1e-12)


def trim_bounds(
    samples: np.ndarray,
    sample_rate: int,
    threshold_db: float = -40.0,
    margin_s: float = MARGIN_S,
) -> tuple[int, int] | None:
    """[start, end) sample range from the first to the last frame above ``threshold_db``, widened
    by ``margin_s`` each side (soft onsets and decays sit just under the threshold); None when no
    frame is above it."""
    hop = max(1, round(FRAME_S * sample_rate))
    loud = np.flatnonzero(frame_db(samples, sample_rate) >= threshold_db)
    if loud.size == 0:
        return None
    margin = round(margin_s * sample_rate)
    start = max(0, int(loud[0]) * hop - margin)
    end = min(len(samples), (int(loud[-1]) + 1) * hop + margin)
    return start, end


def prepare_clip(
    path: str | bytes | os.PathLike,
    *,
    min_seconds: float = 1.0,
    max_seconds: float = 15.0,
    sample_rate: int = 16000,
    silence_threshold_db: float = -40.0,
    clip_fraction: float = 0.01,
) -> PreparedClip:
    """Decode → reject ``silent`` / ``clipped`` → trim silent ends → reject ``too_short`` / ``too_long``.

    ``clipped``: more than ``clip_fraction`` of the samples at full scale (|x| ≥ 0.999). Decode
    failures raise ``ClipRejected`` from ``load_audio``.
    """
    samples = load_audio(path, sample_rate)
    bounds = trim_bounds(samples, sample_rate, silence_threshold_db)
    if bounds is None:
        peak = float(frame_db(samples, sample_rate).max())
        raise ClipRejected(
            path, "silent", f"loudest 10 ms frame {peak:.1f} dBFS < {silence_threshold_db} dBFS"
        )
    clipped = float(np.mean(np.abs(samples) >= CLIP_LEVEL))
    if clipped > clip_fraction:
        raise ClipRejected(path, "clipped", f"{clipped:.1%} of samples at full scale > {clip_fraction:.1%}")
    start, end = bounds
    kept = samples[start:end]
    duration = len(kept) / sample_rate
    if duration < min_seconds:
        raise ClipRejected(path, "too_short", f"{duration:.2f} s after trimming < {min_seconds} s")
    if duration > max_seconds:
        raise ClipRejected(path, "too_long", f"{duration:.2f} s after trimming > {max_seconds} s")
    return PreparedClip(
        samples=np.ascontiguousarray(kept, dtype=np.float32),
        sample_rate=sample_rate,
        duration_s=duration,
        trimmed_start_s=start / sample_rate,
        trimmed_end_s=(len(samples) - end) / sample_rate,
    )
