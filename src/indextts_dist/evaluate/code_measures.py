"""Code-space instrument: what one stream of semantic codes says about pausing, tempo and loops.

The semantic codec runs at 50 codes per second, so a pause of `PAUSE_S` seconds is a run of at
least 15 consecutive *pause codes* (the codes the training data's measured silences map to), a long
pause (`LONG_PAUSE_S`) a run of at least 35. Counting runs rather than single pause codes keeps a
stray silence-like code inside a word from counting as a pause.

Every function returns counts (numerators and denominators), never ratios: a statistic over many
texts is a ratio of sums (`statistics`), and a bootstrap needs the counts per unit.

Preprocess measures the training clips with these same functions (`data_measures`), and `evaluate`
the generated codes, so "beside the training data's value" compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..pattern_markers import LONG_PAUSE_S, PAUSE_S

__all__ = [
    "CODE_RATE",
    "NGRAM",
    "code_measures",
    "pause_runs",
    "repeated_ngrams",
]

CODE_RATE = 50
"""v2's semantic codes per second (w2v-BERT frames, codec without downsampling); 2.5's codec gives
25 (`CodecConfig.code_rate`): every measure takes the dataset's rate, this is only the default."""
NGRAM = 4
"""Length of the code n-grams whose repetition signals a loop (80 ms of audio)."""


def pause_runs(
    codes: Sequence[int], pause_codes: set[int], min_seconds: float, code_rate: float = CODE_RATE
) -> int:
    """Maximal runs of consecutive pause codes lasting at least `min_seconds` (at `code_rate`)."""
    need = max(1, round(min_seconds * code_rate))
    runs = length = 0
    for code in [*codes, None]:
        if code is not None and code in pause_codes:
            length += 1
            continue
        runs += length >= need
        length = 0
    return runs


def repeated_ngrams(codes: Sequence[int], pause_codes: set[int] | None, n: int = NGRAM) -> tuple[int, int]:
    """(n-grams seen earlier in the same stream, n-grams counted). N-grams made of pause codes
    only are left out: a long silence repeats its code by nature, which is pausing, not looping."""
    seen: set[tuple[int, ...]] = set()
    repeated = counted = 0
    for i in range(len(codes) - n + 1):
        gram = tuple(codes[i : i + n])
        if pause_codes and all(c in pause_codes for c in gram):
            continue
        counted += 1
        repeated += gram in seen
        seen.add(gram)
    return repeated, counted


def code_measures(
    codes: Iterable[int],
    text_tokens: int,
    pause_codes: set[int] | None,
    stopped: bool = True,
    code_rate: float = CODE_RATE,
) -> dict[str, float]:
    """The counts of one text's codes. `text_tokens`: tokens of the PLAIN text (markers removed),
    so that a model that says a pause the text does not write is credited with it. Without pause
    codes (a dataset that recorded none) the pause counts are absent, not zero."""
    codes = [int(c) for c in codes]
    out: dict[str, float] = {
        "units": 1,
        "text_tokens": text_tokens,
        "codes": len(codes),
        "stopped": float(bool(stopped)),
    }
    repeated, counted = repeated_ngrams(codes, pause_codes)
    out["repeated_ngrams"], out["ngrams"] = repeated, counted
    if pause_codes:
        out["pause_codes"] = sum(c in pause_codes for c in codes)
        out["pause_runs"] = pause_runs(codes, pause_codes, PAUSE_S, code_rate)
        out["long_pause_runs"] = pause_runs(codes, pause_codes, LONG_PAUSE_S, code_rate)
    return out
