"""Synthetic test corpora with known speaking patterns (espeak-ng; flite and festival in `synth`;
fluent and hesitant speakers in `speakers`), and the bad-input zoo.

The public names are `espeak.__all__` and `synth.__all__`, imported lazily on first use, so that
``python -m indextts_dist.corpus.espeak`` runs that module only once.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (".espeak", ".synth", ".speakers")


def __getattr__(name: str) -> Any:
    for mod_name in _MODULES:
        mod = importlib.import_module(mod_name, __name__)
        if name in mod.__all__:
            return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
