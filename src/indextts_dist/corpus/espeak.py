"""A small synthetic single-"speaker" corpus with KNOWN speaking patterns, made with espeak-ng.

Why synthetic: tests, the demo and the marker benchmark need audio whose pauses and fillers are known
exactly, and no binary audio may be committed. espeak-ng renders SSML ``<break time="...ms"/>`` as
digital silence of that length, so every inserted pause has a known duration and a known marker;
fillers ("uh", "um", ...) and repetitions ("I I I think") are written into the text.

Rules that keep the ground truth true (``tests/test_corpus.py`` measures them on the audio):
- a break never touches punctuation or a filler (espeak adds its own ~0.2 s pause at a comma, which
  would add up with the break), and never starts or ends a clip (trimming would eat it);
- break lengths keep clear of the marker thresholds (0.4-0.5 s → ``[PAUSE]``, 1.0-1.2 s → ``[LONG]``);
- speeds stay at or above 160 wpm: espeak's comma pause plus a following stop closure (", um, keys")
  reaches 0.31 s at 140 wpm but stays at or below 0.26 s from 160 wpm up.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..pattern_markers import pause_marker
from ..utils.atomic import atomic_write_text

__all__ = [
    "BREAKS_MS",
    "FILLERS",
    "VOICES",
    "CorpusClip",
    "PauseTruth",
    "load_corpus",
    "make_bad_inputs",
    "synthesize_corpus",
]

VOICES: tuple[str, ...] = ("en-us", "en-us+m3", "en-us+f1")
"""Voice variants without espeak's "echo" setting (f2-f5, m2 have one): an echo tail fills a break with
decaying sound and makes it measure shorter than written."""
SPEEDS: tuple[int, ...] = (160, 170, 180, 190)
BREAKS_MS: tuple[int, ...] = (400, 500, 1000, 1200)
FILLERS: dict[str, str] = {"uh": "[UH]", "um": "[UM]", "hm": "[HMM]", "ah": "[AH]", "er": "[ER]"}
"""Filler as written for espeak → its marker. espeak says "uh" /ʌ/, "um" /ʌm/, "ah" /ɑː/, "er" /ɜː/; "hm"
because espeak reads "hmm" as /həm/, which sounds like "hum"; "uhh" would come out as /uː/."""


# Clauses without punctuation: events are inserted between their words.
_CLAUSES: tuple[str, ...] = (
    "I think we should go to the store today",
    "the weather was really nice this morning",
    "we could take the other road instead",
    "my brother called me about the party",
    "she said the meeting starts at noon",
    "it was the best concert I have ever seen",
    "the train was late again this week",
    "let me tell you what happened next",
    "the dog ran across the yard after the ball",
    "we finished the project last Friday",
    "I want to buy a new bike for the summer",
    "they moved to a small town near the coast",
    "you can leave the keys on the kitchen table",
    "the answer depends on how much time we have",
    "I never really liked that kind of music",
    "he forgot his umbrella at the office",
)

# Hand-made first clips: the end-to-end tests rely on these exact events (a 1.0 s break, a 0.4 s
# break, fillers, a repetition), whatever the seed.
_ANCHORS: tuple[str, ...] = (
    "Well, uh, I think <1000> we should go to the store today.",
    "So I I I think <400> the plan is fine for everyone.",
    "Um, I was going to call you <500> yesterday <1200> but I forgot.",
    "The movie was, hm, pretty good <400> but the ending was too long.",
)


@dataclass(frozen=True)
class PauseTruth:
    """An inserted break: after ``boundary`` spoken words (fillers not counted)."""

    boundary: int
    duration_s: float
    marker: str


@dataclass
class CorpusClip:
    """One synthesized clip and its ground truth.

    ``expected`` is the verbatim text with the markers a perfect transcriber would produce;
    ``words`` are the spoken non-filler words (lower case, no punctuation) that boundaries count;
    ``fillers`` pairs each filler marker with its boundary (number of words before it).
    """

    path: Path
    script: str
    text: str
    expected: str
    words: list[str]
    fillers: list[tuple[int, str]]
    pauses: list[PauseTruth]
    voice: str
    speed: int
    format: str
    duration_s: float
    repetitions: int = 0

    def to_json(self, root: Path) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = os.path.relpath(self.path, root)
        d["fillers"] = [list(f) for f in self.fillers]
        return d

    @classmethod
    def from_json(cls, d: dict, root: Path) -> CorpusClip:
        d = dict(d)
        d["path"] = Path(root) / d["path"]
        d["fillers"] = [(int(b), str(m)) for b, m in d["fillers"]]
        d["pauses"] = [PauseTruth(**p) for p in d["pauses"]]
        return cls(**d)


# --- scripts -------------------------------------------------------------------------------------


def _parse(script: str) -> list[tuple[str, str]]:
    """Tokens of a script: ('word', 'think'), ('filler', 'uh'), ('break', '1000')."""
    out: list[tuple[str, str]] = []
    for tok in script.split():
        if tok.startswith("<") and tok.endswith(">"):
            out.append(("break", tok[1:-1]))
        elif tok.strip(",.!?").lower() in FILLERS:
            out.append(("filler", tok))
        else:
            out.append(("word", tok))
    return out


def place_events(
    words: Sequence[str], optional: list[str], always: list[str], rng: random.Random
) -> dict[int, str]:
    """Slot (word index 1..n-1) -> event kind: the `always` kinds plus two of `optional`, each in a
    free slot with free neighbours (a repetition only of a short word). Shared by every corpus so
    that their scripts have the same structure."""
    slots = list(range(1, len(words)))
    rng.shuffle(slots)
    taken: dict[int, str] = {}
    for kind in [*always, *rng.sample(optional, 2)]:
        for s in slots:
            if s in taken or s - 1 in taken or s + 1 in taken:
                continue
            if kind == "repeat" and len(words[s]) > 5:
                continue
            taken[s] = kind
            break
    return taken


def _random_script(rng: random.Random) -> str:
    words = rng.choice(_CLAUSES).split()
    # Slots between words (never at the ends). Each slot gets at most one event and events
    # never sit in neighbouring slots, so a break never touches a filler's comma.
    taken = place_events(words, ["break", "filler", "repeat", "none"], ["break", "filler"], rng)
    # An optional leading filler ("Um, ...") when slot 1 is free.
    lead = rng.random() < 0.3 and 1 not in taken
    toks: list[str] = []
    if lead:
        toks.append(rng.choice(["Um,", "Uh,", "Hm,", "Ah,", "Er,"]))
    for i, w in enumerate(words):
        kind = taken.get(i)
        if kind == "break":
            toks.append(f"<{rng.choice(BREAKS_MS)}>")
        elif kind == "filler":
            toks[-1] = toks[-1] + ","
            toks.append(rng.choice(list(FILLERS)) + ",")
        elif kind == "repeat":
            toks.extend([w] * rng.choice([1, 2]))
        toks.append(w)
    first = toks[0]
    toks[0] = first[0].upper() + first[1:]
    return " ".join(toks) + "."


def _render(script: str) -> tuple[str, str, str, list[str], list[tuple[int, str]], list[PauseTruth], int]:
    """Script → (ssml, plain text, expected marked text, words, fillers, pauses, repetitions)."""
    ssml, plain, expected, words = [], [], [], []
    fillers: list[tuple[int, str]] = []
    pauses: list[PauseTruth] = []
    for kind, tok in _parse(script):
        if kind == "break":
            ms = int(tok)
            marker = pause_marker(ms / 1000)
            assert marker is not None
            ssml.append(f'<break time="{ms}ms"/>')
            expected.append(marker)
            pauses.append(PauseTruth(boundary=len(words), duration_s=ms / 1000, marker=marker))
        elif kind == "filler":
            marker = FILLERS[tok.strip(",.!?").lower()]
            ssml.append(tok)
            plain.append(tok)
            expected.append(marker)
            fillers.append((len(words), marker))
        else:
            ssml.append(tok)
            plain.append(tok)
            expected.append(tok)
            words.append(tok.strip(",.!?").lower())
    reps = sum(1 for a, b in itertools.pairwise(words) if a == b)
    return (
        "<speak>" + " ".join(ssml) + "</speak>",
        " ".join(plain),
        " ".join(expected),
        words,
        fillers,
        pauses,
        reps,
    )


# --- audio ---------------------------------------------------------------------------------------


def _need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise RuntimeError(f"{tool} not found: apt-get install espeak-ng sox libsox-fmt-all ffmpeg")
    return exe


def _espeak(ssml_or_text: str, wav: Path, voice: str, speed: int, ssml: bool = True) -> None:
    cmd = [_need("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(wav)]
    if ssml:
        cmd.insert(1, "-m")
    subprocess.run([*cmd, ssml_or_text], check=True, capture_output=True)


def _encode(src_wav: Path, dst: Path) -> None:
    """wav → dst's format. ffmpeg with bitexact flags: no random Ogg serials, no encoder tags, so the
    same seed gives the same bytes."""
    fmt = dst.suffix.lstrip(".").lower()
    if fmt == "wav":
        shutil.copyfile(src_wav, dst)
        return
    codec = {"flac": "flac", "mp3": "libmp3lame", "ogg": "libvorbis", "m4a": "aac"}[fmt]
    cmd = [_need("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src_wav)]
    cmd += ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1", "-c:a", codec]
    if fmt == "mp3":
        cmd += ["-b:a", "64k"]
    subprocess.run([*cmd, str(dst)], check=True, capture_output=True)


def synthesize_corpus(
    out_dir: str | Path,
    n_clips: int = 12,
    seed: int = 0,
    formats: Sequence[str] = ("wav", "flac", "mp3"),
) -> list[CorpusClip]:
    """Write ``n_clips`` clips ``clip_000.<fmt>`` ... and ``corpus.json`` (the ground truth) to out_dir.

    Deterministic given the seed: the first clips are fixed anchors, the rest drawn from ``seed``;
    voices, speeds and formats rotate. Audio stays at espeak's native 22050 Hz mono.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    clips: list[CorpusClip] = []
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        for i in range(n_clips):
            script = _ANCHORS[i] if i < len(_ANCHORS) else _random_script(rng)
            # Rotations under which every voice meets every format (within len(VOICES) * len(formats)
            # clips) and each run of len(SPEEDS) clips has every speed.
            f = i % len(formats)
            fmt = formats[f]
            voice = VOICES[(i // len(formats) + f) % len(VOICES)]
            speed = SPEEDS[(i // len(SPEEDS) + i) % len(SPEEDS)]
            ssml, plain, expected, words, fillers, pauses, reps = _render(script)
            wav = Path(tmp) / f"{i}.wav"
            _espeak(ssml, wav, voice, speed)
            duration = sf.info(str(wav)).duration
            path = out / f"clip_{i:03d}.{fmt}"
            _encode(wav, path)
            clips.append(
                CorpusClip(
                    path=path,
                    script=script,
                    text=plain,
                    expected=expected,
                    words=words,
                    fillers=fillers,
                    pauses=pauses,
                    voice=voice,
                    speed=speed,
                    format=fmt,
                    duration_s=round(duration, 4),
                    repetitions=reps,
                )
            )
    manifest = {"seed": seed, "n_clips": n_clips, "clips": [c.to_json(out) for c in clips]}
    atomic_write_text(out / "corpus.json", json.dumps(manifest, indent=1) + "\n")
    return clips


def load_corpus(out_dir: str | Path) -> list[CorpusClip]:
    """The clips recorded in ``out_dir/corpus.json``."""
    out = Path(out_dir)
    manifest = json.loads((out / "corpus.json").read_text())
    return [CorpusClip.from_json(d, out) for d in manifest["clips"]]


# --- the bad-input zoo ---------------------------------------------------------------------------


def _speech(text: str, voice: str = "en-us", speed: int = 160) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        wav = Path(tmp) / "s.wav"
        _espeak(text, wav, voice, speed, ssml=False)
        data, sr = sf.read(str(wav), dtype="float32")
    return data, sr


def make_bad_inputs(out_dir: str | Path, *, duplicate_of: str | Path | None = None) -> dict[str, Path]:
    """Write the inputs the preprocess job must reject (or survive) and return them by name.

    Keys (expected rejection reason in brackets): ``empty`` [empty_file], ``not_audio``
    [undecodable], ``corrupt`` [undecodable], ``too_short`` [too_short], ``too_long`` [too_long],
    ``silent`` [silent], ``clipped`` [clipped], ``unreadable`` [unreadable: a symlink to a missing
    file, because chmod 000 does not stop root], ``empty_transcript`` [2 s of quiet noise, no speech:
    decodes and validates, but has no words], ``duplicate`` [a byte copy of ``duplicate_source``,
    which is a good clip — or of ``duplicate_of`` when given, then there is no ``duplicate_source``],
    ``non_utf8_name`` [a good clip whose file name is the bytes ``clip_\\xff.wav``; the Path holds
    it surrogate-escaped].
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    paths: dict[str, Path] = {}

    def write(name: str, data: np.ndarray, sr: int) -> Path:
        p = out / name
        sf.write(str(p), data, sr, subtype="PCM_16")
        return p

    speech, sr = _speech("The quick brown fox jumps over the lazy dog near the river bank.")

    paths["empty"] = out / "empty.wav"
    paths["empty"].write_bytes(b"")
    paths["not_audio"] = out / "not_audio.wav"
    paths["not_audio"].write_text("This is a text file with a .wav name, not audio.\n" * 20)
    # A real wav whose header is garbage (and the data chunk cut short).
    good = out / "corrupt.wav"
    write(good.name, speech, sr)
    raw = bytearray(good.read_bytes())[: len(speech)]
    raw[0:44] = rng.integers(0, 256, 44, dtype=np.uint8).tobytes()
    good.write_bytes(bytes(raw))
    paths["corrupt"] = good

    word, wsr = _speech("Yes.")
    nz = np.flatnonzero(np.abs(word) > 0.01)
    paths["too_short"] = write("too_short.wav", word[nz[0] : nz[0] + int(0.3 * wsr)], wsr)

    parts = []
    for k, sentence in enumerate(
        (
            "We walked along the river for a long time and talked about the old days.",
            "Then the rain started and we ran back to the car as fast as we could.",
            "In the evening we cooked dinner together and watched a very long film.",
            "The next morning was bright and clear, so we went out to the hills again.",
        )
    ):
        s, _ = _speech(sentence, VOICES[k % len(VOICES)], 150)
        parts.append(s)
    long = np.concatenate(parts)
    while len(long) < 20 * sr:
        long = np.concatenate([long, *parts])
    paths["too_long"] = write("too_long.wav", long[: 20 * sr], sr)

    paths["silent"] = write("silent.wav", np.zeros(2 * 16000, np.float32), 16000)
    paths["clipped"] = write("clipped.wav", np.clip(speech * 30.0, -1.0, 1.0), sr)

    unreadable = out / "unreadable.wav"
    if unreadable.is_symlink() or unreadable.exists():
        unreadable.unlink()
    unreadable.symlink_to("missing-target.wav")
    paths["unreadable"] = unreadable

    # Quiet white noise: louder than the -40 dBFS silence threshold, yet nothing to transcribe.
    noise = rng.normal(0.0, 10 ** (-32 / 20), 2 * 16000).astype(np.float32)
    paths["empty_transcript"] = write("empty_transcript.wav", noise, 16000)

    if duplicate_of is None:
        src = write("dup_a_source.wav", speech, sr)
        paths["duplicate_source"] = src
    else:
        src = Path(duplicate_of)
    paths["duplicate"] = out / f"dup_b_copy{src.suffix}"
    shutil.copyfile(src, paths["duplicate"])

    other, osr = _speech("Hello there, this clip has a strange file name.", "en-us+f2", 150)
    bad_name = os.path.join(os.fsencode(out), b"clip_\xff.wav")
    tmp = out / ".non_utf8.tmp.wav"
    sf.write(str(tmp), other, osr, subtype="PCM_16")
    os.replace(os.fsencode(tmp), bad_name)
    paths["non_utf8_name"] = Path(os.fsdecode(bad_name))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formats", default="wav,flac,mp3", help="comma-separated: wav,flac,mp3,ogg,m4a")
    ap.add_argument("--bad-inputs", action="store_true", help="also write the bad-input zoo")
    args = ap.parse_args(argv)
    clips = synthesize_corpus(args.out_dir, args.clips, args.seed, tuple(args.formats.split(",")))
    total = sum(c.duration_s for c in clips)
    print(f"wrote {len(clips)} clips ({total:.1f} s of audio) and corpus.json to {args.out_dir}")
    if args.bad_inputs:
        bad = make_bad_inputs(args.out_dir)
        print(f"wrote {len(bad)} bad inputs: {', '.join(sorted(bad))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
