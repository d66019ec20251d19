"""The conditioning contract: per-clip sums -> ONE all-reduce -> mean -> file, and its checks.

One speaker-latent block and one emotion vector shared by every sample (`global_conditioning.safetensors`),
plus the second stage's speaker style averaged the same way (written by preprocess beside it). Every
stage goes through here: preprocess sums, reduces and saves; train, generate and packaging load and
check (`check_base`: one base-fingerprint rule for all of them).
"""

from .checks import BASE_KEY, check_base, check_speaker_embeddings, speaker_metadata
from .reduce import all_reduce_sums
from .store import ConditioningError, GlobalConditioning, load_conditioning, save_conditioning
from .sums import ConditioningSums, load_sums, save_sums

__all__ = [
    "BASE_KEY",
    "ConditioningError",
    "ConditioningSums",
    "GlobalConditioning",
    "all_reduce_sums",
    "check_base",
    "check_speaker_embeddings",
    "load_conditioning",
    "load_sums",
    "save_conditioning",
    "save_sums",
    "speaker_metadata",
]
