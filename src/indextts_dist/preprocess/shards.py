"""Shard units: the webdataset tar of a block of clips, its rejects, stats and conditioning sums.

A unit is `clips_per_shard` consecutive clips of one rank's share. It is written as
`shard-RRR-KKKKK.tar` (accepted samples), `shard-RRR-KKKKK.cond.safetensors` (the unit's
`ConditioningSums`: speaker latents, emotion vectors, styles and counts, in the conditioning
module's format) and, last, `shard-RRR-KKKKK.json` (the clips it covers, its samples, rejects and
stats). Each file is written to a temp name and renamed; the JSON
is the commit marker; it also holds the unit's key (`unit_key`: everything the unit was computed
from). A re-run reuses a unit whole, conditioning sums included, only when its stored key equals
the new one; otherwise the unit is recomputed: its old marker is removed first (a crash then leaves
no marker that could pass for finished work), and each file is replaced by rename.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..conditioning import ConditioningSums, load_sums, save_sums
from ..dataset import iter_tar_samples, read_tar_samples, unit_stem, write_tar
from ..utils.atomic import atomic_write_text
from .clip import ProcessedClip
from .unit_key import UnitKey, stale_reasons

__all__ = [
    "UnitResult",
    "find_unit",
    "iter_tar_samples",
    "load_unit",
    "read_tar_samples",
    "unit_stem",
    "write_unit",
]


@dataclass
class UnitResult:
    sources: list[str]
    samples: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    sums: ConditioningSums | None = None
    tar: str | None = None
    reused: bool = False


def _write_tar(tar_path: Path, samples: list[ProcessedClip]) -> None:
    write_tar(tar_path, ((s.key, s.text_ids, s.codes, s.meta, s.arrays()) for s in samples))


def write_unit(
    out: Path, rank: int, k: int, sources: list[str], samples: list[ProcessedClip], rejects: list[dict],
    sums: ConditioningSums, key: UnitKey | None = None,
) -> UnitResult:  # fmt: skip
    """Write (or replace) unit k of `rank`; `key` goes into the record for the next run to compare.

    The old marker goes first, so a crash while replacing a unit never leaves the old record
    beside new files (or the reverse) looking finished. A unit that now has no samples drops the
    tar an earlier run left under its name.
    """
    stem = unit_stem(out, rank, k)
    stem.with_suffix(".json").unlink(missing_ok=True)
    tar_path, tar_name = stem.with_suffix(".tar"), None
    if samples:
        _write_tar(tar_path, samples)
        tar_name = tar_path.name
    else:
        tar_path.unlink(missing_ok=True)
    save_sums(sums, stem.with_suffix(".cond.safetensors"))
    record = {
        "rank": rank,
        "unit": k,
        "sources": sources,
        "tar": tar_name,
        "samples": [s.meta for s in samples],
        "rejects": rejects,
        "key": key.data if key else None,
        "key_sha256": key.sha256 if key else None,
    }
    atomic_write_text(stem.with_suffix(".json"), json.dumps(record, ensure_ascii=False, indent=1))
    return UnitResult(sources, record["samples"], rejects, sums, tar_name)


def _read_record(marker: Path) -> dict | None:
    try:
        record = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def find_unit(
    out: Path, rank: int, k: int, sources: list[str], key: UnitKey | None = None
) -> tuple[UnitResult | None, str | None]:
    """(the finished unit, None) when it can be reused, else (None, why it cannot).

    With `key`, the record's stored key must equal it (`unit_key.stale_reasons` names what
    differs); without, only the list of clips is checked (what the building-block tests use).
    """
    stem = unit_stem(out, rank, k)
    marker, cond_path = stem.with_suffix(".json"), stem.with_suffix(".cond.safetensors")
    if not marker.is_file():
        return None, "no record"
    record = _read_record(marker)
    if record is None:
        return None, "unreadable record"
    if record.get("sources") != sources:
        return None, "clips changed"
    reasons = stale_reasons(record.get("key"), key) if key is not None else []
    if reasons:
        return None, ", ".join(reasons)
    if not cond_path.is_file() or (record.get("tar") and not (out / record["tar"]).is_file()):
        return None, "files missing"
    unit = UnitResult(
        sources, record["samples"], record["rejects"], load_sums(cond_path), record.get("tar"), reused=True
    )
    return unit, None


def load_unit(
    out: Path, rank: int, k: int, sources: list[str], key: UnitKey | None = None
) -> UnitResult | None:
    """A finished unit covering exactly `sources` (and matching `key`), or None: see `find_unit`."""
    return find_unit(out, rank, k, sources, key)[0]
