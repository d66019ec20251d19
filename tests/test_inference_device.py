"""Inference on the machine the user has: `--device/--dtype` through every door, on the tiny preset.

bf16 vs fp32 on CPU: the GPT's greedy codes are identical and the GPT latents agree within
`LATENT_ATOL`, through the Python API, the MLflow pyfunc (`model_config`) and the `infer` CLI; after
loading, the GPT, its prefix and the second stage really hold bf16 weights; no inference module
hard-codes a device or float32 outside the one helper that returns outputs to the host; a bad
`--device/--dtype` is one line, exit 2. Also the two consistency checks of issue 11 part 5: `generate`
refuses a conditioning made on another base, and packaging refuses a tokenizer the dataset was not
made with.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from indextts_dist.cli.main import main
from indextts_dist.conditioning import GlobalConditioning, save_conditioning
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.loaded import LoadedModel
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import base_fingerprint, build_model, preset
from indextts_dist.placement import PlacementError, resolve_placement
from indextts_dist.text import TextTokenizer, tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import PackageError, package_model

SRC = Path(__file__).resolve().parents[1] / "src" / "indextts_dist"
TEXTS = ["Hello there.", "Life finds a way.", "Life finds a way, you know.", "So [UM] where were we?"]
MAX_CODES = 16
GREEDY = DecodingConfig.greedy(max_new_tokens=MAX_CODES, seed=0, mel_positions="training")
"""Greedy at training positions, so the teacher-forced forward reproduces every step's logits."""
FIXTURE_SEED = 2
MIN_MARGIN = 0.025
"""bf16 moves the tiny GPT's logits by up to ~0.02 (measured), and its random logits are nearly flat
(std ~0.6 over 66 codes), so a step whose fp32 top-2 margin is below that is a coin toss in bf16.
The test checks that premise on its own decode (FIXTURE_SEED and TEXTS keep every margin above
MIN_MARGIN), so a failure says "near-tie" or "bf16 broken", never both."""
LATENT_ATOL = 0.08
"""bf16 vs fp32 GPT latents (final-normed hidden states, |x| up to ~3.5). Measured: at most 0.027 on
these texts (0.8 % of the largest latent; bf16 keeps 8 mantissa bits), 0.04 the worst over the other
seeded adapters tried; the bound leaves a factor of 2 over that. fp16 measures 0.003."""

# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A seeded non-zero LoRA on tiny seed 0, a conditioning made for that base, speaker embeddings."""
    from indextts_dist.speech.second_stage import SecondStage, save_speaker_embeddings

    root = tmp_path_factory.mktemp("inputs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FIXTURE_SEED)
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
    clip = root / "speaker.wav"
    sf.write(clip, (0.1 * np.sin(np.arange(22050) / 8)).astype(np.float32), 22050)
    emb = SecondStage.tiny(0).speaker_embeddings([clip])
    return {
        "adapter_dir": root / "adapter",
        "conditioning_path": root / "global_conditioning.safetensors",
        "tokenizer_path": tiny_model_path(),
        "gpt_config": preset("tiny"),
        "preset": "tiny",
        "seed": 0,
        "base_fingerprint": fingerprint,
        "params": {},
        "selection": {"select": "best"},
        "reference_clips": [clip],
        "dataset_info": {"version": "v2_pattern_conditioned"},
        "speaker_embeddings": save_speaker_embeddings(emb, root / "speaker_embeddings.safetensors"),
    }


@pytest.fixture(scope="module")
def package(inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_model(tmp_path_factory.mktemp("out") / "package", **inputs)


@pytest.fixture(scope="module")
def fp32(package: Path) -> list:
    return LoadedModel.load(package, device="cpu", dtype="float32")(TEXTS, GREEDY)


@pytest.fixture(scope="module")
def bf16(package: Path) -> LoadedModel:
    return LoadedModel.load(package, device="cpu", dtype="bfloat16")


def _floating(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return [(name, t) for name, t in tensors if t.is_floating_point()]


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# -- (a) bf16 vs fp32 through every door -------------------------------------------------------------


def _fp32_margins(package: Path, results: list) -> list[float]:
    """Per text, the smallest top-2 logit gap over the steps fp32 decided (stop included)."""
    tts = LoadedModel.load(package, device="cpu", dtype="float32")
    margins = []
    for r in results:
        ids = torch.tensor([r.segments[0]])
        out = tts.model(
            tts.prefix, ids, torch.tensor([ids.numel()]), r.codes[None], torch.tensor([r.codes.numel()])
        )
        top = out.mel_logits[0, : r.codes.numel() + int(r.stopped[0])].topk(2, dim=-1).values
        margins.append(float((top[:, 0] - top[:, 1]).min()))
    return margins


def test_python_api_bf16_matches_fp32(package: Path, fp32: list, bf16: LoadedModel) -> None:
    margins = _fp32_margins(package, fp32)
    assert min(margins) > MIN_MARGIN, f"the fixture's fp32 decode has near-ties: {margins}"
    low = bf16(TEXTS, GREEDY)
    worst = 0.0
    for a, b in zip(fp32, low, strict=True):
        assert b.codes.dtype == torch.int64 and b.codes.device.type == "cpu"
        assert b.latents.dtype == torch.float32 and b.latents.device.type == "cpu"
        assert b.codes.tolist() == a.codes.tolist()  # greedy: the same codes
        worst = max(worst, float((a.latents - b.latents).abs().max()))
    assert 0 < worst <= LATENT_ATOL, worst  # > 0: the bf16 model really ran in bf16


def test_pyfunc_model_config_bf16_matches_fp32(package: Path, fp32: list, tmp_path: Path) -> None:
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
        model_config=PYFUNC_MODEL_CONFIG,  # what registration must log for these keys to be honoured
    )
    default = mlflow.pyfunc.load_model(str(path)).unwrap_python_model().loaded.placement
    assert default == resolve_placement()  # no model_config: the CLI's defaults
    loaded = mlflow.pyfunc.load_model(str(path), model_config={"device": "cpu", "dtype": "bfloat16"})
    pattern = loaded.unwrap_python_model().loaded
    assert pattern.placement.dtype == torch.bfloat16
    assert {t.dtype for _, t in _floating(pattern.model)} == {torch.bfloat16}
    params = {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0, "max_new_tokens": MAX_CODES,
              "mel_positions": "training"}  # fmt: skip
    codes = loaded.predict(TEXTS, params={**params, "seed": 0})
    assert codes == [r.codes.tolist() for r in fp32]


def test_cli_infer_bf16_codes_only_matches_fp32(package: Path, fp32: list, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "indextts_dist.cli.main", "infer", "--model", str(package), "--out",
           str(out), "--greedy", "--max-codes", str(MAX_CODES), "--mel-positions", "training", "--dtype",
           "bfloat16", "--device", "cpu",
           "--codes-only"] + [a for t in TEXTS for a in ("--text", t)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, ref in enumerate(fp32):
        codes = np.load(out / f"{i:03d}.codes.npy")
        latents = np.load(out / f"{i:03d}.latents.npy")
        assert codes.dtype == np.int32 and latents.dtype == np.float32
        assert codes.tolist() == ref.codes.tolist()
        assert np.abs(latents - ref.latents.numpy()).max() <= LATENT_ATOL
        assert not (out / f"{i:03d}.wav").exists()


# -- (b) what is loaded really is bf16 ----------------------------------------------------------------


def test_gpt_prefix_and_second_stage_are_bf16(bf16: LoadedModel) -> None:
    assert bf16.placement.device == torch.device("cpu") and bf16.placement.dtype == torch.bfloat16
    gpt = _floating(bf16.model)
    assert gpt and all(t.dtype == torch.bfloat16 for _, t in gpt), [
        n for n, t in gpt if t.dtype != torch.bfloat16
    ]
    assert bf16.prefix.dtype == torch.bfloat16  # the one prefix every door decodes with

    renderer = bf16.renderer  # the second stage, loaded on first use onto the GPT's placement
    stage = renderer.stage
    for part in (stage.codec, stage.s2mel, stage.campplus, stage.bigvgan):
        tensors = _floating(part)
        wrong = [n for n, t in tensors if t.dtype != torch.bfloat16]
        assert tensors and not wrong, (type(part).__name__, wrong)
    emb = renderer.embeddings
    assert {emb.style.dtype, emb.ref_mel.dtype, emb.prompt_condition.dtype} == {torch.bfloat16}

    (result, wav), = bf16.speak(TEXTS[:1], DecodingConfig.greedy(max_new_tokens=8, seed=0))  # fmt: skip
    assert wav.dtype == np.float32 and np.isfinite(wav).all()
    assert len(wav) == (172 * result.codes.numel()) // 100 * 256


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_runs_everything_on_the_gpu(package: Path, fp32: list, dtype: str) -> None:
    """GPT, prefix, KV cache and second stage on the GPU; outputs still host float32 / int64."""
    tts = LoadedModel.load(package, device="cuda", dtype=dtype)
    assert {t.device.type for _, t in _floating(tts.model)} == {"cuda"} and tts.prefix.is_cuda
    (result, wav), *_ = tts.speak(TEXTS, GREEDY)
    assert wav.dtype == np.float32 and result.latents.device.type == "cpu"
    for a, b in zip(fp32, tts(TEXTS, GREEDY), strict=True):
        assert b.codes.tolist() == a.codes.tolist()
        assert float((a.latents - b.latents).abs().max()) <= LATENT_ATOL


# -- (c) no hard-coded device or float32 on inference paths -------------------------------------------

FORBIDDEN = re.compile(
    r"""["']cpu["']"""  # a device literal
    r"|torch\.device\("  # a device built in place
    r"|torch\.float32\b|dtype=torch\.float\b"  # a float32 literal
    r"|\.cpu\(\)|\.numpy\(\)"  # a trip to the host outside `to_host` / `host_numpy`
    r"|torch\.Generator\(\)"  # a generator on the default device
)
ALLOWED = SRC / "placement.py"
"""The one helper: resolves the placement and holds `to_host`/`host_numpy`, the only way back."""
INFERENCE_FILES = [
    ALLOWED,
    *sorted((SRC / "inference").glob("*.py")),
    *sorted((SRC / "generate").glob("*.py")),
    *sorted((SRC / "serve").glob("*.py")),
    SRC / "tracking" / "pyfunc_model.py",
    SRC / "tracking" / "package.py",
    SRC / "cli" / "infer.py",
    SRC / "cli" / "generate.py",
    SRC / "cli" / "diagnose.py",
    SRC / "cli" / "serve.py",
]
SECOND_STAGE_METHODS = ("to", "_place", "_precision", "mel", "synthesize")
"""The rendering side of `SecondStage` (its reference side runs once, at packaging)."""


def forbidden_lines(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if FORBIDDEN.search(line.split("#")[0])]


def _second_stage_rendering_source() -> str:
    path = SRC / "speech" / "second_stage.py"
    tree = ast.parse(path.read_text())
    stage = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SecondStage")
    methods = {n.name: n for n in stage.body if isinstance(n, ast.FunctionDef)}
    return "\n".join(ast.get_source_segment(path.read_text(), methods[m]) or "" for m in SECOND_STAGE_METHODS)


def test_grep_catches_what_the_code_used_to_do() -> None:
    """The patterns flag each way inference used to pin itself to the host in float32."""
    for line in (
        "return out.mel_latents[0].float().cpu()",
        'with torch.autocast(device_type="cpu", enabled=False):',
        "generator = torch.Generator().manual_seed(seed)",
        "codes.append(best.cpu())",
        "noise = torch.randn(shape, dtype=torch.float32)",
        "x = torch.zeros(3, dtype=torch.float)",
        "npy_bytes(r.codes.numpy().astype(np.int32))",
    ):
        assert forbidden_lines(line), line
    assert not forbidden_lines("logits = head(h).float()  # float32 scores on the model's device")


def test_no_hard_coded_device_or_float32_on_inference_paths() -> None:
    assert ALLOWED in INFERENCE_FILES  # skipped below, and the only file that is
    found = {
        str(path.relative_to(SRC)): hits
        for path in INFERENCE_FILES
        if path != ALLOWED and (hits := forbidden_lines(path.read_text()))
    }
    if hits := forbidden_lines(_second_stage_rendering_source()):
        found["speech/second_stage.py (rendering)"] = hits
    assert not found, json.dumps(found, indent=1)


# -- (d) bad placements are one line, exit 2 ---------------------------------------------------------


def test_resolve_placement() -> None:
    assert resolve_placement("cpu", None).dtype == torch.float32
    assert resolve_placement("cpu", "bfloat16").dtype == torch.bfloat16
    assert resolve_placement(None, "float16").device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(
        PlacementError, match=r"unknown dtype 'float8' \(choose from float32, bfloat16, float16\)"
    ):
        resolve_placement("cpu", "float8")
    with pytest.raises(PlacementError, match="unknown device 'tpu9'"):
        resolve_placement("tpu9", None)
    with pytest.raises(PlacementError, match="device 'cuda:63' is not available on this machine"):
        resolve_placement("cuda:63", None)
    with pytest.raises(PlacementError, match="unknown dtype"):
        LoadedModel.load("/nonexistent", dtype="half")  # checked before anything is read


CUDA_LESS = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dtype", "float8"], "unknown dtype 'float8'"),
        pytest.param(["--device", "cuda"], "device 'cuda' is not available on this machine", marks=CUDA_LESS),
        (["--device", "cuda:63"], "device 'cuda:63' is not available on this machine"),
    ],
)
@pytest.mark.parametrize("command", ["infer", "generate", "diagnose"])
def test_cli_bad_placement_is_one_line_exit_2(
    command: str, extra: list[str], message: str, package: Path, inputs: dict, tmp_path: Path, capsys
) -> None:
    args = {
        "infer": ["--model", str(package), "--text", "hi", "--out", str(tmp_path)],
        "generate": [
            "--conditioning",
            str(inputs["conditioning_path"]),
            "--text",
            "hi",
            "--out",
            str(tmp_path),
        ],
        "diagnose": ["--model", str(package)],
    }[command]
    assert main([command, *args, *extra]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"indextts-dist {command}: error: ") and message in err


def test_pyfunc_model_config_bad_dtype() -> None:
    from indextts_dist.tracking.pyfunc_model import placement_from_config

    assert placement_from_config(None) == resolve_placement()
    assert placement_from_config({"device": "cpu", "dtype": "bfloat16"}).dtype == torch.bfloat16
    with pytest.raises(PlacementError, match="unknown dtype 'fp8'"):
        placement_from_config({"dtype": "fp8"})


# -- issue 11 part 5: generate checks the conditioning's base; packaging checks the tokenizer -------


def test_generate_refuses_a_conditioning_made_on_another_base(inputs: dict, tmp_path: Path, capsys) -> None:
    cond_path = str(inputs["conditioning_path"])  # made for tiny seed 0
    base = [
        "generate",
        "--text",
        "Hello there.",
        "--greedy",
        "--max-codes",
        "6",
        "--out",
        str(tmp_path / "ok"),
    ]
    assert main([*base, "--conditioning", cond_path, "--dtype", "bfloat16", "--device", "cpu"]) == 0
    assert np.load(tmp_path / "ok" / "000.codes.npy").dtype == np.int32
    capsys.readouterr()

    other = tmp_path / "tiny-seed1.safetensors"  # the same architecture, other weights
    save_file({k: v.contiguous() for k, v in build_model("tiny", seed=1).state_dict().items()}, str(other))
    assert main([*base, "--conditioning", cond_path, "--weights", str(other)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert cond_path in err and str(other) in err and inputs["base_fingerprint"][:12] in err

    unmarked = tmp_path / "unmarked.safetensors"
    save_conditioning(GlobalConditioning(torch.zeros(32, 64), torch.zeros(64), {}), unmarked)
    assert main([*base, "--conditioning", str(unmarked)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert str(unmarked) in err and "no base_model_fingerprint" in err


def test_package_refuses_a_tokenizer_the_dataset_was_not_made_with(inputs: dict, tmp_path: Path) -> None:
    sha = TextTokenizer(inputs["tokenizer_path"]).sha256
    same = {"version": "v2_pattern_conditioned", "fingerprints": {"tokenizer": sha, "gpt": "x"}}
    assert package_model(tmp_path / "ok", **{**inputs, "dataset_info": same}).is_dir()

    other = {**same, "fingerprints": {"tokenizer": "ab" * 32}}
    with pytest.raises(PackageError) as exc:
        package_model(tmp_path / "bad", **{**inputs, "dataset_info": other})
    message = _one_line(str(exc.value))
    info_path = Path(inputs["conditioning_path"]).with_name("dataset_info.json")
    assert str(inputs["tokenizer_path"]) in message and str(info_path) in message
    assert sha[:12] in message and "abababababab" in message
    assert not (tmp_path / "bad").exists()
