"""The trainer for real: shards from the preprocess job on espeak-ng audio, `accelerate launch` with
2 processes under DeepSpeed ZeRO-2 (gloo) and under DDP, kill + resume, SIGTERM, divergence."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from train_support import FAST, REPO, STEP, adapter_digests, free_port, launch, make_data, step_losses

from indextts_dist.dataset import load_manifest
from indextts_dist.errors import InputError
from indextts_dist.inference.loaded import load_package
from indextts_dist.tracking import LocalMlflowServer
from indextts_dist.train.checkpoints import read_state
from indextts_dist.train.resume_check import ResumeMismatch, check_resumable
from indextts_dist.train.stream import PlanStream

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """8 espeak-ng clips preprocessed into 3 shards (3 + 3 + 2 clips): uneven over 2 ranks."""
    return make_data(tmp_path_factory.mktemp("train-data"), clips_per_shard=3)


def planned_keys(data: Path, world: int, workers: int, epoch: int) -> list[list[list[str]]]:
    """Per rank, the keys of each real (weight 1) micro-batch, read from the tars by DataLoader."""
    manifest = load_manifest(data)
    out = []
    for rank in range(world):
        stream = PlanStream(manifest.train_samples, rank=rank, world=world, epoch=epoch, seed=0,
                            grad_accum=1, max_tokens=700, prefix_rows=34)  # fmt: skip
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
        batches = list(loader)
        assert len(batches) == len(stream)
        for b in batches:
            assert len(set(b.keys)) == len(b.keys) and b.codes.size(0) == len(b.keys)
        out.append([b.keys for b in batches if b.weight > 0])
        assert all(b.weight == 0 for b in batches[len(out[-1]) :])  # padding only at the end
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_epoch_reads_every_training_sample_once_over_ranks(data, world):
    manifest = load_manifest(data)
    assert len(manifest.shards) == 3 and len(manifest.train_samples) % 2 == 1  # uneven shards, odd count
    train = sorted(s.key for s in manifest.train_samples)
    for epoch in range(2):
        ranks = planned_keys(data, world, workers=0, epoch=epoch)
        gathered = sorted(k for r in ranks for b in r for k in b)
        assert gathered == train  # exactly once each, and never a validation key
        assert not set(gathered) & manifest.val_keys


def test_dataloader_workers_change_neither_the_data_nor_its_order(data):
    for world in (1, 3):
        assert planned_keys(data, world, workers=2, epoch=1) == planned_keys(data, world, workers=0, epoch=1)


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


def test_sigterm_saves_a_checkpoint_exits_zero_and_the_restart_resumes(data, tmp_path, mlflow_server):
    """...and continues the same MLflow run (an evicted pod's replacement does not open a new one)."""
    from mlflow.tracking import MlflowClient

    tracking = ["--mlflow-uri", mlflow_server.uri, "--experiment", "sigterm-resume"]
    args = ["--data", str(data), "--out", str(tmp_path), "--epochs", "3", *FAST, *tracking]
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
    resumed = step_losses(res.stderr)
    assert min(resumed) == int(saved[1]) + 1
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("sigterm-resume")
    (run,) = client.search_runs([experiment.experiment_id])  # one run for the whole job
    assert run.info.status == "FINISHED"
    logged = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    assert logged == set(range(1, max(resumed) + 1))  # before the eviction and after it


@pytest.mark.parametrize("engine", ["single", "deepspeed"])
def test_diverging_run_stops_with_a_clear_error(data, tmp_path, engine):
    """Under DeepSpeed the skip is DeepSpeed's own overflow skip; the trainer checks that DeepSpeed
    skipped exactly the steps it decided to skip (a mismatch would end in a traceback, exit 1)."""
    args = ["--data", str(data), "--out", str(tmp_path), "--epochs", "20", "--max-bad-steps", "3", *FAST,
            "--learning-rate", "1e30", "--warmup-steps", "0"]  # fmt: skip
    res = launch(args, engine=engine, processes=1)
    assert "non-finite loss, batch skipped (#1)" in res.stderr
    if engine == "single":
        assert res.returncode == 2
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("indextts-dist train: error: 3 non-finite losses in a row"), last
    else:  # the launcher reports the job's exit code 2 (a traceback would be 1)
        assert "indextts-dist train: error: 3 non-finite losses in a row" in res.stderr, res.stderr[-3000:]
        assert "exitcode  : 2" in res.stderr


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


def test_bf16_deepspeed_as_the_gpu_config_trains_like_fp32_and_exports_fp32_masters(
    data, tmp_path, deepspeed_run
):
    """The shipped GPU config trains in bf16; the same code path runs here on CPU. Its losses follow
    the fp32 run's (same data, seed, world), and the exported adapter holds the fp32 master weights,
    not the bf16 copies the module computes with."""
    config = (
        (REPO / "accelerate_config.cpu.yaml")
        .read_text()
        .replace("mixed_precision: 'no'", "mixed_precision: bf16")
    )
    assert "mixed_precision: bf16" in (REPO / "accelerate_config.yaml").read_text()
    (tmp_path / "bf16.yaml").write_text(config)
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", *FAST]
    res = launch(args, config=tmp_path / "bf16.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mixed precision bf16" in res.stderr
    bf16, fp32 = step_losses(res.stderr), step_losses(deepspeed_run[1])
    assert bf16 and all(abs(bf16[k] - fp32[k]) < 0.05 for k in bf16), (bf16, fp32)
    adapter = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1] / "adapter"
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert weights and all(w.dtype == torch.float32 for w in weights.values())
    trained = [w for k, w in weights.items() if "lora_B" in k]  # zero at start, moved by training
    assert any(bool((w != w.bfloat16().float()).any()) for w in trained), "adapter rounded to bf16"


def test_the_second_stage_style_is_the_mean_over_all_accepted_clips(tmp_path):
    """12 accepted clips: the packaged CAMPPlus style is the mean over all 12, not over the first 10."""
    from indextts_dist.speech.second_stage import SecondStage

    data = make_data(tmp_path / "twelve", clips_per_shard=6, n_clips=12)
    manifest = load_manifest(data)
    sources = sorted({s.source for s in manifest.samples})
    assert len(sources) == 12
    res = launch(["--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--max-steps", "1",
                  *FAST], engine="single")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    packaged = load_file(str(tmp_path / "run" / "model" / "speaker_embeddings.safetensors"))
    audio = Path(manifest.info["audio_dir"])
    stage = SecondStage.tiny(0)
    every = stage.speaker_embeddings([audio / s for s in sources]).style
    first_ten = stage.speaker_embeddings([audio / s for s in sources[:10]]).style
    assert torch.allclose(packaged["style"], every, atol=1e-6)
    assert not torch.allclose(packaged["style"], first_ten, atol=1e-6)


@pytest.fixture(scope="module")
def per_clip_full_run(data, tmp_path_factory, mlflow_server) -> tuple[Path, str, list[str]]:
    """The "v1" experiment's base: full fine-tuning against each clip's own conditioning, 2 DeepSpeed
    ranks, registered."""
    out = tmp_path_factory.mktemp("per-clip-full")
    registry = ["--mlflow-uri", mlflow_server.uri, "--register-name", "speaker-v1", "--alias", "candidate"]
    args = ["--data", str(data), "--out", str(out), "--epochs", "2", "--conditioning", "per-clip",
            "--method", "full", *FAST, *registry]  # fmt: skip
    res = launch(args)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return out, res.stderr, args


def test_per_clip_full_fine_tuning_trains_every_weight_on_synced_ranks(per_clip_full_run, mlflow_server):
    from mlflow.tracking import MlflowClient

    out, log, _ = per_clip_full_run
    assert "engine DEEPSPEED, 2 process(es)" in log and "(full) parameters, per-clip conditioning" in log
    digests = adapter_digests(log)
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    package = load_package(out / "model")
    assert (package.manifest["method"], package.manifest["conditioning_kind"]) == ("full", "per-clip")
    assert package.manifest["lora"] is None and "lora" not in package.manifest["params"]
    weights = load_file(str(out / "model" / "adapter" / "gpt_weights.safetensors"))
    base = package.without_adapter().model.state_dict()
    assert set(weights) == set(base)  # the whole GPT, every weight moved by training
    assert all(not torch.equal(weights[k], base[k]) for k in weights if k.startswith("gpt.h."))
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(client.get_model_version_by_alias("speaker-v1", "candidate").run_id)
    assert (run.data.params["method"], run.data.params["conditioning"]) == ("full", "per-clip")


def test_per_clip_run_resumes_from_an_epoch_checkpoint_with_the_same_losses(per_clip_full_run, tmp_path):
    """Full fine-tuning's optimizer state (every weight's AdamW moments) survives a resume."""
    import shutil

    out, log, args = per_clip_full_run
    reference = step_losses(log)
    first_epoch = min(p for p in (out / "checkpoints").glob("step-*"))
    resumed_out = tmp_path / "resumed"
    shutil.copytree(first_epoch, resumed_out / "checkpoints" / first_epoch.name)
    args = [a if a != str(out) else str(resumed_out) for a in args][: args.index("--mlflow-uri")]
    res = launch([*args, "--resume"])
    assert res.returncode == 0, res.stderr[-4000:]
    resumed = step_losses(res.stderr)
    step = int(first_epoch.name.split("-")[1])
    assert resumed and min(resumed) == step + 1 and max(resumed) == max(reference)
    for k, loss in resumed.items():
        assert abs(loss - reference[k]) <= 1e-5, (k, loss, reference[k])
    layout = read_state(first_epoch).layout
    with pytest.raises(ResumeMismatch, match="--conditioning per-clip -> global; --method full -> lora"):
        check_resumable(first_epoch, layout, {**layout, "conditioning": "global", "method": "lora"})
    older = {k: v for k, v in layout.items() if k not in ("conditioning", "method")}
    check_resumable(first_epoch, older, {**layout, "conditioning": "global", "method": "lora"})  # defaults


def test_a_per_clip_model_generates_with_a_named_reference_clip(per_clip_full_run, mlflow_server, tmp_path):
    exe = Path(sys.executable).parent / "indextts-dist"
    clip = next((per_clip_full_run[0] / "model" / "reference").iterdir())  # a clip of the speaker
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server.uri, OMP_NUM_THREADS="1")
    base = [str(exe), "evaluate", "--model", "models:/speaker-v1@candidate", "--seeds", "1",
            "--max-codes", "20", "--out", str(tmp_path / "ev"), "--json", "--device", "cpu",
            "--resamples", "50"]  # fmt: skip
    with pytest.raises(InputError, match="--reference-clip FILE"):  # no meaningful own conditioning
        load_package(per_clip_full_run[0] / "model").with_reference_clip(None)
    res = subprocess.run([*base, "--reference-clip", str(clip)], capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert report["model"]["conditioning"] == "per-clip" and report["model"]["method"] == "full"
    assert report["model"]["reference_clip"] == str(clip)
    assert report["code"]["codes_per_text_token"]["adapted"] > 0
