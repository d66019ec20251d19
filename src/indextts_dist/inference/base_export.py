"""A fully fine-tuned package as a base GPT file: how a mini base pretrained here becomes the base
of the adapters trained on top of it.

Full fine-tuning trains the GPT without its conditioning encoders (the conditioning is computed
by preprocess, on the encoders of the base it started from). A base file needs both: the package's
fine-tuned weights, and the starting base's encoders — the very ones that computed the
conditionings the fine-tuned GPT learned to read, so a dataset preprocessed on the exported base
gives its adapters conditionings of the same kind. Written as `FOLDER/gpt.pth` (a plain state dict,
read back with `weights_only=True`), the name `--weights-dir` looks for.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..model import build_model
from ..placement import to_host
from ..tracking.package import PackageError, PackageFiles, verify_package
from ..utils.atomic import atomic_write_bytes
from ..weights_layout import WeightsLayout
from .base_model import weights_file

__all__ = ["export_base"]


def export_base(package_dir: str | Path, out_dir: str | Path, weights_dir: str | Path | None = None) -> Path:
    """Write `out_dir/gpt.pth` from a `method: full` package; returns its path."""
    files = PackageFiles(Path(package_dir))
    manifest = verify_package(files.root)
    if manifest.get("method") != "full":
        method = manifest.get("method")
        raise PackageError(f"{files.root}: not a full fine-tuning package (method {method!r})")
    preset = manifest["preset"]
    start = weights_file(preset, weights_dir)
    model = build_model(preset, start, seed=int(manifest.get("seed", 0)))  # with the starting encoders
    state = model.state_dict()
    tuned = load_file(str(files.full_weights))
    unknown = sorted(set(tuned) - set(state))
    if unknown:
        raise PackageError(f"{files.full_weights}: {unknown[0]!r} is not a weight of the {preset} GPT")
    state.update(tuned)
    target = WeightsLayout(Path(out_dir)).gpt
    buffer = io.BytesIO()
    torch.save({k: to_host(v).contiguous() for k, v in state.items()}, buffer)
    return atomic_write_bytes(target, buffer.getvalue())
