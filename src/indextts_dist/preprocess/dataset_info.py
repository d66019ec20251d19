"""The run's summary files, written by rank 0 from every unit's record once all ranks are done.

`dataset_info.json` (version `v2_pattern_conditioned`: built with ONE global conditioning),
`rejects.jsonl` (one line per rejected clip) and `transcripts_verbatim.csv` (the transcripts, in the
same `file,text` format `--transcripts` reads, so a user can correct and re-run).

`dataset_info.json` also records the training data measured by `evaluate`'s instrument
(`evaluation`: rank 0 reads the codes and styles back from the shards, see
`evaluate.data_measures`), and the dataset's pause codes chosen from the measured silences.

`dataset_info.json` names every file a trainer needs inside the folder (shards, conditioning,
speaker embeddings, the reference clip's copy), so the folder can move without its audio.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from ..dataset import (
    CONDITIONING_FILE,
    DATASET_VERSION,
    INFO_FILE,
    REJECTS_FILE,
    TRANSCRIPTS_FILE,
    iter_tar_samples,
)
from ..evaluate.data_measures import ClipRecord, choose_pause_codes, dataset_evaluation
from ..utils.atomic import atomic_write_text
from .shards import UnitResult
from .transcripts import transcripts_csv

__all__ = ["DATASET_VERSION", "clip_records", "reference_clips", "validation_split", "write_summary_files"]


def validation_split(keys: list[str], fraction: float, seed: int) -> list[str]:
    """A deterministic held-out set, independent of how clips were dealt to ranks."""
    if len(keys) < 2 or fraction <= 0:
        return []
    count = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    ranked = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    return sorted(ranked[:count])


def reference_clips(samples: list[dict], count: int = 3) -> list[str]:
    """The second stage takes timbre from a reference clip: the longest accepted ones (by trimmed
    duration, then by name), as sources relative to the audio folder; the first one is THE reference."""
    return [s["source"] for s in sorted(samples, key=lambda s: (-s["duration_s"], s["source"]))[:count]]


def clip_records(out: Path, units: list[UnitResult]) -> list[ClipRecord]:
    """Every accepted clip's record with its codes and style, read back from the shards."""
    records = []
    for unit in sorted((u for u in units if u.tar), key=lambda u: u.tar or ""):
        metas = {m["id"]: m for m in unit.samples}
        for sample in iter_tar_samples(out / str(unit.tar)):
            style = sample.get("style.npy")
            records.append(ClipRecord(metas[sample["__key__"]], sample["codes.npy"].tolist(), style))
    return records


def write_summary_files(
    out: Path,
    units: list[UnitResult],
    total_inputs: int,
    fingerprints: dict[str, str],
    preset: str,
    val_fraction: float,
    seed: int,
    audio_dir: Path,
    speaker_embeddings: str | None = None,
    reference_files: list[str] | None = None,
    asr: dict | None = None,
    text: dict | None = None,
    code_rate: float = 50.0,
) -> dict:
    """`speaker_embeddings`: the file's name in `out`, None when preprocess computed none;
    `reference_files`: the copies of the reference clip in `out` (relative paths); `asr`: the
    transcriber's settings (`whisper_model`, `language`), recorded for `evaluate` to use the same;
    `text`: the 2.5 tokenizer's `text_language` and `text_language_id` (its `lang_embedding` row,
    which training adds to every text position), empty for v2; `code_rate`: the codec's codes per
    second (`CodecConfig.code_rate`), which the data's pause measures count in."""
    samples = [s for u in units for s in u.samples]
    rejects = sorted((r for u in units for r in u.rejects), key=lambda r: r["index"])
    if len(samples) + len(rejects) != total_inputs:
        raise RuntimeError(
            f"bookkeeping error: {len(samples)} accepted + {len(rejects)} rejected != {total_inputs} inputs"
        )
    markers: Counter[str] = Counter()
    in_pauses: Counter[str] = Counter()
    for s in samples:
        markers.update(s["markers"])
        in_pauses.update(s.get("pause_codes", {}))
    records = clip_records(out, units)
    pause_codes = choose_pause_codes(in_pauses, Counter(c for r in records for c in r.codes))
    words = sum(len(s["text"].split()) for s in samples)
    unk_pieces = sum(s["unk_share"] * s["text_len"] for s in samples)
    text_pieces = sum(s["text_len"] for s in samples)
    seconds = sum(s["duration_s"] for s in samples)
    info = {
        "version": DATASET_VERSION,
        "preset": preset,
        "conditioning": CONDITIONING_FILE,
        "speaker_embeddings": speaker_embeddings,
        "counts": {
            "inputs": total_inputs,
            "accepted": len(samples),
            "rejected": len(rejects),
            "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        },
        "audio_hours": round(seconds / 3600, 6),
        "codes_total": sum(s["code_len"] for s in samples),
        "fingerprints": fingerprints,
        "markers": {
            "counts": dict(sorted(markers.items())),
            "clips_with_markers": sum(1 for s in samples if s["markers"]),
            "per_100_words": {m: round(100 * c / max(words, 1), 3) for m, c in sorted(markers.items())},
            "words": words,
            # Codes that make up the measured pauses (every clip, VAD on the audio), with their
            # counts inside pauses, most frequent first: what pauses sound like to the GPT.
            # `diagnose` and `evaluate` measure generated codes against this set.
            "pause_codes": pause_codes,
        },
        "evaluation": {
            **dataset_evaluation(records, {int(c) for c in pause_codes}, code_rate),
            "asr": dict(asr or {}),
        },
        "tokenizer_coverage": {
            "unk_share_total": round(unk_pieces / max(text_pieces, 1), 6),
            "unk_share_per_clip": {s["id"]: s["unk_share"] for s in samples},
        },
        "shards": [
            {"file": u.tar, "samples": len(u.samples)}
            for u in sorted(units, key=lambda u: u.tar or "")
            if u.tar
        ],
        "splits": {"val": validation_split([s["id"] for s in samples], val_fraction, seed)},
        "audio_dir": str(audio_dir.resolve()),  # where the clips were (informational: training
        # reads the conditioning, the speaker embeddings and the reference copy from this folder)
        "reference_clips": reference_clips(samples),
        "reference_files": list(reference_files or []),
        **(text or {}),
    }
    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=1, ensure_ascii=False))
    atomic_write_text(out / REJECTS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
    rows = sorted((s["source"], s["text"]) for s in samples)
    atomic_write_text(out / TRANSCRIPTS_FILE, transcripts_csv(rows))
    return info
