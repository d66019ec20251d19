"""Splitting long texts into segments the GPT can take, as the official inference does (SPEC §c.4).

Pieces are split at sentence ends first (`.`, `!`, `?`, `...`), a still-too-long sentence at commas,
then at hyphens, then hard; adjacent short segments are merged back up to the limit, so segments
stay close to whole sentences. Each segment is generated on its own and the results are joined.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError

__all__ = ["MAX_SEGMENT_TOKENS", "split_segments"]

MAX_SEGMENT_TOKENS = 120
"""The official `max_text_tokens_per_segment` default."""

SENTENCE_ENDS = frozenset({".", "!", "?", "▁.", "▁?", "▁!", "...", "▁...", "…", "▁…"})
LEVELS: tuple[frozenset[str], ...] = (
    SENTENCE_ENDS,
    frozenset({",", "▁,"}),
    frozenset({"-", "▁-"}),
)


def _cut_after(pieces: list[str], marks: frozenset[str]) -> list[list[str]]:
    parts, current = [], []
    for piece in pieces:
        current.append(piece)
        if piece in marks:
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    return parts


def _split(pieces: list[str], limit: int, level: int) -> list[list[str]]:
    if len(pieces) <= limit:
        return [pieces]
    if level == len(LEVELS):
        return [pieces[i : i + limit] for i in range(0, len(pieces), limit)]
    out = []
    for part in _cut_after(pieces, LEVELS[level]):
        out.extend(_split(part, limit, level + 1) if len(part) > limit else [part])
    return out


def split_segments(pieces: Sequence[str], limit: int = MAX_SEGMENT_TOKENS) -> list[list[str]]:
    """Segments of at most `limit` pieces, preferring sentence boundaries; short neighbours merged."""
    if limit < 1:
        raise InputError(f"segment limit must be >= 1, got {limit}")
    pieces = list(pieces)
    if not pieces:
        return []
    merged: list[list[str]] = []
    for part in (p for p in _split(pieces, limit, 0) if p):
        if merged and len(merged[-1]) + len(part) <= limit:
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    return merged
