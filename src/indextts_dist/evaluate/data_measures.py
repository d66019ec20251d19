"""The training data measured by the evaluation instrument: what preprocess records for `evaluate`.

Rank 0 runs this once every shard is written, on each accepted clip's codes (read back from the
shards), its record (the plain-text token count and, for ASR clips, the transcript's counts) and its
CAMPPlus style. The result goes into `dataset_info.json` → `evaluation`, and with it into every
package made from the dataset, so `evaluate` puts the data's own value beside each statistic.

The dataset's *pause codes* are chosen here too: codes that make up the measured silences (at
least `min_share` of all codes inside them) AND are at least `min_enrichment` times more frequent
inside silences than overall. Without the second condition a code common everywhere (a random
tiny codec maps much of speech to a few codes) would count as a pause code and every long word as
a pause.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..pattern_markers import LONG_PAUSE_S, PAUSE_S
from .code_measures import CODE_RATE, NGRAM, code_measures
from .statistics import AUDIO_STATISTICS, CODE_STATISTICS, bootstrap, value

__all__ = ["ClipRecord", "choose_pause_codes", "cosine", "dataset_evaluation", "instrument"]


@dataclass(frozen=True)
class ClipRecord:
    meta: Mapping[str, Any]
    codes: Sequence[int]
    style: np.ndarray | None = None


def instrument(code_rate: float = CODE_RATE) -> dict[str, float]:
    """The settings every side is measured with (recorded so a reader can tell they matched)."""
    return {"pause_s": PAUSE_S, "long_pause_s": LONG_PAUSE_S, "code_rate": code_rate, "ngram": NGRAM}


def choose_pause_codes(
    in_pauses: Mapping[str, int] | Counter[str],
    overall: Mapping[int, int] | Counter[int],
    *,
    min_share: float = 0.01,
    min_enrichment: float = 2.0,
    limit: int = 32,
) -> dict[str, int]:
    """{code: count inside measured silences} for the codes that ARE silence (see module doc),
    most frequent first."""
    pause_total = sum(in_pauses.values())
    total = sum(overall.values())
    if not pause_total or not total:
        return {}
    chosen = {}
    for code, n in sorted(in_pauses.items(), key=lambda kv: (-kv[1], int(kv[0]))):
        share_in_pauses = n / pause_total
        share_overall = overall.get(int(code), 0) / total
        if share_in_pauses >= min_share and share_in_pauses >= min_enrichment * share_overall:
            chosen[str(code)] = int(n)
        if len(chosen) == limit:
            break
    return chosen


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den else 0.0


def _rows(units: list[dict[str, float]], stats) -> dict[str, dict[str, Any]]:
    return {
        s.key: {"value": value(units, s), "ci": bootstrap(units, s) if units else None}
        for s in stats
        if value(units, s) is not None
    }


def _plain_len(clip: ClipRecord) -> int:
    return int(clip.meta.get("plain_text_len", clip.meta["text_len"]))


def dataset_evaluation(
    clips: Sequence[ClipRecord], pause_codes: set[int], code_rate: float = CODE_RATE
) -> dict[str, Any]:
    """The data's value (and bootstrap interval over clips) of every statistic it has; `code_rate`:
    the codec's codes per second (50 in v2, 25 in 2.5)."""
    code_units = [
        code_measures(c.codes, _plain_len(c), pause_codes or None, code_rate=code_rate) for c in clips
    ]
    styles = [c.style for c in clips if c.style is not None]
    mean_style = np.mean(np.stack(styles), axis=0) if styles else None
    audio_units = []
    for c in clips:
        counts = dict(c.meta.get("audio_measures") or {})
        if mean_style is not None and c.style is not None:
            counts.setdefault("clips", 1)
            counts["similarity"] = cosine(c.style, mean_style)
        if counts:
            audio_units.append(counts)
    return {
        "instrument": instrument(code_rate),
        "pause_codes": sorted(pause_codes),
        "clips": len(clips),
        "audio_clips": sum(1 for c in clips if c.meta.get("audio_measures")),
        "code": _rows(code_units, CODE_STATISTICS),
        "audio": _rows(audio_units, AUDIO_STATISTICS),
    }
