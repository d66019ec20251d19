"""Frame levels of a clip: the one quiet test that speech timing and the filler detector share."""

from __future__ import annotations

import numpy as np

__all__ = ["frame_db", "quiet_frames"]


def frame_db(samples: np.ndarray, hop: int) -> np.ndarray:
    """Mean power per ``hop``-sample frame in dB (the last frame zero-padded)."""
    n = -(-len(samples) // hop)
    padded = np.zeros(n * hop, np.float64)
    padded[: len(samples)] = samples
    return 10.0 * np.log10((padded.reshape(n, hop) ** 2).mean(axis=1) + 1e-12)


def quiet_frames(db: np.ndarray, floor_margin_db: float = 12.0, min_energy_db: float = -50.0) -> np.ndarray:
    """Frames below max(``min_energy_db``, the clip's 10th-percentile level + ``floor_margin_db``):
    silence relative to the clip's own noise floor, so a noisy recording is judged on its own."""
    return db < max(min_energy_db, float(np.percentile(db, 10)) + floor_margin_db)
