"""`diagnose` on real tiny packages: a trained-looking adapter (random non-zero B) and a fresh one (B = 0).

The adapters are real PEFT LoRA files made here rather than by the trainer, so the test takes seconds;
the conditioning, tokenizer, manifest and reference clip are the real package pieces.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from indextts_dist.cli import diagnose as diagnose_cli
from indextts_dist.cli.main import USER_ERRORS
from indextts_dist.conditioning import GlobalConditioning, load_conditioning, save_conditioning
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.adapter_norms import NOTHING_LEARNED, adapter_norms
from indextts_dist.inference.diagnose import DATASET_VERSION, check_dataset, diagnose, format_table
from indextts_dist.inference.loaded import load_package
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import base_fingerprint, build_model, preset
from indextts_dist.text import TextTokenizer, tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import PackageError, package_model, verify_package

pytestmark = pytest.mark.slow

TEXTS = ["Well [UH] I think [PAUSE] we should go.", "Hello there."]
DECODING = DecodingConfig(seed=0, num_beams=1, max_new_tokens=24)
PAUSE_CODES = {"3": 12, "17": 5, "40": 2}
RANK, ALPHA = 4, 8
LAYER0 = "gpt.h.0.attn.c_attn"


def _adapter(root: Path, b_scale: float) -> Path:
    model = apply_lora(
        build_model("tiny", with_conditioning_encoders=False),
        LoraSettings(rank=RANK, alpha=ALPHA, dropout=0.0),
    )
    if b_scale:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=gen) * b_scale)
    model.save_pretrained(str(root), safe_serialization=True)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("inputs")
    gen = torch.Generator().manual_seed(1)
    cond = GlobalConditioning(
        torch.randn(32, 64, generator=gen),
        torch.randn(64, generator=gen),
        {"base_model_fingerprint": base_fingerprint("tiny"), "method": "mean", "num_clips": "3"},
    )
    save_conditioning(cond, root / "global_conditioning.safetensors")
    tiny_tokenizer()
    sf.write(root / "speaker.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000)
    return {
        "conditioning_path": root / "global_conditioning.safetensors",
        "tokenizer_path": tiny_model_path(),
        "gpt_config": preset("tiny"),
        "preset": "tiny",
        "seed": 0,
        "base_fingerprint": base_fingerprint("tiny"),
        "params": {"lora": {"rank": RANK, "alpha": ALPHA}},
        "selection": {"select": "last", "step": 10},
        "reference_clips": [root / "speaker.wav"],
        "dataset_info": {
            "version": DATASET_VERSION,
            "markers": {"counts": {"[PAUSE]": 4, "[UH]": 2}, "pause_codes": PAUSE_CODES},
        },
    }


@pytest.fixture(scope="module")
def trained(inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    return package_model(root / "package", adapter_dir=_adapter(root / "adapter", 0.2), **inputs)


@pytest.fixture(scope="module")
def fresh(inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    info = {"version": DATASET_VERSION, "markers": {"counts": {}}}  # no pause codes recorded
    return package_model(
        root / "package", adapter_dir=_adapter(root / "adapter", 0.0), **{**inputs, "dataset_info": info}
    )


@pytest.fixture(scope="module")
def trained_report(trained: Path) -> dict:
    return diagnose(trained, TEXTS, DECODING)


def _cli(argv: list[str]) -> tuple[int, str]:
    """`indextts-dist diagnose ...` as `cli.main.main` runs it: user errors become one line, exit 2."""
    parser = argparse.ArgumentParser(prog="indextts-dist")
    diagnose_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["diagnose", *argv])
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            code = int(args.func(args))
        except USER_ERRORS as exc:
            message = str(exc)
            assert "\n" not in message, message
            return 2, message
    return code, out.getvalue()


def test_norms_match_a_hand_computation(trained: Path, trained_report: dict) -> None:
    tensors = load_file(str(trained / "adapter" / "adapter_model.safetensors"))
    a = tensors[f"base_model.model.{LAYER0}.lora_A.weight"].double()
    b = tensors[f"base_model.model.{LAYER0}.lora_B.weight"].double()
    want = float(torch.linalg.matrix_norm(ALPHA / RANK * (b @ a)))
    row = next(m for m in trained_report["adapter"]["modules"] if m["module"] == LAYER0)
    assert row["norm_delta"] == pytest.approx(want, rel=1e-9)
    assert row["norm_a"] == pytest.approx(float(a.norm()), rel=1e-6)
    assert row["norm_b"] == pytest.approx(float(b.norm()), rel=1e-6)
    assert (row["layer"], row["kind"], row["scale"]) == (0, "attn.c_attn", ALPHA / RANK)
    modules = trained_report["adapter"]["modules"]
    assert len(modules) == 2 * 4 and not trained_report["adapter"]["zero_modules"]
    layer0 = sum(m["norm_delta"] ** 2 for m in modules if m["layer"] == 0) ** 0.5
    assert trained_report["adapter"]["by_layer"]["0"] == pytest.approx(layer0)


def _api_codes(package: Path) -> dict[str, list[list[int]]]:
    """The codes of the Python API on TEXTS with DECODING, with the adapter and without it."""
    adapted = load_package(package)
    base = adapted.without_adapter()
    return {
        "adapted": [r.codes.tolist() for r in adapted(TEXTS, DECODING)],
        "base": [r.codes.tolist() for r in base(TEXTS, DECODING)],
    }


def _stats_by_hand(codes: list[list[int]], pause: set[int]) -> dict:
    """diagnose's numbers recomputed from the codes alone: a text stopped when it has fewer codes
    than the cap (a capped one has exactly the cap), its tokens are the tokenizer's own count."""
    tokenizer = TextTokenizer(tiny_model_path())
    flat = [c for text_codes in codes for c in text_codes]
    tokens = sum(len(tokenizer.encode(t)) for t in TEXTS)
    return {
        "texts": len(codes),
        "codes": len(flat),
        "text_tokens": tokens,
        "codes_per_text_token": pytest.approx(len(flat) / tokens),
        "stop_rate": pytest.approx(sum(len(c) < DECODING.max_new_tokens for c in codes) / len(codes)),
        "pause_code_share": pytest.approx(sum(c in pause for c in flat) / len(flat)),
    }


def test_trained_package_report(trained_report: dict, trained: Path) -> None:
    assert trained_report["problems"] == []
    cond = trained_report["conditioning"]
    assert cond["matches"] is True and cond["base_matches"] is True
    assert trained_report["dataset"]["ok"] and trained_report["dataset"]["pause_codes"] == [3, 17, 40]
    stats = trained_report["statistics"]
    api = _api_codes(trained)
    for side in ("base", "adapted"):
        assert [t["semantic_codes"] for t in stats[side]["per_text"]] == api[side]  # what users get
        want = _stats_by_hand(api[side], {int(c) for c in PAUSE_CODES})
        assert {k: stats[side][k] for k in want} == want, side
    assert stats["delta"]["stop_rate"] == stats["adapted"]["stop_rate"] - stats["base"]["stop_rate"]
    assert stats["base"] != stats["adapted"]  # the non-zero adapter changes what is generated
    assert diagnose(trained, TEXTS, DECODING)["statistics"] == stats  # same seed, same numbers
    json.dumps(trained_report)  # JSON-serializable as it is
    table = format_table(trained_report)
    for needle in ("per-layer", "codes per text token", "stop rate", "pause-code share", "none found"):
        assert needle in table


def test_fresh_adapter_learned_nothing(fresh: Path) -> None:
    report = diagnose(fresh, TEXTS, DECODING)
    assert len(report["problems"]) == 1 and NOTHING_LEARNED in report["problems"][0]
    assert len(report["adapter"]["zero_modules"]) == 8 and report["adapter"]["total_norm"] == 0
    stats = report["statistics"]  # B = 0: the merged model is the base, to the last code
    assert stats["base"] == stats["adapted"]
    assert stats["delta"]["codes_per_text_token"] == 0
    assert stats["base"]["pause_code_share"] == "n/a" and stats["delta"]["pause_code_share"] == "n/a"
    assert NOTHING_LEARNED in format_table(report)
    assert adapter_norms(fresh / "adapter").problems() == report["problems"]


def test_swapped_conditioning_is_one_clear_line(trained: Path, inputs: dict, tmp_path: Path) -> None:
    copy = tmp_path / "package"
    shutil.copytree(trained, copy)
    other = load_conditioning(inputs["conditioning_path"])
    other.gpt_conditioning = other.gpt_conditioning + 1.0
    other.metadata["num_clips"] = "7"
    save_conditioning(other, copy / "global_conditioning.safetensors")
    with pytest.raises(PackageError, match="does not match its sha256"):
        verify_package(copy)  # loading refuses it; diagnose says what it means

    report = diagnose(copy, TEXTS, DECODING)
    assert len(report["problems"]) == 1, report["problems"]
    line = report["problems"][0]
    assert "\n" not in line and "not the conditioning the adapter was trained with" in line
    assert "num_clips 3 -> 7" in line
    assert report["conditioning"]["matches"] is False and report["conditioning"]["base_matches"] is True
    assert "skipped" in report["statistics"]
    assert "DIFFERS" in format_table(report)

    other.metadata["base_model_fingerprint"] = "f" * 64
    save_conditioning(other, copy / "global_conditioning.safetensors")
    problems = diagnose(copy, TEXTS, DECODING)["problems"]
    assert len(problems) == 2 and "computed on base ffffffffffff" in problems[1]


def test_dataset_version_check() -> None:
    assert check_dataset({"dataset": {"version": DATASET_VERSION}})["problems"] == []
    old = check_dataset({"dataset": {"version": "v1"}})
    assert not old["ok"] and "not built with ONE global conditioning" in old["problems"][0]
    missing = check_dataset({"dataset": None})
    assert not missing["ok"] and "records no dataset_info.json" in missing["problems"][0]
    from indextts_dist.preprocess.dataset_info import DATASET_VERSION as PREPROCESS_VERSION

    assert DATASET_VERSION == PREPROCESS_VERSION


def test_cli_local_folder_json_and_table(trained: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n\n")
    common = ["--model", str(trained), "--texts", str(texts), "--num-beams", "1", "--max-codes", "24"]
    code, out = _cli([*common, "--json"])
    assert code == 0
    report = json.loads(out)
    assert report["statistics"]["decoding"]["seed"] == 0 and report["statistics"]["base"]["texts"] == 2
    code, out = _cli(common)
    assert code == 0 and "base vs adapted" in out and "problems: none found" in out


def test_cli_bad_input_is_one_line(trained: Path, fresh: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    assert _cli(["--model", str(trained), "--texts", str(empty)]) == (
        2,
        f"{empty}: no texts in the file (one text per line)",
    )
    code, message = _cli(["--model", str(tmp_path / "nowhere")])
    assert code == 2 and "no such package folder" in message
    code, message = _cli(["--model", str(tmp_path)])
    assert code == 2 and "not a model package" in message
    code, message = _cli(["--model", "models:/only-a-name"])
    assert code == 2 and "expected models:/NAME@ALIAS" in message
    code, out = _cli(["--model", str(fresh), "--num-beams", "1", "--max-codes", "8", "--strict"])
    assert code == 1 and NOTHING_LEARNED in out


def test_cli_registry_uri(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from indextts_dist.tracking import LocalMlflowServer, register_package

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    with LocalMlflowServer(tmp_path / "mlflow") as server:
        register_package(trained, tracking_uri=server.uri, name="diag-test", alias="candidate")
        common = ["--mlflow-uri", server.uri, "--num-beams", "1", "--max-codes", "8", "--json"]
        code, out = _cli(["--model", "models:/diag-test@candidate", *common])
        assert code == 0
        report = json.loads(out)
        assert report["package"] == "models:/diag-test@candidate" and report["problems"] == []
        assert _cli(["--model", "models:/diag-test/1", *common])[0] == 0
        code, message = _cli(["--model", "models:/diag-test@nope", *common])
        assert code == 2 and "has no alias 'nope'" in message
        code, message = _cli(["--model", "models:/no-such-model@candidate", *common])
        assert code == 2 and "no registered model named 'no-such-model'" in message
