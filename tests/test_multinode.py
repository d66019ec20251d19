"""Multi-node, proven on one machine: 2 "nodes" x 1 process, each node its own torchrun launcher,
rendezvous over c10d on loopback — as the Kubernetes Indexed Jobs run them. Preprocess is compared
with ONE process (world 2 vs 1: shards and conditioning must not depend on the world). Training is
compared with one node running the same world size (2 x 1 vs 1 x 2): the loss curve depends on the
world size (an optimizer step averages one micro-batch per rank), so only the same world can match
it step by step; what must not depend on the world (learning rate per step, every sample once per
epoch) is checked against the formula and the training split, as tests/test_train_world.py does
for 1, 2 and 3 processes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from indextts_dist.conditioning import load_conditioning
from indextts_dist.corpus import synthesize_corpus
from indextts_dist.dataset import load_manifest
from indextts_dist.distributed import World
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.preprocess.shards import read_tar_samples
from indextts_dist.train.schedule import learning_rate_at

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"\[train\] step (\d+) loss ([0-9.]+)")
TRAIN = ["--epochs", "3", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.0",
         "--warmup-steps", "2", "--max-tokens-per-batch", "700", "--learning-rate", "5e-3"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(job: list[str], extra_env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Two torchrun launchers (one per "node"), one process each, meeting at a c10d rendezvous."""
    endpoint = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", **(extra_env or {}))
    procs = []
    for node in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--node_rank", str(node), "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
               "--rdzv_id", f"test-{endpoint}", "-m", "indextts_dist.cli.main", *job]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("multinode")
    clips = synthesize_corpus(root / "audio", n_clips=6, seed=5)
    csv = root / "transcripts.csv"
    csv.write_text("file,text\n" + "".join(f'{c.path.name},"{c.expected}"\n' for c in clips))
    return root / "audio", csv


@pytest.fixture(scope="module")
def single_node(corpus, tmp_path_factory) -> Path:
    audio, csv = corpus
    out = tmp_path_factory.mktemp("one-node")
    run_preprocess(
        PreprocessOptions(audio_dir=audio, out=out, transcripts=csv, clips_per_shard=2), World(0, 1, 0)
    )
    return out


def samples(out: Path) -> dict[str, tuple]:
    found = {}
    for tar in sorted(out.glob("shard-*.tar")):
        for s in read_tar_samples(tar):
            found[s["__key__"]] = (s["text_ids.npy"].tolist(), s["codes.npy"].tolist(), json.dumps(s["json"]))
    return found


def test_preprocess_on_two_nodes_equals_one_node(corpus, single_node, tmp_path):
    audio, csv = corpus
    out = tmp_path / "two-nodes"
    job = ["preprocess", "--audio-dir", str(audio), "--out", str(out), "--transcripts", str(csv),
           "--clips-per-shard", "2"]  # fmt: skip
    results = two_nodes(job)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    assert list(out.glob("shard-000-*.tar")) and list(out.glob("shard-001-*.tar"))  # both nodes wrote
    assert samples(out) == samples(single_node)
    a = load_conditioning(single_node / "global_conditioning.safetensors")
    b = load_conditioning(out / "global_conditioning.safetensors")
    assert float((a.gpt_conditioning - b.gpt_conditioning).abs().max()) <= 1e-6
    assert float((a.emo_vec - b.emo_vec).abs().max()) <= 1e-6


def losses(log: str) -> dict[int, float]:
    return {int(m[1]): float(m[2]) for m in STEP.finditer(log)}


def test_training_on_two_nodes_follows_the_one_node_loss_curve(single_node, tmp_path):
    config = str(REPO / "accelerate_config.cpu.yaml")
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", config,
                "--main_process_port", str(free_port())]  # fmt: skip
    job = [
        str(REPO / "launch" / "train.py"),
        "--data",
        str(single_node),
        "--out",
        str(tmp_path / "one"),
        *TRAIN,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    one = subprocess.run([*launcher, *job], capture_output=True, text=True, timeout=900, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    # What a pod runs: torchrun per node, DeepSpeed ZeRO-2 through Accelerate's environment.
    deepspeed = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
                 "ACCELERATE_MIXED_PRECISION": "no"}  # fmt: skip
    results = two_nodes(
        ["train", "--data", str(single_node), "--out", str(tmp_path / "two"), *TRAIN], deepspeed
    )
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    main_log = next(r.stderr for r in results if "engine" in r.stderr)
    assert "engine DEEPSPEED, 2 process(es)" in main_log
    curve_one, curve_two = losses(one.stderr), losses(main_log)
    assert sorted(curve_one) == sorted(curve_two) and len(curve_one) >= 4
    for step, loss in curve_one.items():
        assert abs(loss - curve_two[step]) <= 1e-4, (step, loss, curve_two[step])
    n_train = len(load_manifest(single_node).train_samples)
    total = int(re.search(r"per epoch, (\d+) steps", main_log)[1])
    for log in (one.stderr, main_log):
        lrs = {int(k): float(v) for k, v in re.findall(r"\[train\] step (\d+) loss .* lr ([0-9.e-]+)", log)}
        formula = {k: learning_rate_at(k, 5e-3, 2, total) for k in range(1, total + 1)}
        assert lrs == pytest.approx(formula, rel=1e-5, abs=1e-9)
        epochs = re.findall(r"(\d+) samples \((\d+) distinct\) of (\d+)", log)
        assert epochs == [(str(n_train),) * 3] * 3, epochs
    digests = set(re.findall(r"adapter sha256 (\w+)", "".join(r.stderr for r in results)))
    assert len(digests) == 1  # both nodes hold the same adapter
    assert torch.cuda.is_available() or "backend gloo" in main_log
