"""What `infer` and `generate` write per text: codes, GPT latents (when computed) and a JSON record,
each file atomically. One writer, so the two commands' records have the same keys."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..generate import DecodingConfig
from ..placement import host_numpy
from ..utils.atomic import atomic_write_bytes, atomic_write_text
from .results import Synthesis

__all__ = ["npy_bytes", "write_synthesis"]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def write_synthesis(
    results: list[Synthesis], decoding: DecodingConfig, out: Path, model: str, label: str | None
) -> list[Path]:
    """`NNN.codes.npy` (int32 [N]), `NNN.latents.npy` (float32 [N, D], S2Mel's input; only for results
    run with latents), `NNN.json`. Returns the JSON paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, r in enumerate(results):
        stem = out / f"{i:03d}"
        atomic_write_bytes(stem.with_suffix(".codes.npy"), npy_bytes(host_numpy(r.codes, np.int32)))
        if r.latents is not None:
            atomic_write_bytes(stem.with_suffix(".latents.npy"), npy_bytes(host_numpy(r.latents, np.float32)))
        record = {
            "text": r.text,
            "text_normalized": r.normalized,
            "segments": len(r.segments),
            "text_ids": r.segments,
            "code_count": int(r.codes.numel()),
            "segment_codes": r.segment_codes,
            "stopped": r.stopped,
            "decoding": decoding.to_dict(),
            "model": model,
            "label": label,
        }
        atomic_write_text(stem.with_suffix(".json"), json.dumps(record, indent=1, ensure_ascii=False))
        written.append(stem.with_suffix(".json"))
    return written
