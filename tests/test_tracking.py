"""MLflow tracking, packaging and registration against a real `mlflow server` (sqlite + served artifacts).

The adapter is a real PEFT LoRA on the tiny preset with non-zero `lora_B` (so it changes the output),
made here instead of by the trainer; the conditioning, tokenizer and reference clip are real files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts_dist.conditioning import (
    ConditioningError,
    GlobalConditioning,
    load_conditioning,
    save_conditioning,
)
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.loaded import LoadedModel, load_package
from indextts_dist.lora import LoraSettings, apply_lora
from indextts_dist.model import TINY_LABEL, base_fingerprint, build_model, preset
from indextts_dist.text import TextTokenizer, tiny_model_path, tiny_tokenizer
from indextts_dist.tracking import (
    LocalMlflowServer,
    MetricsLogger,
    ModelNotFoundError,
    PackageError,
    RegistrationError,
    fetch_model,
    package_model,
    register_package,
    verify_package,
)
from indextts_dist.tracking.local_server import free_port
from indextts_dist.tracking.package import MANIFEST

pytestmark = pytest.mark.slow

TEXTS = ["Hello there.", "[UH] well"]
DECODING = {"seed": 0, "max_new_tokens": 20}
MODEL_NAME = "pattern-test"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="module")
def server_port() -> int:
    """Chosen before the server starts, so the outage test can log to it while nothing listens."""
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_port: int):
    with LocalMlflowServer(tmp_path_factory.mktemp("mlflow"), port=server_port) as srv:
        yield srv


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real adapter, conditioning, tokenizer and reference clip for the tiny preset."""
    root = tmp_path_factory.mktemp("inputs")
    model = apply_lora(
        build_model("tiny", with_conditioning_encoders=False), LoraSettings(rank=4, alpha=8, dropout=0.0)
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(str(root / "adapter"), safe_serialization=True)
    fingerprint = base_fingerprint("tiny")
    cond = GlobalConditioning(
        torch.randn(32, 64, generator=gen),
        torch.randn(64, generator=gen),
        {"base_model_fingerprint": fingerprint, "method": "mean", "num_clips": "3"},
    )
    save_conditioning(cond, root / "global_conditioning.safetensors")
    tiny_tokenizer()
    sf.write(root / "speaker.wav", (0.1 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000)
    return {
        "adapter_dir": root / "adapter",
        "conditioning_path": root / "global_conditioning.safetensors",
        "tokenizer_path": tiny_model_path(),
        "gpt_config": preset("tiny"),
        "preset": "tiny",
        "seed": 0,
        "base_fingerprint": fingerprint,
        "params": {"learning_rate": 5e-4, "epochs": 3, "lora": {"rank": 4, "alpha": 8}},
        "selection": {"select": "best", "epoch": 3, "step": 120, "val_loss": 1.23},
        "reference_clips": [root / "speaker.wav"],
        "dataset_info": {"version": "v2_pattern_conditioned", "num_samples": 3},
        "label": TINY_LABEL,
    }


@pytest.fixture(scope="module")
def package(inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_model(tmp_path_factory.mktemp("out") / "package", **inputs)


@pytest.fixture(scope="module")
def run_id(server: LocalMlflowServer) -> str:
    logger = MetricsLogger(server.uri, "tracking-tests", "train-run", enabled=True)
    rid = logger.start({"learning_rate": 5e-4})
    logger.log({"loss": 1.0}, step=0)
    assert logger.finish()
    assert rid is not None
    return rid


@pytest.fixture(scope="module")
def registered(package: Path, server: LocalMlflowServer, run_id: str):
    return register_package(
        package, tracking_uri=server.uri, name=MODEL_NAME, alias="candidate", run_id=run_id
    )


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# -- metrics ------------------------------------------------------------------------------------------


def test_metrics_survive_a_dead_server_and_flush_when_it_comes_back(
    request: pytest.FixtureRequest, server_port: int, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """First test of the module: the module's server is not up yet, so its address is a dead one."""
    from mlflow import MlflowClient

    with contextlib.ExitStack() as stack:
        port = server_port if not _listening(server_port) else free_port()
        uri = f"http://127.0.0.1:{port}"
        logger = MetricsLogger(uri, "tracking-tests", "outage-run", enabled=True, retry_every_s=0)
        start = time.monotonic()
        assert logger.start({"learning_rate": 5e-4}) is None
        for step in range(5):
            logger.log({"loss": 3.0 - step}, step=step)
        assert time.monotonic() - start < 10
        assert logger.pending == 5
        warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and uri in warnings[0], warnings

        # The server comes (back) up on the same address.
        if port == server_port:
            request.getfixturevalue("server")
        else:
            stack.enter_context(LocalMlflowServer(tmp_path / "late", port=port))
        logger.log({"loss": -2.0}, step=5)
        assert logger.pending == 0 and logger.run_id is not None
        assert logger.finish()
        history = MlflowClient(uri).get_metric_history(logger.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [(s, 3.0 - s) for s in range(6)]
        assert MlflowClient(uri).get_run(logger.run_id).data.params == {"learning_rate": "0.0005"}
    assert "reachable again" in capfd.readouterr().err


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_metrics_logged_and_read_back(server: LocalMlflowServer) -> None:
    from mlflow import MlflowClient

    logger = MetricsLogger(server.uri, "tracking-tests", "metrics-run", enabled=True)
    rid = logger.start({"learning_rate": 5e-4, "lora": {"rank": 4}})
    assert rid is not None
    for step, loss in enumerate([2.0, 1.5, 1.25]):
        logger.log({"loss": loss, "lr": 1e-4 * (step + 1)}, step=step)
    assert logger.finish()
    client = MlflowClient(server.uri)
    history = sorted((m.step, m.value) for m in client.get_metric_history(rid, "loss"))
    assert history == [(0, 2.0), (1, 1.5), (2, 1.25)]
    run = client.get_run(rid)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"learning_rate": "0.0005", "lora.rank": "4"}


def test_disabled_logger_is_a_no_op() -> None:
    logger = MetricsLogger("http://127.0.0.1:9", "x", None, enabled=False)
    assert logger.start({"a": 1}) is None
    logger.log({"loss": 1.0}, step=0)
    assert logger.pending == 0
    assert logger.finish()


def test_metrics_buffer_is_bounded() -> None:
    logger = MetricsLogger(f"http://127.0.0.1:{free_port()}", "x", None, enabled=True, max_buffer=5)
    logger.start({})
    for step in range(12):
        logger.log({"loss": float(step)}, step=step)  # retries wait retry_every_s: no request here
    assert logger.pending == 5 and logger.dropped == 7
    start = time.monotonic()
    assert not logger.finish()
    assert time.monotonic() - start < 10


# -- package ------------------------------------------------------------------------------------------


def test_package_contents(package: Path, inputs: dict) -> None:
    for rel in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "global_conditioning.safetensors",
        "tokenizer/bpe.model",
        "gpt_config.json",
        "reference/speaker.wav",
        MANIFEST,
    ):
        assert (package / rel).is_file(), rel
    manifest = verify_package(package)
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0
    assert manifest["label"] == TINY_LABEL
    assert manifest["base_fingerprint"] == inputs["base_fingerprint"]
    assert manifest["selection"] == inputs["selection"]
    assert manifest["params"]["lora"] == {"rank": 4, "alpha": 8}
    assert manifest["lora"]["rank"] == 4 and manifest["lora"]["alpha"] == 8
    assert manifest["dataset"]["version"] == "v2_pattern_conditioned"
    assert manifest["tokenizer"]["sha256"] == TextTokenizer(inputs["tokenizer_path"]).sha256
    assert manifest["conditioning"]["metadata"]["base_model_fingerprint"] == inputs["base_fingerprint"]
    assert manifest["reference_clips"] == ["reference/speaker.wav"]
    assert not [p for p in package.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_package_input_errors_are_one_line(inputs: dict, tmp_path: Path) -> None:
    with pytest.raises(PackageError) as exc:
        package_model(tmp_path / "p1", **{**inputs, "adapter_dir": tmp_path / "nowhere"})
    assert "adapter_config.json missing" in _one_line(exc)

    small = tmp_path / "small.safetensors"
    save_conditioning(GlobalConditioning(torch.zeros(32, 32), torch.zeros(32), {}), small)
    with pytest.raises(ConditioningError) as exc:
        package_model(tmp_path / "p2", **{**inputs, "conditioning_path": small})
    assert "shape" in _one_line(exc)

    other = tmp_path / "other.safetensors"
    cond = load_conditioning(inputs["conditioning_path"])
    cond.metadata["base_model_fingerprint"] = "0" * 64
    save_conditioning(cond, other)
    with pytest.raises(PackageError) as exc:
        package_model(tmp_path / "p3", **{**inputs, "conditioning_path": other})
    message = _one_line(exc)
    assert "0" * 64 in message and inputs["base_fingerprint"] in message
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p3").exists()


def test_load_package_checks_the_base(package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["seed"] = 1  # the tiny base built from seed 1 is another model
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PackageError) as exc:
        load_package(copy)
    message = _one_line(exc)
    assert message.startswith(f"adapter was trained on base {manifest['base_fingerprint']}, this base is ")
    assert base_fingerprint("tiny", seed=1) in message

    (copy / "adapter" / "adapter_model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(PackageError) as exc:
        load_package(copy)
    assert "adapter/adapter_model.safetensors does not match" in _one_line(exc)


# -- registry -----------------------------------------------------------------------------------------


def _codes(model: LoadedModel) -> list[list[int]]:
    return [r.codes.tolist() for r in model(TEXTS, DecodingConfig(**DECODING))]


def test_registered_model_predicts_in_a_fresh_process(
    registered, package: Path, inputs: dict, server: LocalMlflowServer, run_id: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(server.uri)
    assert client.get_model_version_by_alias(MODEL_NAME, "candidate").version == registered.version
    logged = client.get_logged_model(registered.model_id)
    assert logged.source_run_id == run_id
    assert logged.experiment_id == client.get_run(run_id).info.experiment_id

    script = (
        "import json, mlflow\n"
        f"model = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@candidate')\n"
        f"print('RESULT', json.dumps(model.predict({TEXTS!r}, params={DECODING!r})))\n"
        # The registered model declares device/dtype, so load_model may override them.
        f"half = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@candidate',\n"
        "                                 model_config={'dtype': 'bfloat16'})\n"
        "gpt = half.unwrap_python_model().loaded.model\n"
        "print('DTYPE', next(gpt.parameters()).dtype)\n"
    )
    env = {
        k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "INDEXTTS_DIST_CACHE") if k in os.environ
    }
    env.update({"MLFLOW_TRACKING_URI": server.uri, "MLFLOW_DISABLE_TELEMETRY": "true"})
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    remote = json.loads(lines[-1][len("RESULT ") :])
    assert len(remote) == 2 and all(isinstance(c, int) for codes in remote for c in codes)
    assert "DTYPE torch.bfloat16" in proc.stdout, proc.stderr[-3000:]

    local = _codes(load_package(package))
    assert remote == local
    tokenizer = TextTokenizer(inputs["tokenizer_path"])
    conditioning = load_conditioning(inputs["conditioning_path"])
    base = LoadedModel(build_model("tiny", with_conditioning_encoders=False), tokenizer, conditioning)
    assert _codes(base) != local  # the merged adapter really changes the output


def test_fetch_and_download_give_the_package(
    registered, package: Path, server: LocalMlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    fetched = fetch_model(f"models:/{MODEL_NAME}@candidate", tmp_path / "alias", tracking_uri=server.uri)
    assert verify_package(fetched)["files"] == verify_package(package)["files"]
    by_version = fetch_model(registered.model_uri, tmp_path / "version", tracking_uri=server.uri)
    assert (by_version / "adapter" / "adapter_model.safetensors").is_file()

    # mlflow 3.17 resolves models:/NAME@ALIAS through the GLOBAL registry URI, even when
    # download_artifacts gets tracking_uri= and registry_uri= (it would open ./mlflow.db instead).
    # (and on mlflow's own tracking and registry URIs, restored after the test: mlflow.set_registry_uri, which
    # mlflow calls itself, writes a module global and $MLFLOW_REGISTRY_URI, and a module that ran
    # before this one in the same process may have left both pointing at its stopped server)
    from mlflow.tracking._model_registry import utils as registry_utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", server.uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", server.uri)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(server.uri)  # mlflow-artifacts:/ paths resolve against it
    try:
        raw = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=registered.alias_uri, dst_path=str(tmp_path / "raw")
            )
        )
    finally:
        mlflow.set_tracking_uri(previous)
    files = {p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file()}
    assert {"MLmodel", "pyfunc_model.py", "requirements.txt"} <= files
    assert f"artifacts/{package.name}/adapter/adapter_model.safetensors" in files
    assert "indextts-dist==" in (raw / "requirements.txt").read_text()
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]


def test_fetch_errors_name_the_missing_piece(registered, server: LocalMlflowServer, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        fetch_model(f"models:/{MODEL_NAME}@nope", tmp_path, tracking_uri=server.uri)
    assert "has no alias 'nope'" in _one_line(exc) and "@candidate" in str(exc.value)
    with pytest.raises(ModelNotFoundError) as exc:
        fetch_model("models:/no-such-model@candidate", tmp_path, tracking_uri=server.uri)
    assert "no registered model named 'no-such-model'" in _one_line(exc)
    with pytest.raises(ModelNotFoundError) as exc:
        fetch_model(f"models:/{MODEL_NAME}/99", tmp_path, tracking_uri=server.uri)
    assert "has no version 99" in _one_line(exc)


def _register_cli_main(argv: list[str]) -> int:
    """`indextts-dist register ...` through the real CLI when it is wired, else through its module."""
    from indextts_dist.cli import main as cli_main
    from indextts_dist.cli import register as register_cli

    commands = next(a for a in cli_main.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "register" in commands.choices:
        return cli_main.main(argv)
    parser = argparse.ArgumentParser(prog="indextts-dist")
    register_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_failed_registration_prints_the_command_that_works_later(
    package: Path, server: LocalMlflowServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(RegistrationError) as exc:
        register_package(package, tracking_uri=dead, name="pattern-later", retries=1, backoff_s=0.1)
    assert time.monotonic() - start < 10
    message = _one_line(exc)
    command = (
        f"indextts-dist register --package {package.resolve()} --mlflow-uri {dead} "
        "--register-name pattern-later --alias candidate"
    )
    assert command in message

    argv = shlex.split(command)[1:]
    argv[argv.index("--mlflow-uri") + 1] = server.uri  # the server is back (here: at its own address)
    assert _register_cli_main(argv) == 0
    assert "registered pattern-later version 1 as @candidate" in capsys.readouterr().out
    assert MlflowClient(server.uri).get_model_version_by_alias("pattern-later", "candidate").version == "1"


def test_pyfunc_input_and_params() -> None:
    import pandas as pd

    from indextts_dist.tracking.pyfunc_model import decoding_from_params, texts_from_input

    assert texts_from_input("one") == ["one"]
    assert texts_from_input(TEXTS) == TEXTS
    assert texts_from_input(pd.DataFrame({"text": TEXTS, "other": [1, 2]})) == TEXTS
    assert texts_from_input(pd.DataFrame({0: TEXTS})) == TEXTS  # what MLflow makes of a list
    with pytest.raises(ValueError):
        texts_from_input([1, 2])
    assert decoding_from_params(None) == DecodingConfig()
    assert decoding_from_params({"seed": 3, "num_beams": 1, "top_p": None}) == DecodingConfig(
        seed=3, num_beams=1
    )
    with pytest.raises(ValueError, match="unknown decoding params: beams"):
        decoding_from_params({"beams": 2})


# -- consume: `indextts-dist infer` and the Python API on the registered model ---------------------


def _infer(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from indextts_dist.cli.main import main

    code = main(["infer", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_infer_from_the_registry_writes_codes_latents_and_records(
    registered, server: LocalMlflowServer, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_text = " ".join(["This is a long sentence, with commas, and more words."] * 14)
    args = ["--model", f"models:/{MODEL_NAME}@candidate", "--mlflow-uri", server.uri, "--cache-dir",
            str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--seed", "0", "--max-codes", "25",
            "--text", "Well, [UH] hello there.", "--text", long_text, "--codes-only"]  # fmt: skip
    code, out, err = _infer(args, capsys)
    assert code == 0, err
    assert "RANDOM" in out
    records = [json.loads((tmp_path / "out" / f"00{i}.json").read_text()) for i in range(2)]
    assert records[0]["segments"] == 1 and records[1]["segments"] > 1  # long text split like the official
    assert all(len(seg) <= 120 for seg in records[1]["text_ids"])
    assert records[0]["decoding"]["num_beams"] == 3 and records[0]["text_normalized"].startswith("WELL, 'UH'")
    local = LoadedModel.load(package)
    again = local(["Well, [UH] hello there.", long_text], DecodingConfig(seed=0, max_new_tokens=25))
    for i, record in enumerate(records):
        codes = np.load(tmp_path / "out" / f"00{i}.codes.npy")
        latents = np.load(tmp_path / "out" / f"00{i}.latents.npy")
        assert codes.dtype == np.int32 and codes.shape == (record["code_count"],)
        assert latents.shape == (codes.shape[0], 64) and latents.dtype == np.float32
        assert codes.tolist() == again[i].codes.tolist()  # the registry copy is the same model
    # The latents are the official forward at batch size 1 over (text, codes).
    r = again[0]
    official = local.model(local.prefix, torch.tensor([r.segments[0]]), torch.tensor([len(r.segments[0])]),
                           r.codes[None], torch.tensor([r.codes.numel()])).mel_latents[0]  # fmt: skip
    assert torch.allclose(official, r.latents, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "text", "message"),
    [
        ("models:/no-such-model@candidate", "hi", "no-such-model"),
        (f"models:/{MODEL_NAME}@nope", "hi", "nope"),
        ("/nonexistent/folder", "hi", "no such model folder"),
        (None, "   ", "empty text"),
    ],
)
def test_infer_bad_input_is_one_line(
    registered, server: LocalMlflowServer, package: Path, tmp_path: Path, capsys, model, text, message
) -> None:
    args = ["--model", model or str(package), "--mlflow-uri", server.uri, "--cache-dir", str(tmp_path),
            "--out", str(tmp_path / "out"), "--text", text]  # fmt: skip
    code, _, err = _infer(args, capsys)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_infer_refuses_a_package_with_a_missing_or_swapped_conditioning(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    shutil.copytree(package, missing)
    (missing / "global_conditioning.safetensors").unlink()
    code, _, err = _infer(["--model", str(missing), "--text", "hi", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "global_conditioning.safetensors is missing" in err
    swapped = tmp_path / "swapped"
    shutil.copytree(package, swapped)
    save_conditioning(
        GlobalConditioning(torch.zeros(32, 48), torch.zeros(48)), swapped / "global_conditioning.safetensors"
    )
    code, _, err = _infer(["--model", str(swapped), "--text", "hi", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "does not match its sha256" in err and len(err.strip().splitlines()) == 1


def test_infer_writes_wavs_with_the_second_stage(
    inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package carrying speaker embeddings renders each text to 22.05 kHz audio: every segment
    gives floor(1.72 N) x 256 samples, segments joined by 200 ms of silence (tiny: noise, not speech)."""
    from indextts_dist.speech.second_stage import SecondStage, save_speaker_embeddings

    stage = SecondStage.tiny(0)
    emb = stage.speaker_embeddings(inputs["reference_clips"])
    emb_path = save_speaker_embeddings(emb, tmp_path / "speaker_embeddings.safetensors")
    package = package_model(tmp_path / "pkg", **inputs, speaker_embeddings=emb_path)
    long_text = " ".join(["This is a long sentence, with commas, and more words."] * 14)
    args = ["--model", str(package), "--out", str(tmp_path / "out"), "--seed", "0", "--max-codes", "20",
            "--text", "Well, [UH] hello there.", "--text", long_text]  # fmt: skip
    code, _, err = _infer(args, capsys)
    assert code == 0, err
    for i in range(2):
        record = json.loads((tmp_path / "out" / f"00{i}.json").read_text())
        codes = np.load(tmp_path / "out" / f"00{i}.codes.npy")
        wav, rate = sf.read(tmp_path / "out" / f"00{i}.wav")
        assert rate == 22050
        lengths = record["segment_codes"]
        assert sum(lengths) == codes.shape[0]
        want = sum((172 * n) // 100 * 256 for n in lengths if n) + int(0.2 * 22050) * (
            sum(1 for n in lengths if n) - 1
        )
        assert len(wav) == want
    spoken = LoadedModel.load(package).speak(["Well, [UH] hello."], DecodingConfig(seed=1, max_new_tokens=12))
    (result, audio) = spoken[0]
    assert audio.dtype == np.float32 and len(audio) == (172 * result.codes.numel()) // 100 * 256
    plain = package_model(tmp_path / "plain", **inputs)  # no second stage in it
    code, _, err = _infer(["--model", str(plain), "--text", "hi", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "use --codes-only" in err and len(err.strip().splitlines()) == 1
