"""Speakers with known speaking patterns, for measuring pattern transfer: fluent or hesitant.

`sentences(n, seed)` draws distinct plain sentences from a small grammar (subject, verb phrase,
place or time), so a corpus of a thousand clips needs no text files; `evaluate`'s held-out texts
(`evaluate.texts`) are written by hand outside this grammar, so they never occur in training.

`speaker_corpus` synthesizes each sentence with `synth.build_clip` (segments joined with silences
of known length), fluent — the sentence as one segment — or hesitant, with the pattern rates of
`Hesitation`: a filler at a phrase start, silences of 0.4–1.0 s between phrases, a repeated word.
Each clip's `.txt` beside it holds the intended sentence (what WER is measured against), and
`corpus.json` the full ground truth, as for the other corpora.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..utils.atomic import atomic_write_text
from .espeak import CorpusClip
from .synth import BACKENDS, SYNTH_FILLERS, Event, build_clip

__all__ = ["FLUENT", "HESITANT", "Hesitation", "sentences", "speaker_corpus"]

_SUBJECTS = (
    "my sister",
    "the teacher",
    "our neighbor",
    "the driver",
    "a friend of mine",
    "the manager",
    "my father",
    "the old man",
    "her cousin",
    "the new student",
    "his partner",
    "the doctor",
)
_VERBS = (
    "found the keys",
    "painted the fence",
    "opened the window",
    "fixed the radio",
    "read the letter",
    "cooked a big dinner",
    "washed the car",
    "lost the tickets",
    "sold the bicycle",
    "planted tomatoes",
    "answered the phone",
    "cleaned the garage",
    "missed the bus",
    "wrote a short story",
)
_WHERE = (
    "in the morning",
    "last weekend",
    "near the station",
    "after lunch",
    "before the storm",
    "at the market",
    "on a Sunday",
    "during the holiday",
    "behind the house",
    "late at night",
)


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct sentences (at most 12 × 14 × 10 = 1680), in a seeded order."""
    pool = [f"{s} {v} {w}" for s in _SUBJECTS for v in _VERBS for w in _WHERE]
    if n > len(pool):
        raise ValueError(f"the grammar has {len(pool)} sentences, {n} asked")
    random.Random(seed).shuffle(pool)
    return [p[0].upper() + p[1:] for p in pool[:n]]


@dataclass(frozen=True)
class Hesitation:
    """Pattern rates of a speaker: per phrase start, the chance of a filler; per phrase boundary,
    the chance of a silence (drawn from `pauses_s`); per clip, the chance of one repeated word."""

    filler: float
    pause: float
    repeat: float
    pauses_s: tuple[float, ...] = (0.4, 0.5, 0.6, 0.8, 1.0)
    phrase_words: tuple[int, int] = (2, 4)


FLUENT = Hesitation(filler=0.0, pause=0.0, repeat=0.0)
HESITANT = Hesitation(filler=0.6, pause=0.8, repeat=0.5)


def _events(sentence: str, style: Hesitation, rng: random.Random) -> list[Event]:
    words = sentence.split()
    if style == FLUENT:
        return [Event("words", sentence)]
    if rng.random() < style.repeat:  # "the the", "I I": one word said twice
        i = rng.randrange(len(words))
        words = [*words[: i + 1], words[i].lower(), *words[i + 1 :]]
    phrases, i = [], 0
    while i < len(words):
        k = rng.randint(*style.phrase_words)
        phrases.append(" ".join(words[i : i + k]))
        i += k
    events: list[Event] = []
    for j, phrase in enumerate(phrases):
        if j and rng.random() < style.pause:
            events.append(Event("pause", seconds=rng.choice(style.pauses_s)))
        if rng.random() < style.filler:
            events.append(Event("filler", rng.choice(list(SYNTH_FILLERS))))
        events.append(Event("words", phrase))
    return events


def speaker_corpus(
    out_dir: str | Path,
    texts: Sequence[str],
    *,
    backend: str = "espeak-ng",
    voices: Sequence[str] | None = None,
    style: Hesitation = FLUENT,
    seed: int = 0,
    prefix: str = "clip",
) -> list[CorpusClip]:
    """One 16 kHz wav per text (`PREFIX_NNNN.wav` + `.txt`), voices rotating, and `corpus.json`."""
    be = BACKENDS[backend]
    voices = list(voices or be.voices)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{backend}-{seed}-{style}")
    clips = []
    for i, text in enumerate(texts):
        path = out / f"{prefix}_{i:04d}.wav"
        clips.append(build_clip(be, voices[i % len(voices)], _events(text, style, rng), path, rng))
        atomic_write_text(path.with_suffix(".txt"), text + "\n")
    manifest = {
        "seed": seed,
        "backend": backend,
        "style": str(style),
        "clips": [c.to_json(out) for c in clips],
    }
    atomic_write_text(out / "corpus.json", json.dumps(manifest, indent=1) + "\n")
    return clips
