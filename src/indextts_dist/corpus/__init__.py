"""Synthetic test corpora with known speaking patterns (espeak-ng), and the bad-input zoo.

Names are imported lazily so that ``python -m indextts_dist.corpus.espeak`` runs the module once.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BREAKS_MS",
    "FILLERS",
    "VOICES",
    "CorpusClip",
    "PauseTruth",
    "load_corpus",
    "make_bad_inputs",
    "synthesize_corpus",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".espeak", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
