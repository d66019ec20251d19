"""Decode any common audio file to mono float32 at one sample rate, or say exactly why not.

The file is read into memory by Python first, then handed to the decoders as a file object: that
keeps non-UTF-8 file names working (libsndfile and FFmpeg take the name as text), and separates
"cannot read the file" (``unreadable``) from "read it, but it is not audio" (``undecodable``).
wav/flac/ogg go through libsndfile (exact float samples, resampled with soxr); everything else, and
whatever libsndfile refuses, through FFmpeg (PyAV, as bundled with faster-whisper).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = ["ClipRejected", "display_path", "load_audio"]


def display_path(path: str | bytes | os.PathLike) -> str:
    """A printable one-line name for any path: undecodable bytes become ``\\xff`` escapes, control
    characters (a newline in a file name) are escaped too, so log lines and JSON stay one line."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", errors="backslashreplace")
    if any(ch < " " or ch == "\x7f" for ch in text):
        text = "".join(ch if " " <= ch != "\x7f" else repr(ch)[1:-1] for ch in text)
    return text


class ClipRejected(ValueError):
    """A clip the pipeline must skip. ``reason`` is a short snake_case code for rejects.jsonl
    (``empty_file``, ``undecodable``, ``unreadable``, ``too_short``, ``too_long``, ``silent``,
    ``clipped``); ``str(exc)`` is one line naming the file, the reason and the detail."""

    def __init__(self, path: str | bytes | os.PathLike, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = " ".join(str(detail).split())
        msg = f"{display_path(path)}: {reason}"
        if self.detail:
            msg += f" ({self.detail})"
        super().__init__(msg)

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.reason, self.detail))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClipRejected(path, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from exc


def _to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1) if data.ndim == 2 else data


def _decode_soundfile(data: bytes, sample_rate: int) -> np.ndarray | None:
    """libsndfile: None when it does not know the format (FFmpeg gets a try)."""
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    audio = _to_mono(audio)
    if sr != sample_rate and audio.size:
        audio = soxr.resample(audio, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _decode_ffmpeg(data: bytes, sample_rate: int) -> np.ndarray:
    from faster_whisper import decode_audio  # imports PyAV; only needed for mp3/m4a/odd files

    return np.asarray(decode_audio(io.BytesIO(data), sampling_rate=sample_rate), dtype=np.float32)


def load_audio(path: str | bytes | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` (wav, flac, mp3, ogg, m4a, ...) to mono float32 at ``sample_rate``.

    Raises ``ClipRejected`` with reason ``unreadable`` (cannot open or read), ``empty_file`` (zero
    bytes) or ``undecodable`` (no decoder finds audio in it).
    """
    p = Path(os.fsdecode(path))
    data = _read_bytes(p)
    if not data:
        raise ClipRejected(p, "empty_file", "0 bytes")
    audio = _decode_soundfile(data, sample_rate)
    if audio is None:
        try:
            audio = _decode_ffmpeg(data, sample_rate)
        except Exception as exc:  # FFmpeg fails in many ways on garbage (InvalidDataError, IndexError, ...)
            raise ClipRejected(p, "undecodable", f"{type(exc).__name__}: {exc}") from exc
    if audio.size == 0:
        raise ClipRejected(p, "undecodable", "no audio samples")
    if not np.isfinite(audio).all():
        raise ClipRejected(p, "undecodable", "non-finite samples")
    return audio
