"""BigVGAN v2 generator: official layouts (meta build), strict loading, equivalence with the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts_dist.model.checkpoint import CheckpointError
from indextts_dist.speech.bigvgan import (
    BIGVGAN_TINY,
    BigVGAN,
    BigVGANConfig,
    fold_weight_norm,
    load_bigvgan,
)
from indextts_dist.speech.bigvgan_activations import kaiser_sinc_filter

PREFIX = "model.bigvgan."


@pytest.fixture(scope="module")
def manifest(indextts2_dir: Path) -> dict:
    return json.loads((indextts2_dir / "bigvgan_state_dict_shapes.json").read_text())


@pytest.fixture(scope="module")
def fixture(indextts2_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(str(indextts2_dir / "reference_s2mel_tiny.safetensors"))
    meta = json.loads((indextts2_dir / "reference_s2mel_tiny.json").read_text())
    wanted = {k: v for k, v in tensors.items() if "bigvgan" in k}
    return wanted, meta


@pytest.fixture(scope="module")
def tiny_state(fixture) -> dict[str, torch.Tensor]:
    tensors, _ = fixture
    return {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}


@pytest.fixture(scope="module")
def tiny_model(tiny_state) -> BigVGAN:
    return load_bigvgan(tiny_state, BIGVGAN_TINY)


def _meta_layout(weight_norm: bool) -> tuple[list[tuple[str, list[int]]], int]:
    with torch.device("meta"):
        model = BigVGAN(BigVGANConfig(), weight_norm=weight_norm)
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    return layout, sum(p.numel() for p in model.parameters())


def test_official_config_matches_manifest_config(manifest) -> None:
    assert BigVGANConfig.from_dict(manifest["config"]) == BigVGANConfig()
    assert BigVGANConfig().total_upsample == 256


def test_tiny_config_matches_fixture(fixture) -> None:
    _, meta = fixture
    assert BigVGANConfig.from_dict(meta["config"]["bigvgan"]) == BIGVGAN_TINY


def test_meta_build_weight_norm_layout(manifest) -> None:
    layout, params = _meta_layout(weight_norm=True)
    expected = [(k, v["shape"]) for k, v in manifest["state_dict"].items()]
    assert layout == expected  # same keys, order and shapes (783)
    assert len(layout) == manifest["num_keys"] == 783
    assert params == manifest["total_parameters"] == 112_231_249


def test_meta_build_folded_layout(manifest) -> None:
    layout, params = _meta_layout(weight_norm=False)
    expected = [(k, list(v)) for k, v in manifest["folded_shapes"].items()]
    assert layout == expected
    assert len(layout) == manifest["_meta"]["folded_num_keys"] == 667
    assert params == manifest["_meta"]["folded_total_parameters"] == 112_199_472


def test_kaiser_filter_equals_stored_buffers(tiny_state) -> None:
    filt = kaiser_sinc_filter()
    buffers = [v for k, v in tiny_state.items() if k.endswith(".filter")]
    assert len(buffers) == 2 * (6 * 3 * 6 + 1)
    for buf in buffers:
        assert torch.equal(buf, filt)


def test_reference_outputs_and_intermediates(fixture, tiny_model) -> None:
    tensors, meta = fixture
    atol = 1e-4
    assert "atol 1e-4" in meta["tolerance"]
    mel = tensors["input.bigvgan.mel"]
    with torch.no_grad():
        wav, taps = tiny_model.forward_with_intermediates(mel)
        assert torch.equal(wav, tiny_model(mel))
    names = {k[len("output.bigvgan.") :] for k in tensors if k.startswith("output.bigvgan.")} - {"act_out"}
    assert names == set(taps)
    for name in sorted(names):
        ref = tensors[f"output.bigvgan.{name}"]
        assert taps[name].shape == ref.shape, name
        diff = (taps[name] - ref).abs().max().item()
        assert diff <= atol, f"{name}: max abs diff {diff}"
    assert wav.shape == (2, 1, 24 * 256)


def test_reference_single_activation(fixture, tiny_model) -> None:
    tensors, _ = fixture
    with torch.no_grad():
        out = tiny_model.resblocks[0].activations[0](tensors["input.bigvgan.act_x"])
    torch.testing.assert_close(out, tensors["output.bigvgan.act_out"], atol=1e-4, rtol=0)


def test_folded_layout_loads_to_the_same_model(tiny_state, tiny_model) -> None:
    folded = fold_weight_norm(tiny_state)
    assert len(folded) == 783 - 116
    model = load_bigvgan(folded, BIGVGAN_TINY)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_load_from_files(tmp_path: Path, tiny_state, tiny_model) -> None:
    st_path = tmp_path / "bigvgan.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(st_path))
    pt_path = tmp_path / "bigvgan_generator.pt"
    torch.save({"generator": fold_weight_norm(tiny_state)}, pt_path)
    mel = torch.randn(1, 80, 3)
    with torch.no_grad():
        want = tiny_model(mel)
        for path in (st_path, pt_path):
            torch.testing.assert_close(load_bigvgan(path, BIGVGAN_TINY)(mel), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("resblocks.4.convs1.1.weight_g", "resblocks.4.convs1.1.weight_g"),
        ("ups.2.0.weight_v", "ups.2.0.weight_v"),
        ("resblocks.7.activations.3.upsample.filter", "resblocks.7.activations.3.upsample.filter"),
        ("activation_post.act.beta", "activation_post.act.beta"),
        ("conv_pre.bias", "conv_pre.bias"),
    ],
)
def test_missing_key_is_one_line_error(tiny_state, drop: str, named: str) -> None:
    state = {k: v for k, v in tiny_state.items() if k != drop}
    with pytest.raises(CheckpointError) as info:
        load_bigvgan(state, BIGVGAN_TINY)
    message = str(info.value)
    assert "\n" not in message and repr(named) in message


def test_missing_key_folded_layout(tiny_state) -> None:
    state = fold_weight_norm(tiny_state)
    del state["resblocks.11.convs2.0.weight"]
    with pytest.raises(CheckpointError, match=r"missing key 'resblocks\.11\.convs2\.0\.weight'"):
        load_bigvgan(state, BIGVGAN_TINY)


def test_unexpected_key_and_wrong_config(tiny_state) -> None:
    with pytest.raises(CheckpointError, match=r"unexpected key 'extra\.weight'"):
        load_bigvgan({**tiny_state, "extra.weight": torch.zeros(1)}, BIGVGAN_TINY)
    with pytest.raises(CheckpointError) as info:
        load_bigvgan(tiny_state)  # official size: shapes do not fit
    assert "\n" not in str(info.value) and "wrong config" in str(info.value)


@pytest.mark.parametrize("frames", [1, 7])
def test_output_length_is_frames_times_hop(tiny_model, frames: int) -> None:
    with torch.no_grad():
        wav = tiny_model(torch.randn(2, 80, frames))
    assert wav.shape == (2, 1, frames * 256)
    assert wav.abs().max() <= 1.0


def test_rejects_wrong_mel_shape(tiny_model) -> None:
    with pytest.raises(ValueError, match="mel"):
        tiny_model(torch.randn(1, 100, 4))
