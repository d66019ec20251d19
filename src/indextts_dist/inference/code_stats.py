"""Token statistics of generated codes, for comparing the base GPT with the adapted one.

Patterns show up as *where time goes*: a speaker with many pauses and fillers gets more codes per
text token, and more of them are the codes that the training data's measured pauses map to
(`dataset_info.json` → `markers.pause_codes`). A stop rate below the base's means the adapter makes
the model run on to the cap, the first sign of a broken adapter or conditioning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .results import Synthesis

__all__ = ["NOT_AVAILABLE", "STAT_KEYS", "code_statistics", "pause_code_set", "stat_deltas"]

NOT_AVAILABLE = "n/a"
STAT_KEYS = ("codes_per_text_token", "stop_rate", "pause_code_share")
"""The compared numbers, in table order."""


def pause_code_set(dataset_info: Mapping[str, Any] | None) -> set[int] | None:
    """The training data's pause codes, or None when the dataset recorded none (no ASR timings)."""
    markers = (dataset_info or {}).get("markers") or {}
    codes = markers.get("pause_codes") if isinstance(markers, Mapping) else None
    if not codes:
        return None
    try:
        return {int(code) for code in codes}
    except (TypeError, ValueError):
        return None


def code_statistics(results: Sequence[Synthesis], pause_codes: set[int] | None) -> dict[str, Any]:
    """Totals over all texts (a ratio of sums: long texts weigh more, as they do in speech). A text
    counts as stopped when every one of its segments did. `per_text` carries the codes themselves
    (`semantic_codes`), so a reader can check every number and compare them with any other door's."""
    text_tokens = sum(len(r.text_ids) for r in results)
    codes = [int(c) for r in results for c in r.codes.tolist()]
    if pause_codes is None:
        pause_share: float | str = NOT_AVAILABLE
    else:
        pause_share = sum(c in pause_codes for c in codes) / len(codes) if codes else 0.0
    return {
        "texts": len(results),
        "text_tokens": text_tokens,
        "codes": len(codes),
        "codes_per_text_token": len(codes) / text_tokens if text_tokens else 0.0,
        "stop_rate": sum(r.all_stopped for r in results) / len(results) if results else 0.0,
        "pause_code_share": pause_share,
        "per_text": [
            {
                "text": r.text,
                "text_tokens": len(r.text_ids),
                "segments": len(r.segments),
                "codes": int(r.codes.numel()),
                "stopped": r.all_stopped,
                "semantic_codes": [int(c) for c in r.codes.tolist()],
            }
            for r in results
        ],
    }


def stat_deltas(base: Mapping[str, Any], adapted: Mapping[str, Any]) -> dict[str, float | str]:
    """adapted − base for each compared number; "n/a" where either side has none."""
    deltas: dict[str, float | str] = {}
    for key in STAT_KEYS:
        a, b = adapted.get(key), base.get(key)
        ok = isinstance(a, int | float) and isinstance(b, int | float)
        deltas[key] = float(a) - float(b) if ok else NOT_AVAILABLE  # type: ignore[arg-type]
    return deltas
