"""IndexTTS-2.5's EnhancedCodec: every output of reference_codec25_tiny.*, the official 243-key layout,
strict loading of a codec.pth that also carries optimizer state, and 25 Hz codes / 50 Hz decode."""

from __future__ import annotations

import json

import pytest
import torch

from indextts_dist.codec import (
    CodecConfig,
    EnhancedCodec,
    RepCodec,
    build_codec,
    codec_fingerprint,
    codec_preset,
    load_codec,
)
from indextts_dist.model import CheckpointError, preset
from indextts_dist.reference import compare_outputs, load_reference
from indextts_dist.reference.codec import CODEC_ATOL, recompute_codec_v25


@pytest.fixture(scope="module")
def ref(indextts25_dir):
    return load_reference(
        indextts25_dir / "reference_codec25_tiny.safetensors", indextts25_dir / "reference_codec25_tiny.json"
    )


def test_every_reference_output_matches(ref):
    checks = compare_outputs(ref.outputs, recompute_codec_v25(ref), CODEC_ATOL)
    assert [c.line() for c in checks if not c.ok] == []
    assert len(checks) == len(ref.outputs) == 10


@torch.no_grad()
def test_public_api_rates_and_lengths(ref):
    codec = load_codec(ref.model, ref.meta["config"] | {"downsample_scale": 2})
    assert isinstance(codec, EnhancedCodec) and not codec.training
    x = ref.inputs["x"]  # T = 41, odd on purpose
    codes, _ = codec.quantize(x)
    assert codes.shape == (2, 21) and torch.equal(codes, ref.outputs["codes"])  # ceil(T/2): 25 Hz
    assert codec.decode(codes).shape == (2, 42, 256)  # back to 50 Hz, 2T'
    x_rec, indices, _ = codec.reconstruct(x)
    assert x_rec.shape == (2, 40, 256) and indices.shape == (1, 2, 20)  # training drops the odd frame
    # Each item decodes alone exactly as in the batch (decode is batch-correct).
    single = codec.decode(codes[1:])
    assert (single - codec.decode(codes)[1:]).abs().max() <= 1e-5


def test_official_config_has_the_manifest_layout(indextts25_dir):
    manifest = json.loads((indextts25_dir / "codec_v25_state_dict_shapes.json").read_text())
    cfg = CodecConfig.from_dict(manifest["config"])
    assert cfg == codec_preset("official-v2.5")
    with torch.device("meta"):
        model = EnhancedCodec(cfg)
    state = model.state_dict()
    assert len(state) == manifest["num_keys"] == 243
    assert list(state) == list(manifest["state_dict"])  # same keys, same registration order
    assert {k: list(v.shape) for k, v in state.items()} == {
        k: v["shape"] for k, v in manifest["state_dict"].items()
    }
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"] == 50_583_312
    by_module = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    assert by_module == manifest["parameters_by_top_module"]
    assert codec_preset("tiny-v2.5").codebook_size == preset("tiny-v2.5").codebook_size
    with pytest.raises(ValueError, match="RepCodec needs downsample_scale=1"):
        RepCodec(cfg)


class _Unsafe:
    """Unpickling this would run code; `weights_only=True` must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_codec_pth_with_optimizer_state_loads_strictly_and_unsafe_files_are_refused(tmp_path):
    codec = build_codec("tiny-v2.5", seed=5)
    state = codec.state_dict()
    optimizer = torch.optim.AdamW(codec.parameters())
    codec.decode(torch.tensor([[1, 2, 3]])).sum().backward()
    optimizer.step()
    # The released codec.pth: weights under "model" beside the optimizer's moments (SPEC_2_5 §2).
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "step": 1}, tmp_path / "codec.pth")
    loaded = load_codec(tmp_path / "codec.pth", "tiny-v2.5")
    assert codec_fingerprint(loaded) == codec_fingerprint(state)
    torch.save({"model": state, "hook": _Unsafe()}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match=r"unsafe\.pth: not a readable checkpoint"):
        load_codec(tmp_path / "unsafe.pth", "tiny-v2.5")
    v2 = build_codec("tiny", seed=5)
    torch.save(v2.state_dict(), tmp_path / "v2.pth")
    with pytest.raises(CheckpointError, match=r"v2\.pth: missing key 'down.weight'"):
        load_codec(tmp_path / "v2.pth", "tiny-v2.5")
    with pytest.raises(CheckpointError, match=r"needs its weights file \(codec.pth\)"):
        build_codec("official-v2.5")
