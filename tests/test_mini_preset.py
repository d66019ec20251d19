"""The mini preset (the size that learns on CPUs) and full fine-tuning packages, without training.

A full package is made by hand from a perturbed tiny GPT (what `train --method full` exports), then
loaded (`load_package` gives exactly those weights; `without_adapter()` the untouched base) and
turned into a base GPT file (`export_base`: the tuned weights plus the starting base's encoders).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from indextts_dist.codec import codec_preset
from indextts_dist.conditioning import GlobalConditioning, save_conditioning
from indextts_dist.inference.base_export import export_base
from indextts_dist.inference.loaded import load_package
from indextts_dist.model import (
    MINI_LABEL,
    RANDOM_PRESETS,
    TINY_LABEL,
    base_fingerprint,
    build_model,
    preset,
    preset_label,
)
from indextts_dist.text import tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import PackageError, package_model
from indextts_dist.tracking.package import FULL_WEIGHTS_FILE


def test_mini_is_a_learnable_size_with_a_large_enough_codebook() -> None:
    cfg = preset("mini")
    assert (cfg.layers, cfg.model_dim) == (4, 256) and "mini" in RANDOM_PRESETS
    assert codec_preset("mini").codebook_size == cfg.number_mel_codes - 2 == 1024
    assert cfg.number_text_tokens == preset("tiny").number_text_tokens  # the tiny BPE
    assert preset_label("mini") == MINI_LABEL and "not IndexTTS2 quality" in MINI_LABEL
    assert preset_label("tiny") == TINY_LABEL and preset_label("official-v2") is None
    a, b = build_model("mini", seed=0), build_model("mini", seed=0)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.fixture()
def full_package(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tuned = build_model("tiny", with_conditioning_encoders=False).state_dict()
    tuned = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in tuned.items()}
    (tmp_path / "ckpt").mkdir()
    save_file(tuned, str(tmp_path / "ckpt" / FULL_WEIGHTS_FILE))
    cond = GlobalConditioning(
        torch.randn(32, 64, generator=gen),
        torch.randn(64, generator=gen),
        {"base_model_fingerprint": base_fingerprint("tiny"), "method": "mean"},
    )
    save_conditioning(cond, tmp_path / "global_conditioning.safetensors")
    tiny_tokenizer()
    sf.write(tmp_path / "speaker.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000)
    package = package_model(
        tmp_path / "package",
        adapter_dir=tmp_path / "ckpt",
        conditioning_path=tmp_path / "global_conditioning.safetensors",
        tokenizer_path=tiny_model_path(),
        gpt_config=preset("tiny"),
        preset="tiny",
        seed=0,
        base_fingerprint=base_fingerprint("tiny"),
        params={},
        selection={"select": "last"},
        reference_clips=[tmp_path / "speaker.wav"],
        dataset_info={"version": "v2_pattern_conditioned"},
        method="full",
        conditioning_kind="per-clip",
    )
    return package, tuned


def test_a_full_package_loads_its_own_weights_and_exports_a_base(full_package, tmp_path) -> None:
    package, tuned = full_package
    model = load_package(package)
    assert model.manifest["method"] == "full" and model.conditioning_kind == "per-clip"
    state = model.model.state_dict()
    assert all(torch.equal(state[k], tuned[k]) for k in tuned)
    base = model.without_adapter().model.state_dict()
    assert not torch.equal(base["gpt.h.0.attn.c_attn.weight"], tuned["gpt.h.0.attn.c_attn.weight"])
    path = export_base(package, tmp_path / "base")
    exported = build_model("tiny", path)  # loads strictly, encoders included
    seeded = build_model("tiny").state_dict()
    for k, v in exported.state_dict().items():
        assert torch.equal(v, tuned[k] if k in tuned else seeded[k]), k
    assert base_fingerprint("tiny", path) != base_fingerprint("tiny")


def test_a_lora_package_is_not_a_base(full_package, tmp_path) -> None:
    package, _ = full_package
    manifest = (package / "manifest.json").read_text().replace('"method": "full"', '"method": "lora"')
    (package / "manifest.json").write_text(manifest)
    with pytest.raises(PackageError, match="not a full fine-tuning package"):
        export_base(package, tmp_path / "base")
    with pytest.raises(PackageError, match="unknown training method"):
        package_model(
            tmp_path / "x",
            adapter_dir=tmp_path,
            conditioning_path=tmp_path,
            tokenizer_path=tmp_path,
            gpt_config=preset("tiny"),
            preset="tiny",
            seed=0,
            base_fingerprint="",
            params={},
            selection={},
            reference_clips=[],
            dataset_info=None,
            method="half",
        )
