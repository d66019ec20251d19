"""What the trainer knows about a preprocessed dataset before reading any tar: shards and lengths.

`dataset_info.json` names the shards and the validation keys; each shard unit's JSON record holds its
samples' metadata (text and code lengths). From these every rank derives the same epoch length, so
all ranks run the same number of steps without talking to each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .layout import CONDITIONING_FILE, DATASET_VERSION, INFO_FILE, UNIT_RECORD_GLOB

__all__ = ["DatasetError", "DatasetManifest", "SampleMeta", "load_manifest"]


class DatasetError(UserError, ValueError):
    """A data folder the trainer cannot use as it is."""


@dataclass(frozen=True)
class SampleMeta:
    key: str
    shard: Path
    text_len: int
    code_len: int
    source: str
    duration_s: float


@dataclass
class DatasetManifest:
    root: Path
    info: dict
    shards: list[Path]
    samples: list[SampleMeta]
    val_keys: frozenset[str]

    @property
    def train_samples(self) -> list[SampleMeta]:
        return [s for s in self.samples if s.key not in self.val_keys]

    @property
    def val_samples(self) -> list[SampleMeta]:
        return [s for s in self.samples if s.key in self.val_keys]

    @property
    def language_id(self) -> int | None:
        """The `lang_embedding` row of the dataset's texts (2.5 datasets; None for v2 ones)."""
        value = self.info.get("text_language_id")
        return None if value is None else int(value)

    @property
    def conditioning_path(self) -> Path:
        return self.root / self.info.get("conditioning", CONDITIONING_FILE)


def load_manifest(root: str | Path) -> DatasetManifest:
    root = Path(root)
    info_path = root / INFO_FILE
    if not info_path.is_file():
        raise DatasetError(f"{info_path}: not found; run the preprocess job on your clips first")
    info = json.loads(info_path.read_text())
    if info.get("version") != DATASET_VERSION:
        raise DatasetError(
            f"{info_path}: version {info.get('version')!r} is not {DATASET_VERSION!r}: this dataset was not "
            "built with one global conditioning; re-run preprocess"
        )
    shards = [root / s["file"] for s in info.get("shards", [])]
    by_shard = {p.name: p for p in shards}
    samples = []
    for record_path in sorted(root.glob(UNIT_RECORD_GLOB)):
        record = json.loads(record_path.read_text())
        shard = by_shard.get(record.get("tar") or "")
        if shard is None:
            continue
        for meta in record["samples"]:
            samples.append(
                SampleMeta(
                    meta["id"], shard, meta["text_len"], meta["code_len"], meta["source"], meta["duration_s"]
                )
            )
    missing = [p for p in shards if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: shard listed in {INFO_FILE} is missing")
    if not samples:
        raise DatasetError(f"{root}: no training samples (dataset_info lists {len(shards)} shards)")
    val = frozenset(info.get("splits", {}).get("val", []))
    if not [s for s in samples if s.key not in val]:
        raise DatasetError(f"{root}: every sample is in the validation split; nothing to train on")
    return DatasetManifest(root, info, shards, samples, val)
