"""Long-text segmentation: limits, preferred boundaries, merging, nothing lost."""

from __future__ import annotations

import pytest

from indextts_dist.inference.segment import split_segments


def words(n: int, end: str = ".") -> list[str]:
    return [f"▁W{i}" for i in range(n - 1)] + [end]


def test_short_text_is_one_segment_and_nothing_is_lost():
    pieces = words(10)
    assert split_segments(pieces, 120) == [pieces]
    assert split_segments([], 120) == []


def test_sentences_are_kept_whole_and_short_ones_merged():
    a, b, c = words(50), words(50, "?"), words(30, "!")
    segments = split_segments(a + b + c, 120)
    assert segments == [a + b, c]  # 100 fits, adding 30 would not


def test_long_sentence_splits_at_commas_then_hyphens_then_hard():
    commas = words(40, ",") + words(40, ",") + words(40, ",") + words(10)
    segments = split_segments(commas, 60)
    assert all(len(s) <= 60 for s in segments) and [p for s in segments for p in s] == commas
    assert all(s[-1] in {",", "."} for s in segments)
    hard = [f"▁X{i}" for i in range(250)]
    segments = split_segments(hard, 100)
    assert [len(s) for s in segments] == [100, 100, 50] and [p for s in segments for p in s] == hard


def test_bad_limit():
    with pytest.raises(ValueError, match="segment limit"):
        split_segments(["a"], 0)
