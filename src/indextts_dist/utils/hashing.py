"""sha256 of a file, streamed: the one way a file is fingerprinted in this project.

It lives below every stage (no torch, no model code) so that the package format can check the
sha256 of its files without importing the model that `model.base_fingerprint` builds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

_BLOCK = 1 << 24
"""16 MiB reads: a multi-GB `gpt.pth` is hashed without holding it in memory."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
