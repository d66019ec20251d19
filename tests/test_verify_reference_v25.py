"""`indextts-dist verify-reference --kind gpt-v2.5|codec-v2.5`: PASS on the shipped 2.5 references,
FAIL on any change, a one-line error for the wrong kind, and any config in the format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts_dist.cli.main import main
from indextts_dist.codec import CodecConfig, EnhancedCodec
from indextts_dist.generate import DecodingConfig, generate_codes
from indextts_dist.model import ConditionModuleConfig, GPTConfig, UnifiedVoice

GPT_FILE, CODEC_FILE = "reference_v25_tiny", "reference_codec25_tiny"


def _verify(
    tensors: Path, config: Path, kind: str, capsys: pytest.CaptureFixture
) -> tuple[int, list[str], str]:
    code = main(["verify-reference", str(tensors), "--config", str(config), "--kind", kind])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err.strip()


@pytest.mark.parametrize(
    ("kind", "name", "count"), [("gpt-v2.5", GPT_FILE, 22), ("codec-v2.5", CODEC_FILE, 10)]
)
def test_shipped_references_pass(indextts25_dir, capsys, kind, name, count):
    code, lines, _ = _verify(
        indextts25_dir / f"{name}.safetensors", indextts25_dir / f"{name}.json", kind, capsys
    )
    assert code == 0 and lines[-1] == f"PASS {count}/{count}"


@pytest.mark.parametrize(
    ("kind", "name", "tensor"),
    [
        ("gpt-v2.5", GPT_FILE, "input.campplus"),
        ("gpt-v2.5", GPT_FILE, "input.langs"),
        ("gpt-v2.5", GPT_FILE, "input.text_ids_quirk"),
        ("gpt-v2.5", GPT_FILE, "model.lang_embedding.weight"),
        ("gpt-v2.5", GPT_FILE, "output.greedy_step_logits"),
        ("codec-v2.5", CODEC_FILE, "model.down.weight"),
        ("codec-v2.5", CODEC_FILE, "model.up.bias"),
        ("codec-v2.5", CODEC_FILE, "output.decoded"),
    ],
)
def test_perturbed_reference_fails(tmp_path, indextts25_dir, capsys, kind, name, tensor):
    tensors = load_file(str(indextts25_dir / f"{name}.safetensors"))
    value = tensors[tensor].clone()
    if value.is_floating_point():
        value += 0.5
    else:  # a language index or a real text id: another valid value
        value.view(-1)[0] += 1
    tensors[tensor] = value
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    shutil.copy(indextts25_dir / f"{name}.json", tmp_path / "ref.json")
    code, lines, _ = _verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", kind, capsys)
    assert code == 1 and lines[-1].startswith("FAIL ")


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        (
            "gpt",
            GPT_FILE,
            "reference model.*: is an IndexTTS-2.5 GPT checkpoint, but this model is IndexTTS-2",
        ),
        ("codec", CODEC_FILE, "reference config has downsample_scale=2, this kind needs 1"),
    ],
)
def test_v2_kind_on_a_v25_file_is_one_line_error(indextts25_dir, capsys, kind, name, message):
    code, _, err = _verify(
        indextts25_dir / f"{name}.safetensors", indextts25_dir / f"{name}.json", kind, capsys
    )
    assert (
        code == 2 and err.startswith(f"indextts-dist verify-reference: error: {message}") and "\n" not in err
    )


@torch.no_grad()
def _gpt_reference_at_another_config(out: Path) -> int:
    """A 2.5 GPT reference at REFERENCE_2_5's set-B sizes, computed through the public model API."""
    cfg = GPTConfig(
        model_dim=96, heads=6, layers=3, max_text_tokens=32, max_mel_tokens=96, number_text_tokens=230,
        number_mel_codes=98, start_mel_token=96, stop_mel_token=97, checkpointing=False,
        spk_cond_mode="campplus", emo_condition_module=ConditionModuleConfig(
            output_size=48, linear_units=96, attention_heads=4, num_blocks=2
        ),
    )  # fmt: skip
    torch.manual_seed(1)
    model = UnifiedVoice(cfg).eval()
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p += 0.02 * torch.randn(p.shape, generator=g)
    style, alpha = torch.randn(2, 192, generator=g), 0.35
    emo, emo_len = torch.randn(2, 57, 1024, generator=g), torch.tensor([57, 40])
    spk, spk_len = torch.randn(2, 49, 1024, generator=g), torch.tensor([49, 33])
    text, text_len = torch.randint(2, 230, (2, 15), generator=g), torch.tensor([15, 9])
    codes, code_len = torch.randint(0, 96, (2, 26), generator=g), torch.tensor([26, 17])
    langs = torch.tensor([3, 105])
    conds = model.build_prefix(model.project_style(style), model.get_emo_vec(emo, emo_len))
    tf = model(conds, text, text_len, codes, code_len, langs=langs)
    greedy = generate_codes(
        model, conds, [text[0].tolist(), text[1, :9].tolist()], DecodingConfig.greedy(20), [3, 105]
    )
    greedy_batch = torch.full((2, 20), cfg.stop_mel_token)
    for row, got in enumerate(greedy.codes):
        greedy_batch[row, : got.numel()] = got
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({
        "input.campplus": style, "input.alpha": torch.tensor(alpha), "input.langs": langs,
        "input.emo_feats": emo, "input.emo_feat_lengths": emo_len,
        "input.spk_feats": spk, "input.spk_feat_lengths": spk_len,
        "input.text_ids": text, "input.text_lengths": text_len,
        "input.codes": codes, "input.code_lengths": code_len, "output.conds": conds,
        "output.emo_vec_merged": model.merge_emo_vec(spk, emo, spk_len, emo_len, alpha),
        "output.text_logits": tf.text_logits.transpose(1, 2).contiguous(),
        "output.mel_logits": tf.mel_logits.transpose(1, 2).contiguous(),
        "output.mel_latents_lang": tf.mel_latents.contiguous(), "output.greedy_codes_batch": greedy_batch,
    })  # fmt: skip
    save_file(tensors, str(out / "ref.safetensors"))
    config = {k: v for k, v in cfg.to_dict().items() if k != "spk_cond_mode"}  # as the official files
    (out / "ref.json").write_text(json.dumps({"config": config}))
    return 6


@torch.no_grad()
def _codec_reference_at_another_config(out: Path) -> int:
    """A 2.5 codec reference at set-B sizes (codebook 96x6, hidden 128, vocos 48/96/3, even T)."""
    block = {"codebook_size": 96, "hidden_size": 128, "codebook_dim": 6, "vocos_dim": 48,
             "vocos_intermediate_dim": 96, "vocos_num_layers": 3}  # fmt: skip
    torch.manual_seed(4322)
    codec = EnhancedCodec(CodecConfig(**block, downsample_scale=2)).eval()
    x = torch.randn(2, 36, 128)
    codes, quantized = codec.quantize(x)
    tensors = {f"model.{k}": v.contiguous() for k, v in codec.state_dict().items()}
    tensors.update({"input.x": x, "output.codes": codes, "output.quantized": quantized.contiguous(),
                    "output.decoded": codec.decode(codes).contiguous()})  # fmt: skip
    save_file(tensors, str(out / "ref.safetensors"))
    (out / "ref.json").write_text(json.dumps({"config": block}))  # downsample_scale omitted, as official
    return 3


@pytest.mark.parametrize(
    ("kind", "writer", "perturb"),
    [
        ("gpt-v2.5", _gpt_reference_at_another_config, "output.mel_logits"),
        ("codec-v2.5", _codec_reference_at_another_config, "output.decoded"),
    ],
)
def test_any_config_in_the_format(tmp_path, capsys, kind, writer, perturb):
    count = writer(tmp_path)
    code, lines, err = _verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", kind, capsys)
    assert code == 0 and lines[-1] == f"PASS {count}/{count}", "\n".join(lines) + err
    tensors = load_file(str(tmp_path / "ref.safetensors"))
    tensors[perturb].view(-1)[-1] += 1e-3
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    code, lines, _ = _verify(tmp_path / "ref.safetensors", tmp_path / "ref.json", kind, capsys)
    assert code == 1 and lines[-1] == f"FAIL 1/{count}"
