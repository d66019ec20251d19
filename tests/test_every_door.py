"""One long text, one seed, one decoding: the same codes through every door into a pattern model.

The doors are the Python API (`LoadedModel`), the MLflow pyfunc (`mlflow.pyfunc.load_model` of a
saved model), `indextts-dist infer --codes-only`, `indextts-dist generate`,
`indextts-dist diagnose --json` and `indextts-dist evaluate --json`, the commands as subprocesses.
The text is long enough that the tiny tokenizer's pieces split into at least 3 segments, so
segmentation and batching are part of what must agree (before they were owned by one object, the
pyfunc and diagnose did not segment).

What "the same codes" means for `generate`: it has no package and no adapter by design — it runs a
base GPT with a conditioning file and a tokenizer. Given the tiny preset's seed-0 base (the
package's base) and the package's own conditioning and `bpe.model`, it must produce exactly the
codes of the package's model *without its adapter*: the API's `without_adapter()` and diagnose's
base run. So there are two groups, each identical through its doors:

- adapted: API == pyfunc == infer == diagnose (adapted) == evaluate (adapted);
- base:    API without adapter == generate == diagnose (base) == evaluate (base);

and the two groups differ (the adapter is non-zero), so the comparison cannot pass by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts_dist.conditioning import GlobalConditioning, save_conditioning
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.loaded import LoadedModel
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import TINY_LABEL, base_fingerprint, build_model, preset
from indextts_dist.text import tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import package_model

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(
    [
        "Well, [UH] I think we should go now, before it starts to rain again.",
        "So where were we? Right, let's start from the top, and this time slowly.",
        "I mean [PAUSE] it's not that simple, you know, not simple at all.",
    ]
    * 4
)
SEED, MAX_CODES = 7, 24
DECODING = DecodingConfig(seed=SEED, max_new_tokens=MAX_CODES)
"""The official decoding (3-beam beam-sample): sampling, so the seed and the batches matter."""
CLI_DECODING = ["--seed", str(SEED), "--max-codes", str(MAX_CODES), "--device", "cpu"]
PYFUNC_PARAMS = {"seed": SEED, "max_new_tokens": MAX_CODES}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny package with a seeded non-zero LoRA and a conditioning made for its base."""
    root = tmp_path_factory.mktemp("inputs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = apply_lora(
            build_model("tiny", with_conditioning_encoders=False), LoraSettings(rank=4, alpha=8, dropout=0.0)
        )
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape) * 0.05)
        cond = GlobalConditioning(torch.randn(32, 64), torch.randn(64), {})
    model.save_pretrained(str(root / "adapter"), safe_serialization=True)
    fingerprint = base_fingerprint("tiny")
    cond.metadata.update({"base_model_fingerprint": fingerprint, "method": "mean", "num_clips": "1"})
    save_conditioning(cond, root / "global_conditioning.safetensors")
    tiny_tokenizer()
    sf.write(root / "speaker.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000)
    return package_model(
        tmp_path_factory.mktemp("out") / "package",
        adapter_dir=root / "adapter",
        conditioning_path=root / "global_conditioning.safetensors",
        tokenizer_path=tiny_model_path(),
        gpt_config=preset("tiny"),
        preset="tiny",
        seed=0,
        base_fingerprint=fingerprint,
        params={},
        selection={"select": "best"},
        reference_clips=[root / "speaker.wav"],
        dataset_info={"version": "v2_pattern_conditioned"},
        label=TINY_LABEL,
    )


@pytest.fixture(scope="module")
def api(package: Path) -> dict[str, list[int]]:
    """The Python API's codes for LONG_TEXT, with the adapter and without it."""
    tts = LoadedModel.load(package, device="cpu")
    (adapted,) = tts([LONG_TEXT], DECODING)
    assert len(adapted.segments) >= 3, f"LONG_TEXT makes {len(adapted.segments)} segment(s)"
    (base,) = tts.without_adapter()([LONG_TEXT], DECODING)
    assert base.segments == adapted.segments
    return {"adapted": adapted.codes.tolist(), "base": base.codes.tolist(), "segments": adapted.segments}


def _cli(args: list[str], cwd: Path) -> str:
    """`indextts-dist ARGS` in a fresh process with this process's thread count (float sums, and so
    sampling, may depend on it)."""
    exe = Path(sys.executable).parent / "indextts-dist"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_two_groups_differ(api: dict) -> None:
    assert api["adapted"] and api["base"] and api["adapted"] != api["base"]


def test_pyfunc(package: Path, api: dict, tmp_path: Path) -> None:
    import mlflow

    from indextts_dist.tracking.package import PYFUNC_MODEL_CONFIG
    from indextts_dist.tracking.registry import PYFUNC_MODEL_FILE, model_signature

    path = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(PYFUNC_MODEL_FILE),
        artifacts={"package": str(package)},
        pip_requirements=["indextts-dist"],
        signature=model_signature(),
        model_config=PYFUNC_MODEL_CONFIG,
    )
    loaded = mlflow.pyfunc.load_model(str(path), model_config={"device": "cpu"})
    assert loaded.predict([LONG_TEXT], params=PYFUNC_PARAMS) == [api["adapted"]]


def test_infer_codes_only(package: Path, api: dict, tmp_path: Path) -> None:
    out = tmp_path / "infer"
    _cli(["infer", "--model", str(package), "--codes-only", "--text", LONG_TEXT, "--out", str(out),
          *CLI_DECODING], tmp_path)  # fmt: skip
    record = json.loads((out / "000.json").read_text())
    assert record["text_ids"] == api["segments"]
    assert np.load(out / "000.codes.npy").tolist() == api["adapted"]


def test_generate_is_the_base_door(package: Path, api: dict, tmp_path: Path) -> None:
    out = tmp_path / "generate"
    _cli(["generate", "--conditioning", str(package / "global_conditioning.safetensors"), "--bpe",
          str(package / "tokenizer" / "bpe.model"), "--text", LONG_TEXT, "--out", str(out),
          *CLI_DECODING], tmp_path)  # fmt: skip
    record = json.loads((out / "000.json").read_text())
    assert record["text_ids"] == api["segments"]
    assert np.load(out / "000.codes.npy").tolist() == api["base"]


def test_diagnose_json(package: Path, api: dict, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(LONG_TEXT + "\n")
    report = json.loads(_cli(["diagnose", "--model", str(package), "--texts", str(texts), "--json",
                              *CLI_DECODING], tmp_path))  # fmt: skip
    stats = report["statistics"]
    for side in ("adapted", "base"):
        (text,) = stats[side]["per_text"]
        assert text["segments"] == len(api["segments"])
        assert text["semantic_codes"] == api[side], side
        assert stats[side]["codes"] == len(api[side])  # the statistics are those of these codes


def test_evaluate_json(package: Path, api: dict, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(LONG_TEXT + "\n")
    args = ["evaluate", "--model", str(package), "--texts", str(texts), "--json", "--seeds", "1",
            "--out", str(tmp_path / "ev"), "--resamples", "50", *CLI_DECODING]  # fmt: skip
    report = json.loads(_cli(args, tmp_path))
    assert report["seeds"] == [SEED]
    for side in ("adapted", "base"):
        (text,) = report["per_text"][side]
        assert text["semantic_codes"] == api[side], side
