"""CAMPPlus: official key layout, strict loading, and equivalence with the reference fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts_dist.model.checkpoint import CheckpointError
from indextts_dist.speech.campplus import (
    CAMPPLUS_TINY,
    CAMPPlusConfig,
    build_campplus,
    load_campplus,
)

PREFIX = "model.campplus."
ATOL = 1e-4  # S2MEL.md (k): every float output within atol 1e-4
STAGES = (
    "head",
    "tdnn",
    "block1",
    "transit1",
    "block2",
    "transit2",
    "block3",
    "transit3",
    "out_nonlinear",
    "stats",
)


@pytest.fixture(scope="module")
def reference(indextts2_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(str(indextts2_dir / "reference_s2mel_tiny.safetensors"))
    meta = json.loads((indextts2_dir / "reference_s2mel_tiny.json").read_text())
    return tensors, meta


@pytest.fixture(scope="module")
def tiny_state(reference) -> dict[str, torch.Tensor]:
    tensors, _ = reference
    return {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}


def test_meta_build_matches_official_manifest(indextts2_dir: Path) -> None:
    manifest = json.loads((indextts2_dir / "campplus_state_dict_shapes.json").read_text())
    cfg = CAMPPlusConfig()
    assert {k: v for k, v in manifest["config"].items()} == cfg.to_dict()
    with torch.device("meta"):
        model = build_campplus(cfg)
    state = model.state_dict()
    expected = manifest["state_dict"]
    assert list(state) == list(expected)  # same keys, same registration order
    for key, entry in expected.items():
        assert list(state[key].shape) == entry["shape"], key
        assert str(state[key].dtype) == f"torch.{entry['dtype']}", key
    assert len(state) == manifest["num_keys"] == 937
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"]


def test_tiny_config_matches_reference(reference) -> None:
    _, meta = reference
    assert CAMPPlusConfig.from_dict(meta["config"]["campplus"]) == CAMPPLUS_TINY


def test_reference_outputs_match(reference, tiny_state) -> None:
    tensors, meta = reference
    model = load_campplus(tiny_state, meta["config"]["campplus"])
    assert not model.training
    stages: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        style = model(tensors["input.campplus.feat"], stages)
    for name in STAGES:
        ref = tensors[f"output.campplus.{name}"]
        assert stages[name].shape == ref.shape, name
        torch.testing.assert_close(stages[name], ref, atol=ATOL, rtol=0, msg=name)
    ref_style = tensors["output.campplus.style"]
    assert style.shape == ref_style.shape == (2, 32)
    torch.testing.assert_close(style, ref_style, atol=ATOL, rtol=0)


def test_load_from_file(tmp_path: Path, reference, tiny_state) -> None:
    tensors, _ = reference
    path = tmp_path / "campplus_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(path))
    model = load_campplus(path, CAMPPLUS_TINY)
    with torch.no_grad():
        style = model(tensors["input.campplus.feat"][:1])
    torch.testing.assert_close(style, tensors["output.campplus.style"][:1], atol=ATOL, rtol=0)


def test_missing_key_is_one_line_error(tiny_state) -> None:
    key = "xvector.block2.tdnnd3.cam_layer.linear1.bias"
    state = {k: v for k, v in tiny_state.items() if k != key}
    with pytest.raises(CheckpointError) as info:
        load_campplus(state, CAMPPLUS_TINY)
    message = str(info.value)
    assert "\n" not in message
    assert key in message and "missing" in message


def test_extra_key_and_wrong_shape_are_one_line_errors(tiny_state) -> None:
    state = dict(tiny_state)
    state["xvector.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected key 'xvector\.extra\.weight'") as info:
        load_campplus(state, CAMPPLUS_TINY)
    assert "\n" not in str(info.value)
    state = dict(tiny_state)
    state["xvector.dense.linear.weight"] = torch.zeros(33, 252, 1)
    with pytest.raises(CheckpointError, match=r"'xvector\.dense\.linear\.weight' has shape") as info:
        load_campplus(state, CAMPPLUS_TINY)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="has shape"):
        load_campplus(tiny_state)  # the official size does not fit the tiny weights


def test_rejects_bad_input_and_config() -> None:
    model = build_campplus(CAMPPLUS_TINY)
    with pytest.raises(ValueError, match="fbank"):
        model(torch.zeros(1, 40, 64))
    with pytest.raises(ValueError, match="config_str"):
        CAMPPlusConfig(config_str="batchnorm")
    with pytest.raises(ValueError, match="unknown CAMPPlus config key"):
        CAMPPlusConfig.from_dict({"feat_dim": 80, "memory_efficient": True})
