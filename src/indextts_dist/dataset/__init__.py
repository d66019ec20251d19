"""The contract between preprocess and train: the dataset folder's names, its sample schema, the
shard reader and writer, and the manifest a trainer derives from the folder. preprocess writes
through this package and train reads through it; neither imports the other."""

from . import layout
from .layout import *  # noqa: F403  (the names of the folder: `layout.__all__`)
from .manifest import DatasetError, DatasetManifest, SampleMeta, load_manifest
from .tar_io import CLIP_ARRAYS, iter_tar_samples, read_tar_samples, write_tar

__all__ = [
    *layout.__all__,
    "CLIP_ARRAYS",
    "DatasetError",
    "DatasetManifest",
    "SampleMeta",
    "iter_tar_samples",
    "load_manifest",
    "read_tar_samples",
    "write_tar",
]
