"""`indextts-dist verify-reference --kind gpt`: passes on the official reference, fails on any change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts_dist.cli.main import main
from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.model import ConditionModuleConfig, GPTConfig, UnifiedVoice


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def verify(tensors: Path, config: Path, capsys: pytest.CaptureFixture) -> Result:
    """The CLI in-process (the subprocess test below covers the installed entry point)."""
    code = main(["verify-reference", str(tensors), "--config", str(config), "--kind", "gpt"])
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def test_shipped_reference_passes_through_the_installed_command(indextts2_dir):
    exe = Path(sys.executable).parent / "indextts-dist"
    cmd = [str(exe), "verify-reference", str(indextts2_dir / "reference_tiny.safetensors"),
           "--config", str(indextts2_dir / "reference_tiny.json"), "--kind", "gpt"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    assert lines[-1] == "PASS 11/11"
    names = {line.split()[0] for line in lines[:-1]}
    assert names == {
        "spk_latents", "emo_raw", "emo_vec", "text_inputs", "text_targets", "mel_inputs",
        "mel_targets", "text_logits", "mel_logits", "mel_latents", "greedy_codes",
    }  # fmt: skip
    assert all(line.split()[2] == "ok" for line in lines[:-1])


def _perturbation_targets() -> list[str]:
    """Every input and output tensor, and the first tensor of every top-level model module."""
    from conftest import shared_dir

    names = load_file(str(shared_dir() / "indextts2" / "reference_tiny.safetensors")).keys()
    chosen, modules = [], set()
    for name in sorted(names):
        module = name.split(".")[1]
        if not name.startswith("model.") or module not in modules:
            chosen.append(name)
            modules.add(module)
    return chosen


@pytest.mark.parametrize("tensor", _perturbation_targets())
def test_perturbed_reference_fails(tmp_path, indextts2_dir, capsys, tensor):
    tensors = load_file(str(indextts2_dir / "reference_tiny.safetensors"))
    value = tensors[tensor].clone()
    if value.is_floating_point():
        value += 0.5
    else:  # the first element is always a real (non-padding) position
        value.view(-1)[0] += 1 if value.view(-1)[0] < 2 else -1
    tensors[tensor] = value
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    shutil.copy(indextts2_dir / "reference_tiny.json", tmp_path / "ref.json")
    res = verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", capsys)
    assert res.returncode == 1, res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith("FAIL ")
    assert " FAIL" in res.stdout


def test_missing_model_key_is_one_line_error(tmp_path, indextts2_dir, capsys):
    tensors = load_file(str(indextts2_dir / "reference_tiny.safetensors"))
    del tensors["model.final_norm.bias"]
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    res = verify(tmp_path / "ref.safetensors", indextts2_dir / "reference_tiny.json", capsys)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "indextts-dist verify-reference: error: "
        "reference model.*: missing key 'final_norm.bias' (1 missing in all)"
    )
    assert "Traceback" not in res.stderr


@torch.no_grad()
def _write_reference_at_another_config(out: Path) -> None:
    """A reference in the same format at a different config, computed through the public model API."""
    cfg = GPTConfig(
        model_dim=48, heads=3, layers=3, max_text_tokens=20, max_mel_tokens=40,
        number_text_tokens=50, number_mel_codes=34, start_mel_token=32, stop_mel_token=33,
        condition_num_latent=32, checkpointing=False,
        condition_module=ConditionModuleConfig(
            output_size=24, linear_units=40, attention_heads=2, num_blocks=1
        ),
        emo_condition_module=ConditionModuleConfig(
            output_size=16, linear_units=32, attention_heads=2, num_blocks=2
        ),
    )  # fmt: skip
    torch.manual_seed(3)
    model = UnifiedVoice(cfg).eval()
    torch.nn.init.normal_(model.speed_emb.weight)
    feats, feat_lengths = torch.randn(3, 33, 1024), torch.tensor([33, 20, 9])
    text_ids, text_lengths = torch.randint(2, 50, (3, 9)), torch.tensor([9, 4, 6])
    codes, code_lengths = torch.randint(0, 32, (3, 15)), torch.tensor([15, 15, 3])
    spk = model.get_conditioning(feats, feat_lengths)
    raw = model.get_emo_raw(feats, feat_lengths)
    emo = model.get_emo_vec(feats, feat_lengths)
    tf = model(model.build_prefix(spk, emo), text_ids, text_lengths, codes, code_lengths)
    text_in, text_tg = model.align_text(text_ids, text_lengths)
    mel_in, mel_tg = model.align_mel(codes, code_lengths)
    greedy = generate_codes(model, model.build_prefix(spk[:1], emo[:1]), [text_ids[0].tolist()],
                            DecodingConfig.greedy(10))  # fmt: skip
    # The official output keeps the stop code and pads with it up to the cap.
    greedy_codes = torch.full((1, 10), cfg.stop_mel_token)
    greedy_codes[0, : greedy.codes[0].numel()] = greedy.codes[0]
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({
        "input.feats": feats, "input.feat_lengths": feat_lengths, "input.text_ids": text_ids,
        "input.text_lengths": text_lengths, "input.codes": codes, "input.code_lengths": code_lengths,
        "output.spk_latents": spk, "output.emo_raw": raw, "output.emo_vec": emo,
        "output.text_inputs": text_in, "output.text_targets": text_tg,
        "output.mel_inputs": mel_in, "output.mel_targets": mel_tg,
        "output.text_logits": tf.text_logits.transpose(1, 2).contiguous(),
        "output.mel_logits": tf.mel_logits.transpose(1, 2).contiguous(),
        "output.mel_latents": tf.mel_latents.contiguous(),
    })  # fmt: skip
    tensors["output.greedy_codes"] = greedy_codes
    save_file(tensors, str(out / "ref.safetensors"))
    (out / "ref.json").write_text(json.dumps({"config": cfg.to_dict()}))


def test_any_config_in_the_format(tmp_path, capsys):
    _write_reference_at_another_config(tmp_path)
    res = verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", capsys)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == "PASS 11/11"
    tensors = load_file(str(tmp_path / "ref.safetensors"))
    tensors["output.spk_latents"][2, 0, 0] += 1e-3
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    res = verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", capsys)
    assert res.returncode == 1
    assert res.stdout.strip().splitlines()[-1] == "FAIL 1/11"
