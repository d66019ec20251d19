"""The trainer for real: shards from the preprocess job on espeak-ng audio, `accelerate launch` with
2 processes under DeepSpeed ZeRO-2 (gloo) and under DDP, kill + resume, SIGTERM, divergence."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from indextts_dist.corpus import synthesize_corpus
from indextts_dist.distributed import World
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.tracking import LocalMlflowServer, load_package
from indextts_dist.train.batching import BatchStream, steps_per_epoch
from indextts_dist.train.dataset import load_manifest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"
FAST = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.0", "--warmup-steps", "2",
        "--max-tokens-per-batch", "700", "--learning-rate", "5e-3"]  # fmt: skip
STEP = re.compile(r"\[train\] step (\d+) loss ([0-9.]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """8 espeak-ng clips preprocessed into 3 shards (3 + 3 + 2 clips): uneven over 2 ranks."""
    root = tmp_path_factory.mktemp("train-data")
    clips = synthesize_corpus(root / "audio", n_clips=8, seed=3)
    csv = root / "transcripts.csv"
    csv.write_text("file,text\n" + "".join(f'{c.path.name},"{c.expected}"\n' for c in clips))
    opts = PreprocessOptions(audio_dir=root / "audio", out=root / "data", transcripts=csv, clips_per_shard=3)
    run_preprocess(opts, World(0, 1, 0))
    return root / "data"


def launch(args: list[str], *, engine: str = "deepspeed", background: bool = False):
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    if engine == "deepspeed":
        head = [str(ACCELERATE), "launch", "--config_file", str(REPO / "accelerate_config.cpu.yaml")]
    elif engine == "ddp":
        head = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2"]
    else:
        head = [sys.executable]
    if engine != "single":
        head += ["--main_process_port", str(free_port())]
    cmd = [*head, str(REPO / "launch" / "train.py"), *args]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def step_losses(log: str) -> dict[int, float]:
    return {int(m[1]): float(m[2]) for m in STEP.finditer(log)}


def adapter_digests(log: str) -> dict[str, str]:
    return dict(re.findall(r"\[train\] rank (\d+) adapter sha256 (\w+)", log))


def test_three_shards_give_two_ranks_the_same_number_of_batches(data):
    manifest = load_manifest(data)
    assert len(manifest.shards) == 3
    lengths = [(s.text_len, s.code_len) for s in manifest.train_samples]
    steps = steps_per_epoch(lengths, 700, world=2)
    counts = []
    for rank in range(2):
        stream = BatchStream(manifest.shards, rank=rank, world=2, epoch=0, seed=0, steps=steps,
                             max_tokens=700, exclude=manifest.val_keys)  # fmt: skip
        batches = list(stream)
        counts.append(len(batches))
        for b in batches:
            assert len(set(b.keys)) == len(b.keys)
            assert not set(b.keys) & manifest.val_keys
    assert counts == [steps, steps]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    with LocalMlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="module")
def deepspeed_run(data, tmp_path_factory, mlflow_server) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("ds-run")
    registry = ["--mlflow-uri", mlflow_server.uri, "--register-name", "speaker-ds", "--alias", "candidate"]
    args = ["--data", str(data), "--out", str(out), "--epochs", "10", "--save-every", "1", *FAST, *registry]
    res = launch(args)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return out, res.stderr, args


def test_deepspeed_two_synchronized_ranks_and_loss_falls(deepspeed_run):
    out, log, _ = deepspeed_run
    assert "engine DEEPSPEED, 2 process(es)" in log and "backend gloo" in log
    digests = adapter_digests(log)
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    losses = step_losses(log)
    steps = sorted(losses)
    assert len(steps) >= 8
    first, last = losses[steps[0]], losses[steps[-1]]
    assert last < first - 0.1, losses
    state = json.loads(
        sorted((out / "checkpoints").glob("step-*"))[-1].joinpath("trainer_state.json").read_text()
    )
    assert state["epoch"] == 10 and len(state["val_history"]) == 10
    assert state["best_checkpoint"] and (out / "checkpoints" / state["best_checkpoint"] / "adapter").is_dir()
    assert (
        out / "checkpoints" / state["best_checkpoint"] / "adapter" / "adapter_model.safetensors"
    ).is_file()


def test_ddp_two_synchronized_ranks(data, tmp_path):
    res = launch(["--data", str(data), "--out", str(tmp_path), "--epochs", "2", *FAST], engine="ddp")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "engine MULTI_CPU, 2 process(es)" in res.stderr
    digests = adapter_digests(res.stderr)
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]


def test_killed_run_resumes_with_the_same_losses(deepspeed_run, tmp_path):
    _, log, args = deepspeed_run
    reference = step_losses(log)
    out = tmp_path / "killed"
    args = [a if a != args[args.index("--out") + 1] else str(out) for a in args]
    args = args[: args.index("--mlflow-uri")]  # the crash/resume run needs no registry
    proc = launch(args, background=True)
    seen = ""
    deadline = time.time() + 600
    while time.time() < deadline:
        line = proc.stdout.readline()
        seen += line
        m = STEP.search(line)
        if m and int(m[1]) >= 3:
            break
    # A crash, not an eviction: SIGKILL the launcher and every worker (they run in their own sessions).
    family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert step_losses(seen).get(3) is not None, seen[-3000:]
    res = launch([*args, "--resume"])
    assert res.returncode == 0, res.stderr[-4000:]
    resumed = step_losses(res.stderr)
    start = re.search(r"resumed from .*step-(\d+)", res.stderr)
    assert start is not None and 1 <= int(start[1]) < max(reference)  # step 3 may have died mid-save
    assert resumed, res.stderr[-3000:]
    assert min(resumed) == int(start[1]) + 1 and max(resumed) == max(reference)
    for step, loss in resumed.items():
        assert abs(loss - reference[step]) <= 1e-5, (step, loss, reference[step])


def test_sigterm_saves_a_checkpoint_exits_zero_and_the_restart_resumes(data, tmp_path):
    args = ["--data", str(data), "--out", str(tmp_path), "--epochs", "3", *FAST]
    proc = launch(args, engine="single", background=True)
    seen = ""
    while True:
        line = proc.stdout.readline()
        seen += line
        if STEP.search(line) or not line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, seen + out
    saved = re.search(r"SIGTERM: saved .*step-(\d+)", out)
    assert saved is not None, out
    res = launch([*args, "--resume"], engine="single")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {tmp_path / 'checkpoints'}/step-{saved[1]}" in res.stderr
    assert max(step_losses(res.stderr)) > int(saved[1])


def test_diverging_run_stops_with_a_clear_error(data, tmp_path):
    args = ["--data", str(data), "--out", str(tmp_path), "--epochs", "20", "--max-bad-steps", "3", *FAST,
            "--learning-rate", "1e30", "--warmup-steps", "0"]  # fmt: skip
    res = launch(args, engine="single")
    assert res.returncode == 2
    assert "non-finite loss, batch skipped (#1)" in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("indextts-dist train: error: 3 non-finite losses in a row"), last


def test_metrics_and_the_registered_model(deepspeed_run, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    out, log, _ = deepspeed_run
    client = MlflowClient(mlflow_server.uri)
    version = client.get_model_version_by_alias("speaker-ds", "candidate")
    run = client.get_run(version.run_id)
    losses = step_losses(log)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == sorted(losses)
    assert all(abs(m.value - losses[m.step]) < 1e-5 for m in history)
    for name in ("lr", "grad_norm", "tokens_per_s", "text_loss", "mel_loss"):
        assert len(client.get_metric_history(run.info.run_id, name)) == len(losses), name
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 10
    assert run.data.params["lora_rank"] == "4" and run.data.params["learning_rate"] == "0.005"
    package = load_package(out / "model")
    manifest = package.manifest
    state = json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "trainer_state.json").read_text())
    assert manifest["selection"]["checkpoint"] == state["best_checkpoint"]
    assert manifest["selection"]["why"] == "lowest validation loss"
    assert "RANDOM" in manifest["label"]
    assert len(list((out / "model" / "reference").iterdir())) == 1
    # A fresh process with only the package and the tracking URI loads it and generates.
    code = (
        "import mlflow, json\n"
        "m = mlflow.pyfunc.load_model('models:/speaker-ds@candidate')\n"
        "print(json.dumps(m.predict(['Well, [UH] hello.'], params={'seed': 0, 'max_new_tokens': 30})))\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": mlflow_server.uri}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    codes = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(codes) == 1 and all(isinstance(c, int) for c in codes[0])


def test_unreachable_tracking_server_trains_on_and_leaves_a_register_command(data, tmp_path, mlflow_server):
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["--data", str(data), "--out", str(tmp_path), "--epochs", "2", *FAST,
            "--mlflow-uri", dead, "--register-name", "speaker-late", "--register-retries", "1"]  # fmt: skip
    res = launch(args, engine="single")
    assert res.returncode == 2
    assert "[train] done:" in res.stderr  # training went on without the server
    assert (tmp_path / "model" / "manifest.json").is_file()
    last = res.stderr.strip().splitlines()[-1]
    assert "indextts-dist register --package" in last, last
    command = last[last.index("indextts-dist register") :].split()
    command[command.index("--mlflow-uri") + 1] = mlflow_server.uri  # the server is back
    later = subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert later.returncode == 0, later.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    assert (
        MlflowClient(mlflow_server.uri).get_model_version_by_alias("speaker-late", "candidate").version == "1"
    )


def test_dataloader_workers_split_shards_and_keep_the_step_count(data):
    """Workers of one rank split its shards and still yield exactly the epoch's batch count."""
    manifest = load_manifest(data)
    lengths = [(s.text_len, s.code_len) for s in manifest.train_samples]
    steps = steps_per_epoch(lengths, 700, world=1, workers=2)
    stream = BatchStream(manifest.shards, rank=0, world=1, epoch=1, seed=0, steps=steps, max_tokens=700,
                         exclude=manifest.val_keys)  # fmt: skip
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    keys = [b.keys for b in loader]
    assert len(keys) == steps and steps % 2 == 0
    assert [b.keys for b in torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)] == keys


def test_bf16_deepspeed_as_the_gpu_config_runs(data, tmp_path):
    """The shipped GPU config trains in bf16; the same code path runs here on CPU (DeepSpeed keeps
    buffers in fp32 and casts parameters only: mixed dtypes must not break the step)."""
    config = (
        (REPO / "accelerate_config.cpu.yaml")
        .read_text()
        .replace("mixed_precision: 'no'", "mixed_precision: bf16")
    )
    assert "mixed_precision: bf16" in (REPO / "accelerate_config.yaml").read_text()
    (tmp_path / "bf16.yaml").write_text(config)
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    head = [str(ACCELERATE), "launch", "--config_file", str(tmp_path / "bf16.yaml")]
    job = [str(REPO / "launch" / "train.py"), "--data", str(data), "--out", str(tmp_path / "run")]
    cmd = [*head, "--main_process_port", str(free_port()), *job, "--epochs", "1", *FAST]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mixed precision bf16" in res.stderr
    assert all(math.isfinite(v) for v in step_losses(res.stderr).values())
