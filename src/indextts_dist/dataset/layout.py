"""The names of a preprocessed dataset folder, written once: every stage spells them from here.

    DATA/
      dataset_info.json                 version, shards, splits, fingerprints, marker statistics
      global_conditioning.safetensors   the ONE conditioning (mean over every accepted clip)
      speaker_embeddings.safetensors    the second stage's speaker style (mean over the same clips)
                                        and the reference clip's ref_mel / prompt_condition
      reference/NAME                    a copy of that reference clip (the dataset needs no audio
                                        folder once preprocessed: move it anywhere)
      shard-RRR-KKKKK.tar               webdataset samples of unit K of rank R
      shard-RRR-KKKKK.cond.safetensors  the unit's conditioning sums
      shard-RRR-KKKKK.json              the unit's record (its clips, samples, rejects): commit marker
      rejects.jsonl                     every clip not in a shard, with its reason
      transcripts_verbatim.csv          the transcripts, in the `--transcripts` format

Imports nothing heavy, so that diagnosing or packaging a model can name these without loading the
pipeline.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CONDITIONING_FILE",
    "DATASET_VERSION",
    "INFO_FILE",
    "REFERENCE_DIR",
    "REJECTS_FILE",
    "SPEAKER_EMBEDDINGS_FILE",
    "TRANSCRIPTS_FILE",
    "UNIT_RECORD_GLOB",
    "unit_stem",
]

DATASET_VERSION = "v2_pattern_conditioned"
"""A dataset built with ONE global conditioning (the recipe's "v2"); trainers refuse any other."""
INFO_FILE = "dataset_info.json"
CONDITIONING_FILE = "global_conditioning.safetensors"
SPEAKER_EMBEDDINGS_FILE = "speaker_embeddings.safetensors"
"""Absent when preprocess had no second stage (official preset without its weights, older datasets)."""
REFERENCE_DIR = "reference"
REJECTS_FILE = "rejects.jsonl"
TRANSCRIPTS_FILE = "transcripts_verbatim.csv"
UNIT_RECORD_GLOB = "shard-*.json"


def unit_stem(out: Path, rank: int, k: int) -> Path:
    """`out/shard-RRR-KKKKK`: add `.tar`, `.cond.safetensors` or `.json`."""
    return out / f"shard-{rank:03d}-{k:05d}"
