"""Audio in: decode any common format to mono 16 kHz float32, validate, trim silent ends.

Every failure is a ``ClipRejected`` with a short ``reason`` code for ``rejects.jsonl`` and a
one-line message naming the file.
"""

from .decode import ClipRejected, display_path, load_audio
from .validate import PreparedClip, frame_db, prepare_clip, trim_bounds

__all__ = [
    "ClipRejected",
    "PreparedClip",
    "display_path",
    "frame_db",
    "load_audio",
    "prepare_clip",
    "trim_bounds",
]
