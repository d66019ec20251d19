"""Audio space: a folder of wavs measured as preprocess measured the training clips.

Each wav is decoded, validated and trimmed by `audio.prepare_clip` (preprocess's own first step),
transcribed by a `Transcriber` (the ASR preprocess used, recorded in the dataset's evaluation
record) and counted by `audio_measures.transcript_measures`; its CAMPPlus style (the second
stage's `clip_style`, the function preprocess summed the speaker's style with) is compared with
the speaker's mean style by cosine.

The intended text of `NAME.wav` (for WER) is `NAME.txt`, else the `text` of `NAME.json` (what
`infer` writes beside its wavs), else the text at index `NNN` when the name ends in a number and
texts were given; otherwise the clip has no WER.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..audio import ClipRejected, prepare_clip
from ..errors import InputError, MissingFileError
from .audio_measures import intended_words, transcript_measures
from .data_measures import cosine

__all__ = ["AudioInstrument", "intended_text", "list_wavs"]

_INDEX = re.compile(r"(\d+)$")


def list_wavs(folder: Path) -> list[Path]:
    """The folder's `.wav` files, sorted by name (a missing or empty folder is a user error)."""
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such folder of wavs")
    wavs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not wavs:
        raise InputError(f"{folder}: no .wav files in the folder")
    return wavs


def intended_text(wav: Path, texts: Sequence[str] = ()) -> str | None:
    txt, record = wav.with_suffix(".txt"), wav.with_suffix(".json")
    if txt.is_file():
        return txt.read_text(encoding="utf-8").strip() or None
    if record.is_file():
        try:
            text = json.loads(record.read_text(encoding="utf-8")).get("text")
        except (ValueError, AttributeError):
            text = None
        if isinstance(text, str) and text.strip():
            return text.strip()
    match = _INDEX.search(wav.stem)
    if match and texts and int(match.group(1)) < len(texts):
        return texts[int(match.group(1))]
    return None


class AudioInstrument:
    """`transcriber`: a `transcribe.Transcriber`; `style_of(path)`: a clip's CAMPPlus style (None:
    no speaker similarity); `speaker_style`: the speaker's mean style it is compared with."""

    def __init__(
        self,
        transcriber,
        style_of: Callable[[Path], np.ndarray] | None = None,
        speaker_style: np.ndarray | None = None,
    ) -> None:
        self.transcriber = transcriber
        self.style_of = style_of if speaker_style is not None else None
        self.speaker_style = speaker_style

    def measure(self, wav: Path, intended: str | None) -> dict[str, float]:
        """One clip's counts; a clip preprocess would reject (silent, too short) counts as a clip
        with no words, so a model that says nothing is not quietly left out."""
        try:
            clip = prepare_clip(wav, min_seconds=0.0, max_seconds=3600.0)
        except ClipRejected as exc:
            counts: dict[str, float] = {"clips": 1, "words": 0, "speech_s": 0.0, "rejected": 1}
            if intended is not None:
                counts["word_errors"] = counts["reference_words"] = len(intended_words(intended))
            counts["reason"] = exc.reason  # type: ignore[assignment]
            return counts
        counts = transcript_measures(self.transcriber.transcribe(clip.samples), intended)
        if self.style_of is not None and self.speaker_style is not None:
            with contextlib.suppress(ClipRejected):  # too short for CAMPPlus: no similarity
                counts["similarity"] = cosine(self.style_of(wav), self.speaker_style)
        return counts

    def measure_folder(self, folder: Path, texts: Sequence[str] = ()) -> list[dict[str, float]]:
        out = []
        for wav in list_wavs(folder):
            counts = self.measure(wav, intended_text(wav, texts))
            counts["file"] = wav.name  # type: ignore[assignment]
            out.append(counts)
        return out
