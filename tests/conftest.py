"""Shared fixtures: where the official reference files live, and the tiny reference model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from indextts_dist.model import GPTConfig, UnifiedVoice, strict_load

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`$INDEXTTS_SHARED_DIR`, else the `shared/` folder beside the checkout (as on CI)."""
    return Path(os.environ.get("INDEXTTS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def indextts2_dir() -> Path:
    path = shared_dir() / "indextts2"
    if not path.is_dir():
        pytest.fail(f"reference folder {path} is missing (set INDEXTTS_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def indextts25_dir() -> Path:
    path = shared_dir() / "indextts2_5"
    if not path.is_dir():
        pytest.fail(f"reference folder {path} is missing (set INDEXTTS_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def reference_tiny(indextts2_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(str(indextts2_dir / "reference_tiny.safetensors"))
    meta = json.loads((indextts2_dir / "reference_tiny.json").read_text())
    return tensors, meta


@pytest.fixture(scope="session")
def reference_model(reference_tiny) -> UnifiedVoice:
    tensors, meta = reference_tiny
    model = UnifiedVoice(GPTConfig.from_dict(meta["config"])).eval()
    strict_load(model, {k[6:]: v.float() for k, v in tensors.items() if k.startswith("model.")})
    return model
