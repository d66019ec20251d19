"""Generating the held-out texts with the adapted model and with its base, and measuring both.

Both sides are the one loaded model every door uses (`inference.loaded.LoadedModel`): the adapted
one as loaded, the base as `without_adapter()` — same tokenizer, conditioning, placement,
segmentation and batching — run on the same texts with the same decoding for each of the seeds,
so unit i of one side and unit i of the other are the same (text, seed) and differ only by the
adapter. Audio space comes from wavs: a folder made elsewhere (`--wavs`, `--base-wavs`), or the
package's second stage rendering what was generated (`render=True`; speech only with real
weights — the tiny and mini second stages are random and make noise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..generate import DecodingConfig
from ..inference.loaded import LoadedModel
from ..inference.speech_output import SpeechRenderer
from ..pattern_markers import strip_markers
from ..utils.atomic import atomic_write_text
from .audio_folder import AudioInstrument
from .code_measures import CODE_RATE, code_measures

__all__ = ["Side", "generate_side", "seeds_for"]


def seeds_for(decoding: DecodingConfig, count: int) -> list[int]:
    """`count` consecutive seeds from the decoding's (0 when it has none)."""
    if count < 1:
        raise ValueError(f"need at least one seed, got {count}")
    start = decoding.seed if decoding.seed is not None else 0
    return [start + k for k in range(count)]


@dataclass
class Side:
    """What one model (adapted or base) produced and how it measured."""

    name: str
    code_units: list[dict[str, Any]] = field(default_factory=list)
    audio_units: list[dict[str, Any]] = field(default_factory=list)
    per_text: list[dict[str, Any]] = field(default_factory=list)


def generate_side(
    name: str,
    model: LoadedModel,
    texts: Sequence[str],
    decoding: DecodingConfig,
    seeds: Sequence[int],
    pause_codes: set[int] | None,
    *,
    batch_size: int = 8,
    render_to: Path | None = None,
    audio: AudioInstrument | None = None,
    progress: Callable[[str], None] | None = None,
    code_rate: float = CODE_RATE,
) -> Side:
    """Units in (seed, text) order. With `render_to`, each text is also spoken by the package's
    second stage into `render_to/sSEED_NNN.wav` (+ `.txt`, the intended text) and, with `audio`,
    measured there."""
    side = Side(name)
    plain_tokens = [len(model.tokenizer.encode(strip_markers(t))) for t in texts]
    for seed in seeds:
        run = dataclasses.replace(decoding, seed=seed)
        if render_to is not None:
            pairs = model.speak(texts, run, batch_size)
            results = [r for r, _ in pairs]
        else:
            results, pairs = model(texts, run, batch_size, latents=False), []
        for i, (text, r) in enumerate(zip(texts, results, strict=True)):
            side.code_units.append(
                code_measures(r.codes.tolist(), plain_tokens[i], pause_codes, r.all_stopped, code_rate)
            )
            record = {
                "text": text,
                "seed": seed,
                "text_tokens": plain_tokens[i],
                "codes": int(r.codes.numel()),
                "stopped": r.all_stopped,
                "semantic_codes": r.codes.tolist(),
            }
            if pairs and render_to is not None:
                wav = _write_wav(render_to / f"s{seed}_{i:03d}.wav", pairs[i][1], text)
                record["wav"] = str(wav)
                if audio is not None:
                    side.audio_units.append(audio.measure(wav, text))
            side.per_text.append(record)
        if progress:
            progress(f"{name}: seed {seed} done ({len(texts)} texts)")
    return side


def _write_wav(path: Path, wav, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    SpeechRenderer.write(path, wav)
    atomic_write_text(path.with_suffix(".txt"), text + "\n")
    return path
