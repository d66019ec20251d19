"""What must not depend on the number of processes, measured across world sizes 1, 2 and 3 under
DeepSpeed ZeRO-2 and under DDP: the learning rate of each optimizer step (read back from MLflow and
checked against the formula), and every training sample exactly once per epoch (`epoch_samples`,
`epoch_unique_samples`). Also: a skipped non-finite step changes nothing, accumulation windows end
with the epoch, resume refuses another data plan, ZeRO-3 is refused."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import torch
from train_support import FAST, REPO, launch, make_data, step_losses

from indextts_dist.dataset import load_manifest
from indextts_dist.tracking import LocalMlflowServer
from indextts_dist.train import OptimSettings, TrainOptions
from indextts_dist.train.loop import Trainer, _Eviction
from indextts_dist.train.schedule import learning_rate_at

pytestmark = pytest.mark.slow
PEAK, WARMUP = 5e-3, 2
TOTAL = re.compile(r"per epoch, (\d+) steps")


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> Path:
    """8 clips in 3 shards (3 + 3 + 2), 7 training samples: odd, and uneven over 2 or 3 ranks."""
    return make_data(tmp_path_factory.mktemp("uneven"), clips_per_shard=3)


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory) -> Path:
    """The same 8 clips in a single shard: ranks must share it."""
    return make_data(tmp_path_factory.mktemp("one-shard"), clips_per_shard=8)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    with LocalMlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


CASES = [
    ("deepspeed", 1, "uneven", 0),
    ("deepspeed", 2, "uneven", 0),
    ("deepspeed", 3, "uneven", 2),
    ("ddp", 1, "one_shard", 0),
    ("ddp", 2, "one_shard", 2),
    ("ddp", 3, "one_shard", 0),
]


@pytest.mark.parametrize("engine,world,dataset,workers", CASES, ids=[f"{e}-{w}-{d}" for e, w, d, _ in CASES])
def test_schedule_and_samples_per_epoch_do_not_depend_on_the_world_size(
    request, tmp_path, mlflow_server, engine, world, dataset, workers
):
    from mlflow.tracking import MlflowClient

    data = request.getfixturevalue(dataset)
    n_train = len(load_manifest(data).train_samples)
    name = f"{engine}-{world}-{dataset}"
    tracking = ["--mlflow-uri", mlflow_server.uri, "--experiment", "world-matrix"]
    args = ["--data", str(data), "--out", str(tmp_path / name), "--epochs", "3", *FAST,
            "--num-workers", str(workers), *tracking]  # fmt: skip
    res = launch(args, engine=engine, processes=world)
    assert res.returncode == 0, res.stderr[-4000:]
    assert f"{world} process(es)" in res.stderr
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("world-matrix")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.mlflow.runName = '{name}'")
    lr = client.get_metric_history(run.info.run_id, "lr")
    total = int(TOTAL.search(res.stderr)[1])
    assert [m.step for m in sorted(lr, key=lambda m: m.step)] == list(range(1, total + 1))
    for m in lr:
        assert m.value == pytest.approx(learning_rate_at(m.step, PEAK, WARMUP, total), rel=1e-9, abs=1e-15)
    by_step = {m.step: m.value for m in lr}
    assert by_step[WARMUP] == pytest.approx(PEAK) and by_step[total] == pytest.approx(0.0, abs=1e-15)
    for metric in ("epoch_samples", "epoch_unique_samples"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [m.value for m in history] == [n_train] * 3, metric


def _options(data: Path, out: Path, **optim) -> TrainOptions:
    settings = dict(warmup_steps=WARMUP, max_tokens_per_batch=700, learning_rate=PEAK, epochs=2) | optim
    from indextts_dist.lora import LoraSettings

    return TrainOptions(data=data, out=out, lora=LoraSettings(4, 8, 0.0), optim=OptimSettings(**settings))


def test_a_skipped_non_finite_step_changes_nothing(uneven, tmp_path):
    """In one process: after a real step, a batch whose loss is NaN leaves the adapter, AdamW's
    moments and step count, the optimizer step counter and the next learning rate as they were."""
    trainer = Trainer(_options(uneven, tmp_path, weight_decay=0.1))
    batches = iter(trainer.batches())
    eviction = _Eviction()
    try:
        trainer.account(trainer.micro_step(next(batches), eviction))
        trainer.after_optimizer_step()
        assert trainer.state.step == 1
        params = [p.detach().clone() for p in trainer.trainable]
        moments = copy.deepcopy(trainer.adamw.state_dict()["state"])
        next_lr = trainer._set_learning_rate()
        forward = trainer.model.forward

        def poisoned(*args):
            parts = forward(*args)
            parts.total = parts.total * float("nan")
            return parts

        trainer.model.forward = poisoned
        flags = trainer.micro_step(next(batches), eviction)
        trainer.account(flags)
        trainer.after_optimizer_step()
    finally:
        eviction.restore()
    assert flags[0] == 1 and trainer.state.skipped_steps == 1
    assert trainer.state.step == 1
    assert all(torch.equal(a, b.detach()) for a, b in zip(params, trainer.trainable, strict=True))
    after = trainer.adamw.state_dict()["state"]
    assert moments.keys() == after.keys()
    for k in moments:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(moments[k][name], after[k][name]), (k, name)
    assert trainer._set_learning_rate() == next_lr


def _epoch_end_checkpoints(out: Path) -> list[Path]:
    import json

    done = sorted((out / "checkpoints").glob("step-*"))
    return [p for p in done if json.loads((p / "trainer_state.json").read_text())["epoch_end"]]


def test_accumulation_windows_end_with_the_epoch_and_resume_keeps_every_gradient(uneven, tmp_path):
    """--grad-accum 2 over an epoch whose micro-batch count is odd before padding: resuming from
    the epoch-end checkpoint repeats the uninterrupted run's losses exactly; a resume with more
    DataLoader workers is allowed, since workers change neither data nor order."""
    args = ["--data", str(uneven), "--out", str(tmp_path / "a"), "--epochs", "2", "--grad-accum", "2", *FAST]
    full = launch(args, engine="single")
    assert full.returncode == 0, full.stderr[-3000:]
    reference = step_losses(full.stderr)
    ends = _epoch_end_checkpoints(tmp_path / "a")
    assert len(ends) == 2
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / ends[-1].name)
    resumed_args = [a if a != str(tmp_path / "a") else str(tmp_path / "b") for a in args]
    res = launch([*resumed_args, "--resume", "--num-workers", "2"], engine="single")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {tmp_path / 'b' / 'checkpoints' / ends[0].name}" in res.stderr
    resumed = step_losses(res.stderr)
    first_of_epoch_2 = int(ends[0].name.split("-")[1]) + 1
    assert sorted(resumed) == [k for k in sorted(reference) if k >= first_of_epoch_2]
    for step, loss in resumed.items():
        assert abs(loss - reference[step]) <= 1e-6, (step, loss, reference[step])

    # Another token budget lands the same step on other data: refused, naming what differs.
    other = launch([*resumed_args, "--resume", "--max-tokens-per-batch", "800"], engine="single")
    assert other.returncode == 2, other.stderr[-2000:]
    last = other.stderr.strip().splitlines()[-1]
    assert "cannot resume" in last and "--max-tokens-per-batch 700 -> 800" in last, last


def test_resume_with_another_world_size_is_refused(uneven, tmp_path):
    args = ["--data", str(uneven), "--out", str(tmp_path), "--epochs", "1", *FAST]
    assert launch(args, engine="single").returncode == 0
    res = launch([*args, "--resume"], engine="ddp", processes=2)
    assert res.returncode != 0
    assert "cannot resume" in res.stderr and "processes 1 -> 2" in res.stderr, res.stderr[-2000:]


def test_zero_stage_3_is_refused_with_a_clear_error(uneven, tmp_path):
    config = (REPO / "accelerate_config.cpu.yaml").read_text().replace("zero_stage: 2", "zero_stage: 3")
    (tmp_path / "zero3.yaml").write_text(config)
    args = ["--data", str(uneven), "--out", str(tmp_path / "run"), "--epochs", "1", *FAST]
    res = launch(args, processes=1, config=tmp_path / "zero3.yaml")
    assert res.returncode != 0
    assert "indextts-dist train: error: DeepSpeed ZeRO stage 3 is not supported" in res.stderr, res.stderr[
        -3000:
    ]
    assert "exitcode  : 2" in res.stderr  # the job's own one-line error, not a traceback
