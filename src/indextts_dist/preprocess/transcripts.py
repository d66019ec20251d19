"""Transcript CSVs (`file,text`): the user's override on the way in, the verbatim transcripts on the way out.

The output has the same format as the input, so a user can review the ASR transcripts, correct
them, and feed the file back with `--transcripts`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, MissingFileError

__all__ = ["read_transcripts", "transcripts_csv"]


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Map relative file path (or bare file name) -> text. A malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: transcript CSV not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file", "text"} <= set(reader.fieldnames):
            raise InputError(f"{path}: transcript CSV needs the header 'file,text'")
        table = {}
        for line, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip()
            if not name:
                raise InputError(f"{path}:{line}: empty 'file' column")
            table[name] = (row.get("text") or "").strip()
    return table


def transcripts_csv(rows: Iterable[tuple[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file", "text"])
    writer.writerows(rows)
    return buf.getvalue()
