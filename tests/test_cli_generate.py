"""`indextts-dist demo` and `generate` through the real CLI, and the conditioning file contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts_dist.cli.main import main
from indextts_dist.conditioning import (
    ConditioningError,
    GlobalConditioning,
    load_conditioning,
    save_conditioning,
)
from indextts_dist.model import preset


def test_conditioning_round_trip_and_refusals(tmp_path):
    cond = GlobalConditioning(torch.randn(32, 64), torch.randn(64), {"num_clips": "3", "method": "mean"})
    path = save_conditioning(cond, tmp_path / "global_conditioning.safetensors")
    back = load_conditioning(path, preset("tiny"))
    assert torch.equal(back.gpt_conditioning, cond.gpt_conditioning) and torch.equal(
        back.emo_vec, cond.emo_vec
    )
    assert back.metadata == {"num_clips": "3", "method": "mean"}
    assert [p.name for p in tmp_path.iterdir()] == ["global_conditioning.safetensors"]  # no temp leftovers
    with pytest.raises(
        ConditioningError, match=r"gpt_conditioning has shape \[32, 64\], the model needs \[32, 1280\]"
    ):
        load_conditioning(path, preset("official-v2"))
    with pytest.raises(ConditioningError, match="not found"):
        load_conditioning(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage!garbage!")
    with pytest.raises(ConditioningError, match="not a safetensors conditioning file"):
        load_conditioning(tmp_path / "bad.safetensors")


pytestmark = pytest.mark.slow  # runs the real `indextts-dist demo` end to end (still part of CI)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    exe = Path(sys.executable).parent / "indextts-dist"
    config = Path(__file__).resolve().parents[1] / "accelerate_config.cpu.yaml"
    cmd = [str(exe), "demo", "--out", str(out), "--accelerate-config", str(config)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "RANDOM weights" in res.stdout and "not speech" in res.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in res.stdout
    return out


def test_demo_runs_the_whole_pipeline(demo_dir):
    data = demo_dir / "data"
    cond = load_conditioning(data / "global_conditioning.safetensors", preset("tiny"))
    assert cond.metadata["method"] == "mean" and cond.metadata["num_clips"] == "8"
    info = json.loads((data / "dataset_info.json").read_text())
    assert info["counts"] == {"inputs": 8, "accepted": 8, "rejected": 0, "rejected_by_reason": {}}
    assert len(list(data.glob("shard-001-*.tar"))) == 1  # two preprocess ranks really ran
    assert (data / "rejects.jsonl").read_text() == "" and (data / "transcripts_verbatim.csv").is_file()
    manifest = json.loads((demo_dir / "run" / "model" / "manifest.json").read_text())
    assert manifest["selection"]["select"] == "best" and "RANDOM" in manifest["label"]
    assert manifest["speaker_embeddings"] == "speaker_embeddings.safetensors"
    assert (demo_dir / "run" / "model" / "adapter" / "adapter_model.safetensors").is_file()
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert "RANDOM" in summary["label"] and len(summary["outputs"]) == 3
    for item in summary["outputs"]:
        info = json.loads(Path(item["json"]).read_text())
        codes = np.load(Path(item["json"]).with_suffix(".codes.npy"))
        latents = np.load(Path(item["json"]).with_suffix(".latents.npy"))
        assert codes.dtype == np.int32 and codes.shape == (info["code_count"],)
        assert latents.shape == (codes.shape[0], 64)
        assert info["decoding"]["num_beams"] == 3 and info["decoding"]["top_k"] == 30
        assert info["model"] == "models:/demo-speaker@candidate"
        wav, rate = sf.read(Path(item["json"]).with_suffix(".wav"))
        assert rate == 22050 and len(wav) == (172 * info["code_count"]) // 100 * 256  # one segment each
    marker = json.loads((demo_dir / "codes" / "001.json").read_text())
    assert "'UH'" in marker["text_normalized"] and "'UM'" in marker["text_normalized"]
    assert summary["diagnose"] and (demo_dir / "diagnose.json").is_file()
    evaluation = json.loads(Path(summary["evaluate"]["json"]).read_text())  # the demo ends with evaluate
    assert "RANDOM" in evaluation["model"]["label"] and evaluation["code"]["stop_rate"]["data"] == 1.0
    assert summary["evaluate"]["mlflow_run_id"]
    # The registry survives the server: the demo's model is there under its alias.
    from mlflow.tracking import MlflowClient

    from indextts_dist.tracking import LocalMlflowServer

    with LocalMlflowServer(demo_dir / "mlflow") as server:
        version = MlflowClient(server.uri).get_model_version_by_alias("demo-speaker", "candidate")
        assert version.version == "1"
        history = MlflowClient(server.uri).get_metric_history(version.run_id, "loss")
        assert len(history) >= 8


def test_generate_is_deterministic_per_seed(demo_dir, tmp_path, capsys):
    args = ["generate", "--conditioning", str(demo_dir / "data" / "global_conditioning.safetensors"),
            "--text", "Hello there.", "--text", "[PAUSE] again", "--seed", "4"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert main([*args, "--greedy", "--out", str(tmp_path / "g")]) == 0
    for name in ("000.codes.npy", "001.codes.npy"):
        assert np.array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))
    greedy = json.loads((tmp_path / "g" / "000.json").read_text())
    assert greedy["decoding"]["num_beams"] == 1 and greedy["decoding"]["do_sample"] is False
    assert "not speech" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text", "   "], "empty text"),
        ([], "no text given"),
        (["--text", "hi", "--conditioning", "/nonexistent.safetensors"], "conditioning file not found"),
        (["--text", "hi", "--preset", "official-v2"], "needs its weights file"),
    ],
)
def test_generate_bad_input_is_one_line(demo_dir, tmp_path, capsys, extra, message):
    args = [
        "generate",
        "--conditioning",
        str(demo_dir / "data" / "global_conditioning.safetensors"),
        "--out",
        str(tmp_path),
    ]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
