"""Shared fixtures: where the official reference files live, and the tiny reference model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from indextts_dist.model import GPTConfig, UnifiedVoice, strict_load
from indextts_dist.text import CACHE_ENV, chinese_tn, default_zh_cache_dir

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


@pytest.fixture(scope="session")
def zh_cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session keeps the Chinese FSTs (fresh unless $INDEXTTS_DIST_CACHE is set); shared
    by the v2 and 2.5 front-end tests so the ~36 s build happens once per session."""
    return default_zh_cache_dir() if os.environ.get(CACHE_ENV) else tmp_path_factory.mktemp("tn") / "tn_zh"


@pytest.fixture(scope="session")
def zh_cache_dir(zh_cache_path: Path) -> Path:
    """The Chinese FST cache, built (or loaded) once per session."""
    chinese_tn(zh_cache_path)
    return zh_cache_path
