"""Corpora with KNOWN speaking patterns from several synthesizers (espeak-ng, flite, festival).

Unlike ``espeak.synthesize_corpus`` (SSML breaks inside one utterance), a clip here is built by
concatenation: the script is cut into segments at its events, each segment is synthesized on its
own, resampled to 16 kHz and trimmed of the synthesizer's own leading/trailing silence, and the
segments are joined with silences of known length (numpy). So the ground truth is exact on every
synthesizer, whatever its prosody:

- a pause is digital silence of 0.4-0.55 s (``[PAUSE]``) or 0.9-1.0 s (``[LONG]``) between two
  segments, after a known number of words (clear of the 0.3 / 0.7 s thresholds);
- a filler ("uh", "um", "hmm") is a segment of its own, joined by short gaps (well under 0.3 s);
- a repetition ("I I think", "the the") is written into a segment's text.

A backend is a small object with ``name``, ``voices`` and ``render(text, voice, wav)``; ``BACKENDS``
holds the three. ``tests/test_transcribe_synths.py`` and ``benchmarks/markers.py`` use them.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from ..pattern_markers import HMM, UH, UM, pause_marker
from ..utils.atomic import atomic_write_text
from .espeak import _CLAUSES, CorpusClip, PauseTruth, place_events

__all__ = [
    "BACKENDS",
    "PAUSES_S",
    "SYNTH_FILLERS",
    "Backend",
    "Event",
    "available_backends",
    "build_clip",
    "synth_corpus",
]

RATE = 16000
PAUSES_S: tuple[float, ...] = (0.4, 0.5, 0.55, 0.9, 1.0)
"""Inserted silences: clear of the [PAUSE] (0.3 s) and [LONG] (0.7 s) thresholds."""
SYNTH_FILLERS: dict[str, str] = {"uh": UH, "um": UM, "hmm": HMM}
"""Filler as written for the synthesizers → its marker."""
_JOIN_S = (0.06, 0.12)
"""Gap range around a filler segment: a breath, never a pause."""


class Backend(Protocol):
    name: str
    voices: tuple[str, ...]
    tool: str

    def render(self, text: str, voice: str, wav: Path) -> None: ...


@dataclass(frozen=True)
class _Espeak:
    name: str = "espeak-ng"
    voices: tuple[str, ...] = ("en-us", "en-us+m3", "en-us+f1")
    tool: str = "espeak-ng"

    def render(self, text: str, voice: str, wav: Path) -> None:
        subprocess.run(
            [self.tool, "-v", voice, "-s", "165", "-w", str(wav), text], check=True, capture_output=True
        )


@dataclass(frozen=True)
class _Flite:
    name: str = "flite"
    voices: tuple[str, ...] = ("kal", "awb", "rms", "slt")
    tool: str = "flite"

    def render(self, text: str, voice: str, wav: Path) -> None:
        subprocess.run(
            [self.tool, "-voice", voice, "-t", text, "-o", str(wav)], check=True, capture_output=True
        )


@dataclass(frozen=True)
class _Festival:
    name: str = "festival"
    voices: tuple[str, ...] = ("cmu_us_slt_arctic_hts",)
    tool: str = "text2wave"

    def render(self, text: str, voice: str, wav: Path) -> None:
        cmd = [self.tool, "-eval", f"(voice_{voice})", "-o", str(wav)]
        subprocess.run(cmd, input=text.encode(), check=True, capture_output=True)


BACKENDS: dict[str, Backend] = {b.name: b for b in (_Espeak(), _Flite(), _Festival())}


def available_backends() -> list[str]:
    """Names of the backends whose program is installed (``make system-deps`` installs all)."""
    return [n for n, b in BACKENDS.items() if shutil.which(b.tool)]


@dataclass(frozen=True)
class Event:
    """``kind``: "words" (``text`` spoken), "filler" (``text`` one of SYNTH_FILLERS) or "pause"
    (``seconds`` of silence)."""

    kind: str
    text: str = ""
    seconds: float = 0.0


def _resample(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == RATE:
        return x.astype(np.float32)
    n = round(len(x) * RATE / sr)
    t = np.arange(n) * (sr / RATE)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def _trim(x: np.ndarray, floor_db: float = -35.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``floor_db`` below the segment's peak (10 ms frames)."""
    hop = RATE // 100
    n = len(x) // hop
    if n == 0:
        return x
    db = 10 * np.log10((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() + floor_db)
    if loud.size == 0:
        return x[:0]
    return x[loud[0] * hop : (loud[-1] + 1) * hop]


def _segment(backend: Backend, text: str, voice: str, tmp: Path) -> np.ndarray:
    wav = tmp / "seg.wav"
    backend.render(text, voice, wav)
    data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return _trim(_resample(data.mean(axis=1), sr))


def build_clip(
    backend: Backend, voice: str, events: Sequence[Event], path: Path, rng: random.Random
) -> CorpusClip:
    """Synthesize ``events`` in order into the 16 kHz wav ``path`` and return its ground truth."""
    parts: list[np.ndarray] = []
    words: list[str] = []
    expected: list[str] = []
    plain: list[str] = []
    fillers: list[tuple[int, str]] = []
    pauses: list[PauseTruth] = []
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        prev = None
        for ev in events:
            if ev.kind == "pause":
                marker = pause_marker(ev.seconds)
                assert marker is not None and prev is not None
                parts.append(np.zeros(round(ev.seconds * RATE), np.float32))
                pauses.append(PauseTruth(boundary=len(words), duration_s=ev.seconds, marker=marker))
                expected.append(marker)
            else:
                if prev is not None and prev.kind != "pause":  # a breath between two spoken parts
                    parts.append(np.zeros(round(rng.uniform(*_JOIN_S) * RATE), np.float32))
                parts.append(_segment(backend, ev.text, voice, Path(tmp)))
                plain.append(ev.text)
                if ev.kind == "filler":
                    fillers.append((len(words), SYNTH_FILLERS[ev.text]))
                    expected.append(SYNTH_FILLERS[ev.text])
                else:
                    toks = ev.text.split()
                    words.extend(t.strip(",.!?").lower() for t in toks)
                    expected.extend(toks)
            prev = ev
    audio = np.concatenate([np.zeros(RATE // 5, np.float32), *parts, np.zeros(RATE // 5, np.float32)])
    audio *= 0.7 / max(1e-6, float(np.abs(audio).max()))
    sf.write(str(path), audio, RATE, subtype="PCM_16")
    reps = sum(1 for a, b in itertools.pairwise(words) if a == b)
    return CorpusClip(
        path=path,
        script=" | ".join(e.text or f"<{e.seconds}>" for e in events),
        text=" ".join(plain),
        expected=" ".join(expected),
        words=words,
        fillers=fillers,
        pauses=pauses,
        voice=f"{backend.name}:{voice}",
        speed=0,
        format="wav",
        duration_s=round(len(audio) / RATE, 4),
        repetitions=reps,
    )


def _random_events(rng: random.Random) -> list[Event]:
    """A clause with 1-2 pauses, 0-2 fillers (one may lead) and maybe one repetition."""
    words = rng.choice(_CLAUSES).split()
    optional = ["pause", "filler", "repeat", "pause+filler", "none"]
    taken = {
        s: kind.split("+") for s, kind in place_events(words, optional, ["pause", "filler"], rng).items()
    }
    events: list[Event] = []
    if rng.random() < 0.3 and 1 not in taken:
        events.append(Event("filler", rng.choice(list(SYNTH_FILLERS))))
    cur: list[str] = []

    def flush() -> None:
        if cur:
            events.append(Event("words", " ".join(cur)))
            cur.clear()

    for i, w in enumerate(words):
        kinds_here = taken.get(i, [])
        if "filler" in kinds_here:
            flush()
            events.append(Event("filler", rng.choice(list(SYNTH_FILLERS))))
        if "pause" in kinds_here:
            flush()
            events.append(Event("pause", seconds=rng.choice(PAUSES_S)))
        if "repeat" in kinds_here:
            cur.extend([w] * rng.choice([1, 2]))
        cur.append(w)
    flush()
    return events


_ANCHORS: tuple[tuple[Event, ...], ...] = (
    (Event("words", "Well"), Event("filler", "uh"), Event("pause", seconds=0.5),
     Event("words", "I think the river runs north")),
    (Event("words", "Honestly"), Event("filler", "um"), Event("pause", seconds=0.55),
     Event("words", "I never saw the letter")),
    (Event("words", "So I I I think"), Event("pause", seconds=0.4),
     Event("words", "the plan is fine for everyone")),
    (Event("words", "The movie was"), Event("filler", "hmm"), Event("words", "pretty good"),
     Event("pause", seconds=1.0), Event("words", "but the ending was too long")),
)  # fmt: skip
"""Hand-made first clips: the tests rely on these exact events whatever the seed."""


def synth_corpus(out_dir: str | Path, backend: str, n_clips: int = 8, seed: int = 0) -> list[CorpusClip]:
    """Write ``n_clips`` 16 kHz wav clips of ``backend`` (voices rotate) and ``corpus.json`` to
    out_dir. Deterministic given the seed; the first clips are the fixed anchors."""
    be = BACKENDS[backend]
    if shutil.which(be.tool) is None:
        raise RuntimeError(
            f"{be.tool} not found: make system-deps (apt-get install flite festival festvox-us-slt-hts)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{backend}-{seed}")
    clips = []
    for i in range(n_clips):
        events = list(_ANCHORS[i]) if i < len(_ANCHORS) else _random_events(rng)
        voice = be.voices[i % len(be.voices)]
        clips.append(build_clip(be, voice, events, out / f"{backend}_{i:03d}.wav", rng))
    manifest = {
        "seed": seed,
        "backend": backend,
        "n_clips": n_clips,
        "clips": [c.to_json(out) for c in clips],
    }
    atomic_write_text(out / "corpus.json", json.dumps(manifest, indent=1) + "\n")
    return clips
