"""Which clips exist, which are duplicates, and which rank handles which (no coordination needed).

Every rank lists the same folder the same way (sorted by the file name's bytes), hashes every file,
and deals clips by index, `i % world == rank`. Hashing every file on every rank costs one read of
small clips; in exchange duplicates are found globally without any communication: the first copy
in sorted order is kept, the others are rejected naming it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingFileError

__all__ = ["AUDIO_EXTENSIONS", "ListedClip", "deal", "list_clips"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".wma")


@dataclass(frozen=True)
class ListedClip:
    index: int
    path: Path
    relative: str
    """Path relative to the audio folder; non-UTF-8 bytes kept as surrogate escapes."""
    sha256: str | None
    """File content hash; None when the file could not be read."""
    reject: tuple[str, str] | None = None
    """(reason, detail) when the clip is rejected before any processing."""


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_clips(audio_dir: str | Path) -> list[ListedClip]:
    """Every audio file below `audio_dir` (recursively), sorted, hashed, with early rejections."""
    root = Path(audio_dir)
    if not root.is_dir():
        raise MissingFileError(f"{root}: audio folder not found")
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                path = Path(dirpath) / name
                found.append((os.fsencode(path.relative_to(root)), path))
    found.sort()
    clips, first_by_hash = [], {}
    for index, (_, path) in enumerate(found):
        relative = str(path.relative_to(root))
        digest = _sha256(path)
        reject = None
        if not _is_utf8(relative):
            reject = ("non_utf8_name", "the file name is not valid UTF-8; rename it")
        elif digest is None:
            reject = ("unreadable", "cannot read the file")
        elif digest in first_by_hash:
            reject = ("duplicate", f"same content as {first_by_hash[digest]}")
        else:
            first_by_hash[digest] = relative
        clips.append(ListedClip(index, path, relative, digest, reject))
    return clips


def deal(clips: list[ListedClip], rank: int, world: int, group: int = 1) -> list[ListedClip]:
    """This rank's share: clip i goes to rank (i // group) % world. ``group > 1`` keeps runs of
    consecutive clips together (``--asr-pack`` transcribes each run as one packed group, so its
    transcripts do not depend on the number of processes)."""
    return [c for c in clips if (c.index // group) % world == rank]
