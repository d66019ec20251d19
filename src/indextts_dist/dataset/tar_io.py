"""Shard tars: the sample schema on disk, one writer (preprocess) and one reader (train).

A sample is `__key__` (the clip's id), `text_ids.npy` (BPE ids, int), `codes.npy` (semantic codes,
int) and `json` (its metadata record), plus the clip's own conditioning: `cond_latents.npy`
(float32 [32, D], its perceiver latents) and `emo_vec.npy` (float32 [D]) — what per-clip ("v1")
training conditions on — and, when preprocess had a second stage, `style.npy` (float32 [S], its
CAMPPlus style: the training data's speaker similarity is measured from these). Tars are written
under a temp name and renamed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import webdataset as wds

__all__ = ["CLIP_ARRAYS", "iter_tar_samples", "read_tar_samples", "write_tar"]

CLIP_ARRAYS = ("cond_latents", "emo_vec", "style")
"""Per-clip float arrays a sample may carry (each as `NAME.npy`), beside its ids and codes."""


def write_tar(
    tar_path: Path,
    samples: Iterable[
        tuple[str, np.ndarray, np.ndarray, dict] | tuple[str, np.ndarray, np.ndarray, dict, dict]
    ],
) -> None:
    """(key, text_ids, codes, meta[, arrays]) per sample into `tar_path`, atomically; `arrays`
    maps names of CLIP_ARRAYS to the clip's arrays."""
    fd, tmp = tempfile.mkstemp(prefix=f".{tar_path.name}.", suffix=".tmp", dir=tar_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer = wds.TarWriter(fh)
            for key, text_ids, codes, meta, *rest in samples:
                record = {"__key__": key, "text_ids.npy": text_ids, "codes.npy": codes, "json": meta}
                for name, array in (rest[0] if rest else {}).items():
                    if name not in CLIP_ARRAYS:
                        raise ValueError(f"{name}: not a per-clip array of the sample schema")
                    record[f"{name}.npy"] = np.asarray(array, np.float32)
                writer.write(record)
            writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, tar_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _every_shard(src):
    """Splitting is done by the caller (one shard per call): take what is given on every rank."""
    yield from src


def iter_tar_samples(path: Path | str) -> Iterator[dict]:
    """Decoded samples of one shard, in file order: `__key__`, `text_ids.npy`, `codes.npy`, `json`."""
    dataset = wds.WebDataset(
        str(path),
        shardshuffle=False,
        nodesplitter=_every_shard,
        workersplitter=_every_shard,
        empty_check=False,
    )
    yield from dataset.decode()


def read_tar_samples(path: Path) -> list[dict]:
    return list(iter_tar_samples(path))
