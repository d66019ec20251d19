"""The built-in held-out texts: plain sentences, no markers, outside every training grammar here.

Written by hand for `evaluate`: none of them is a clause of the test corpora (`corpus.espeak`) or a
sentence of the speaker grammar (`corpus.speakers.sentences`), which `tests/test_evaluate.py`
checks, so a model cannot reproduce them from memory. They are plain on purpose: a pattern that
comes back must come from the model, not from a `[PAUSE]` in the text.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, MissingFileError

__all__ = ["HELD_OUT_TEXTS", "read_texts"]

HELD_OUT_TEXTS: tuple[str, ...] = (
    "The library closes early on public holidays.",
    "Please bring a warm coat if you come to the mountains.",
    "Nobody expected the river to rise so quickly.",
    "She keeps her grandmother's recipes in a blue notebook.",
    "The engine made a strange noise when it was cold.",
    "We counted the birds on the lake every spring.",
    "His answer surprised everyone in the room.",
    "The bakery on the corner sells fresh bread at dawn.",
    "Turn left at the bridge and follow the signs.",
    "Most of the guests stayed until midnight.",
    "A good map is worth more than a fast car.",
    "The children built a tower out of empty boxes.",
)


def read_texts(path: str | Path | None) -> list[str]:
    """One text per non-blank line of `path`; the built-in set when None."""
    if path is None:
        return list(HELD_OUT_TEXTS)
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{file}: texts file not found")
    texts = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise InputError(f"{file}: no texts in the file (one text per line)")
    return texts
