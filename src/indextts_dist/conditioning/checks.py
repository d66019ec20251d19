"""The checks every stage runs on a conditioning before using it, each written once.

`check_base`: a conditioning is a prefix for ONE base GPT (another base reads it as noise: codes
come out, patterns do not), so every door refuses a file computed on another base, and a file that
records no base at all, with the same one-line error. `check_speaker_embeddings`: the dataset's
second-stage speaker embeddings must be averaged over the same clips as its GPT conditioning (both
come from the same preprocess run); a leftover file from another run is refused before training
starts, not found out after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .store import ConditioningError, GlobalConditioning

__all__ = ["BASE_KEY", "check_base", "check_speaker_embeddings", "speaker_metadata"]

BASE_KEY = "base_model_fingerprint"
"""The conditioning metadata key naming the base GPT it was computed on."""
_SAME_CLIPS = ("num_clips", "source_digest")
"""Metadata a speaker-embeddings file shares with the conditioning of the same run."""


def check_base(
    cond: GlobalConditioning | Mapping[str, str],
    expected_fingerprint: str,
    source: str,
    base: str = "this base",
) -> None:
    """Refuse `cond` (read from `source`; the conditioning or just its metadata) unless it was
    computed on the base whose fingerprint is `expected_fingerprint`; `base` names that base for the
    user (`--weights W`, a preset's seed…)."""
    metadata = cond.metadata if isinstance(cond, GlobalConditioning) else cond
    made_with = metadata.get(BASE_KEY)
    if not made_with:
        raise ConditioningError(
            f"{source}: conditioning records no {BASE_KEY}, so it cannot be checked against the base "
            "model; recompute it with `indextts-dist preprocess`"
        )
    if made_with != expected_fingerprint:
        raise ConditioningError(
            f"{source}: conditioning was computed on base {made_with}, but {base} is "
            f"{expected_fingerprint}; use the base it was made with, or recompute it with "
            "`indextts-dist preprocess` on this one"
        )


def speaker_metadata(cond: GlobalConditioning, style_fingerprint: str, reference: str) -> dict[str, str]:
    """What a speaker-embeddings file records: the conditioning's clip count and source digest (so
    `check_speaker_embeddings` can tie the two), the CAMPPlus weights its style comes from, and the
    reference clip its ref_mel / prompt_condition come from."""
    return {
        **{k: cond.metadata.get(k, "") for k in _SAME_CLIPS},
        "method": "mean",
        "style_fingerprint": style_fingerprint,
        "reference_clip": reference,
    }


def check_speaker_embeddings(
    path: str | Path, cond: GlobalConditioning, source: str, style_fingerprint: str | None = None
) -> dict[str, str]:
    """Refuse the speaker embeddings at `path` unless they were averaged over the clips of `cond`
    (read from `source`) and, when `style_fingerprint` is given, by that CAMPPlus; returns their
    metadata."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConditioningError(f"{path}: not a safetensors speaker-embeddings file ({exc})") from exc
    for key in _SAME_CLIPS:
        if meta.get(key) != cond.metadata.get(key):
            raise ConditioningError(
                f"{path}: speaker embeddings were not averaged over the clips of {source} ({key} "
                f"{meta.get(key) or '(unrecorded)'} vs {cond.metadata.get(key) or '(unrecorded)'}); "
                "re-run preprocess"
            )
    made_by = meta.get("style_fingerprint") or "(unrecorded)"
    if style_fingerprint is not None and made_by != style_fingerprint:
        raise ConditioningError(
            f"{path}: speaker style was computed by CAMPPlus {made_by}, this second stage's is "
            f"{style_fingerprint}; re-run preprocess with this second stage's weights"
        )
    return meta
