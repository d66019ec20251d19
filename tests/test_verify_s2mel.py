"""`indextts-dist verify-reference --kind s2mel`: passes on the shipped reference, fails on any change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from indextts_dist.cli.main import main

NAME = "reference_s2mel_tiny"


def _run(tensors: Path, config: Path, capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    code = main(["verify-reference", str(tensors), "--config", str(config), "--kind", "s2mel"])
    return code, capsys.readouterr().out.strip().splitlines()


def test_shipped_reference_passes(indextts2_dir: Path, capsys: pytest.CaptureFixture) -> None:
    tensors = indextts2_dir / f"{NAME}.safetensors"
    code, lines = _run(tensors, indextts2_dir / f"{NAME}.json", capsys)
    n_outputs = sum(1 for k in load_file(str(tensors)) if k.startswith("output."))
    assert code == 0, "\n".join(lines)
    assert lines[-1] == f"PASS {n_outputs}/{n_outputs}"
    assert n_outputs == 54
    names = {line.split()[0] for line in lines[:-1]}
    assert {n.split(".")[0] for n in names} == {"frontend", "campplus", "bigvgan", "s2mel"}
    assert all(line.split()[2] == "ok" for line in lines[:-1])


# (tensor to perturb, an output that must then fail): one input per output group (an integer one
# included) and one weight per model part, each chosen so that it really reaches the outputs.
CASES = [
    ("input.frontend.wav_22k", "frontend.fbank"),
    ("input.campplus.feat", "campplus.style"),
    ("input.bigvgan.mel", "bigvgan.wav"),
    ("input.s2mel.codes", "s2mel.content_emb"),
    ("input.s2mel.noise", "s2mel.mel"),
    ("model.s2mel.cfm.estimator.cond_projection.bias", "s2mel.est_cond_proj"),
    ("model.codec.quantizer.quantizers.0.codebook.weight", "s2mel.S_ref"),
    ("model.campplus.head.bn1.bias", "campplus.head"),
    ("model.bigvgan.conv_pre.bias", "bigvgan.conv_pre"),
]


@pytest.mark.parametrize(("target", "must_fail"), CASES, ids=[c[0] for c in CASES])
def test_any_perturbation_fails(
    indextts2_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, target: str, must_fail: str
) -> None:
    tensors = load_file(str(indextts2_dir / f"{NAME}.safetensors"))
    value = tensors[target].clone()
    if value.is_floating_point():
        value += 0.5
    else:
        flat = value.view(-1)
        flat[0] = 1 if flat[0] == 0 else 0  # stays a valid code / length index
    tensors[target] = value
    path = tmp_path / f"{NAME}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    config = tmp_path / f"{NAME}.json"
    shutil.copy(indextts2_dir / f"{NAME}.json", config)

    code, lines = _run(path, config, capsys)
    assert code == 1, "\n".join(lines)
    assert lines[-1].startswith("FAIL ")
    failed = {line.split()[0] for line in lines[:-1] if line.split()[2] == "FAIL"}
    assert must_fail in failed, f"{target}: failed {sorted(failed)}"
