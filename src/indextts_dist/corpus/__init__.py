"""Synthetic test corpora with known speaking patterns (espeak-ng), and the bad-input zoo.

The public names are `espeak.__all__`, imported lazily on first use, so that
``python -m indextts_dist.corpus.espeak`` runs that module only once.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    espeak = importlib.import_module(".espeak", __name__)
    if name in espeak.__all__:
        return getattr(espeak, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
