"""Waveform -> response bytes in the formats the OpenAI speech API names (wav, flac, pcm, mp3).

The second stage makes float32 audio at 22.05 kHz, mono. Every format is written by libsndfile
(`soundfile`), raw PCM included (`pcm`: 16-bit little-endian samples, no header, as OpenAI's `pcm`
but at 22.05 kHz), so every format rounds samples alike. The one thing written here is the header
of a WAV stream of unknown length (the 44-byte RIFF header with the sizes set to 0xFFFFFFFF, which
players read as "until the end").
mp3 is offered only when this libsndfile has an MPEG encoder (1.1+ built with LAME).
A stream sends one chunk per text segment, so only `wav` (open-ended header, then samples) and `pcm`
stream: `flac` has one header for the whole file, and mp3 files encoded per segment do not simply
concatenate (each carries a Xing header with its own length; libsndfile's decoder stops after the
first).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ..speech.second_stage import OUTPUT_SAMPLE_RATE

__all__ = ["FORMATS", "STREAMABLE", "AudioFormat", "available_formats", "encode", "stream_header"]


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    sndfile: tuple[str, str]
    """(format, subtype) for soundfile."""


FORMATS = {
    "wav": AudioFormat("wav", "audio/wav", ("WAV", "PCM_16")),
    "flac": AudioFormat("flac", "audio/flac", ("FLAC", "PCM_16")),
    "pcm": AudioFormat("pcm", "audio/pcm", ("RAW", "PCM_16")),
    "mp3": AudioFormat("mp3", "audio/mpeg", ("MP3", "MPEG_LAYER_III")),
}
STREAMABLE = frozenset({"wav", "pcm"})


def available_formats() -> dict[str, AudioFormat]:
    """The formats this machine can write (mp3 needs libsndfile's MPEG encoder)."""
    have = sf.available_formats()
    return {k: f for k, f in FORMATS.items() if f.sndfile[0] in have}


def encode(wav: np.ndarray, fmt: str, rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """A whole file (or, for `pcm`, the raw samples) of mono float32 `wav`."""
    spec = FORMATS[fmt]
    buf = io.BytesIO()
    endian = "LITTLE" if spec.sndfile[0] == "RAW" else "FILE"
    sf.write(buf, wav, rate, format=spec.sndfile[0], subtype=spec.sndfile[1], endian=endian)
    return buf.getvalue()


def stream_header(fmt: str, rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """What a stream sends before the first segment: a WAV header of unknown length, else nothing."""
    if fmt != "wav":
        return b""
    unknown, channels, width = 0xFFFFFFFF, 1, 2
    riff = struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE")
    pcm = (1, channels, rate, rate * channels * width, channels * width, 8 * width)
    return riff + struct.pack("<4sIHHIIHH", b"fmt ", 16, *pcm) + struct.pack("<4sI", b"data", unknown)


def stream_chunk(wav: np.ndarray, fmt: str, rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """One segment of a stream: its raw samples (for wav, after `stream_header`)."""
    if fmt not in STREAMABLE:
        raise ValueError(f"{fmt} cannot be streamed")
    return encode(wav, "pcm", rate)
