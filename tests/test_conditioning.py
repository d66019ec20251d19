"""The conditioning contract: sums -> ONE all-reduce -> mean -> file, the one base-fingerprint rule,
and training from a dataset that carries its speaker embeddings (moved, its audio folder deleted)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import save_file
from train_support import FAST, launch, make_data

from indextts_dist.conditioning import (
    ConditioningError,
    ConditioningSums,
    GlobalConditioning,
    all_reduce_sums,
    check_base,
    check_speaker_embeddings,
    load_conditioning,
    load_sums,
    save_conditioning,
    save_sums,
)
from indextts_dist.corpus import synthesize_corpus
from indextts_dist.distributed import World
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.preprocess.transcripts import transcripts_csv

COLLECTIVES = (
    "all_gather", "all_gather_into_tensor", "all_gather_object", "all_reduce", "all_to_all",
    "all_to_all_single", "barrier", "broadcast", "broadcast_object_list", "gather", "gather_object",
    "irecv", "isend", "monitored_barrier", "recv", "reduce", "reduce_scatter", "reduce_scatter_tensor",
    "scatter", "scatter_object_list", "send",
)  # fmt: skip
"""Every collective or point-to-point call of torch.distributed: the job may make one all_reduce."""


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def random_sums(clips: int, style: bool = True) -> tuple[ConditioningSums, list[tuple]]:
    sums = ConditioningSums.zeros(4, 3, style_dim=2)
    parts = [(torch.randn(4, 3), torch.randn(3), torch.randn(2) if style else None) for _ in range(clips)]
    for p in parts:
        sums.add(*p)
    return sums, parts


# -- sums, the mean, the file -------------------------------------------------------------------------


def test_sums_round_trip_through_flat_and_their_unit_file(tmp_path):
    sums, _ = random_sums(3)
    back = sums.from_flat(sums.flat())
    assert (back.count, back.style_count) == (3, 3)
    for a, b in ((back.spk, sums.spk), (back.emo, sums.emo), (back.style, sums.style)):
        assert a.dtype == torch.float64 and torch.equal(a, b)
    loaded = load_sums(save_sums(sums, tmp_path / "u.cond.safetensors"))
    assert torch.equal(loaded.flat(), sums.flat())
    with pytest.raises(ValueError, match="does not fit"):
        sums.from_flat(torch.zeros(5))


def test_the_conditioning_is_the_mean_and_says_how_many_clips_it_averages(tmp_path):
    sums, parts = random_sums(3)
    other, more = random_sums(2)
    sums.merge(other)
    cond = GlobalConditioning.from_sums(sums, {"base_model_fingerprint": "b" * 64})
    every = parts + more
    assert torch.allclose(cond.gpt_conditioning, torch.stack([p[0] for p in every]).mean(0), atol=1e-6)
    assert torch.allclose(cond.emo_vec, torch.stack([p[1] for p in every]).mean(0), atol=1e-6)
    assert torch.allclose(sums.mean_style(), torch.stack([p[2] for p in every]).double().mean(0))
    assert cond.metadata == {"base_model_fingerprint": "b" * 64, "num_clips": "5", "method": "mean"}
    back = load_conditioning(save_conditioning(cond, tmp_path / "c.safetensors"))
    assert back.metadata == cond.metadata and torch.equal(back.emo_vec, cond.emo_vec)
    with pytest.raises(ConditioningError, match="no clip was accepted"):
        GlobalConditioning.from_sums(ConditioningSums.zeros(4, 3), {})


def test_a_style_is_the_speakers_only_when_every_clip_has_one():
    with_style, _ = random_sums(2)
    without, _ = random_sums(1, style=False)  # a rank without second-stage weights
    with_style.merge(without)
    assert with_style.count == 3 and with_style.style_count == 2
    assert with_style.mean_style() is None
    assert ConditioningSums.zeros(4, 3).mean_style() is None


def test_one_process_reduces_without_any_collective(monkeypatch):
    calls = count_collectives(monkeypatch.setattr)
    sums, _ = random_sums(2)
    assert all_reduce_sums(sums, World(0, 1, 0)) is sums
    assert calls == {}


# -- the one base-fingerprint rule --------------------------------------------------------------------


def test_check_base_refuses_a_conditioning_without_a_fingerprint_or_from_another_base():
    base = "a" * 64
    made = GlobalConditioning(torch.zeros(4, 3), torch.zeros(3), {"base_model_fingerprint": base})
    check_base(made, base, "c.safetensors")
    with pytest.raises(ConditioningError) as exc:
        check_base(GlobalConditioning(torch.zeros(4, 3), torch.zeros(3), {}), base, "c.safetensors")
    assert one_line(exc).startswith("c.safetensors: ") and "no base_model_fingerprint" in one_line(exc)
    with pytest.raises(ConditioningError) as exc:
        check_base(made, "f" * 64, "c.safetensors", "--weights other.pth")
    assert base in one_line(exc) and "f" * 64 in one_line(exc) and "--weights other.pth" in one_line(exc)


def test_speaker_embeddings_from_other_clips_are_refused(tmp_path):
    cond = GlobalConditioning(torch.zeros(4, 3), torch.zeros(3), {"num_clips": "5", "source_digest": "d1"})
    path = tmp_path / "speaker_embeddings.safetensors"
    tensors = {"style": torch.zeros(2)}
    save_file(
        tensors, str(path), metadata={"num_clips": "5", "source_digest": "d1", "style_fingerprint": "s"}
    )
    assert check_speaker_embeddings(path, cond, "c.safetensors", style_fingerprint="s")["num_clips"] == "5"
    save_file(
        tensors, str(path), metadata={"num_clips": "4", "source_digest": "d0", "style_fingerprint": "s"}
    )
    with pytest.raises(ConditioningError) as exc:
        check_speaker_embeddings(path, cond, "c.safetensors")
    assert "not averaged over the clips of c.safetensors" in one_line(exc)
    save_file(
        tensors, str(path), metadata={"num_clips": "5", "source_digest": "d1", "style_fingerprint": "s"}
    )
    with pytest.raises(ConditioningError, match="computed by CAMPPlus s"):
        check_speaker_embeddings(path, cond, "c.safetensors", style_fingerprint="other")


# -- the job's one collective, counted on 2 in-process gloo ranks -------------------------------------


def count_collectives(setattr_) -> dict[str, int]:
    """Wrap every torch.distributed collective with a counter; `setattr_(module, name, value)`."""
    calls: dict[str, int] = {}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return wrapper

    for name in COLLECTIVES:
        if hasattr(dist, name):
            setattr_(dist, name, counted(name, getattr(dist, name)))
    return calls


def _rank(rank: int, port: int, opts: PreprocessOptions, report: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        calls = count_collectives(setattr)
        run_preprocess(opts, World(rank, 2, rank))
        (report / f"calls-{rank}.json").write_text(json.dumps(calls))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    clips = synthesize_corpus(root / "audio", n_clips=5, seed=2, formats=("wav",))
    csv = root / "transcripts.csv"
    csv.write_text(transcripts_csv(sorted((c.path.name, c.expected) for c in clips)))
    return root / "audio", csv


@pytest.mark.slow
def test_the_job_makes_exactly_one_all_reduce_and_two_ranks_match_one(corpus, tmp_path):
    audio, csv = corpus
    options = lambda out: PreprocessOptions(audio, out, transcripts=csv, clips_per_shard=2)  # noqa: E731
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(
        _rank, args=(port, options(tmp_path / "two"), tmp_path), nprocs=2, start_method="spawn"
    )
    for rank in range(2):
        assert json.loads((tmp_path / f"calls-{rank}.json").read_text()) == {"all_reduce": 1}

    run_preprocess(options(tmp_path / "one"), World(0, 1, 0))
    one, two = (
        load_conditioning(tmp_path / "one" / CONDITIONING),
        load_conditioning(tmp_path / "two" / CONDITIONING),
    )
    assert torch.allclose(one.gpt_conditioning, two.gpt_conditioning, atol=1e-6)
    assert one.metadata == two.metadata
    a, b = tensors(tmp_path / "one" / SPEAKER), tensors(tmp_path / "two" / SPEAKER)
    assert a.keys() == b.keys() == {"style", "ref_mel", "prompt_condition"}
    assert torch.allclose(a["style"], b["style"], rtol=1e-5, atol=1e-12)


CONDITIONING = "global_conditioning.safetensors"
SPEAKER = "speaker_embeddings.safetensors"


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)


# -- training from the dataset alone ------------------------------------------------------------------


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> Path:
    """A preprocessed dataset copied elsewhere, the audio folder it was made from deleted."""
    root = tmp_path_factory.mktemp("made")
    data = make_data(root, clips_per_shard=2, n_clips=4)
    dest = tmp_path_factory.mktemp("moved") / "data"
    shutil.copytree(data, dest)
    shutil.rmtree(root)
    assert not Path(json.loads((dest / "dataset_info.json").read_text())["audio_dir"]).exists()
    return dest


def train(data: Path, out: Path):
    args = ["--data", str(data), "--out", str(out), "--epochs", "1", "--max-steps", "1", *FAST]
    return launch(args, engine="single")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.slow
def test_training_a_moved_dataset_packages_its_speaker_embeddings(moved, tmp_path):
    res = train(moved, tmp_path / "run")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "codes-only" not in res.stderr
    package = tmp_path / "run" / "model"
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["speaker_embeddings"] == SPEAKER
    assert (package / SPEAKER).read_bytes() == (moved / SPEAKER).read_bytes()
    info = json.loads((moved / "dataset_info.json").read_text())
    (clip,) = manifest["reference_clips"]
    assert (package / clip).read_bytes() == (moved / info["reference_files"][0]).read_bytes()


@pytest.mark.slow
def test_training_refuses_at_start_a_conditioning_that_records_no_base(moved, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(moved, data)
    cond = load_conditioning(data / CONDITIONING)
    del cond.metadata["base_model_fingerprint"]
    save_conditioning(cond, data / CONDITIONING)
    res = train(data, tmp_path / "run")
    assert res.returncode == 2, res.stderr[-3000:]
    (line,) = error_lines(res.stderr)
    assert str(data / CONDITIONING) in line and "no base_model_fingerprint" in line
    assert "Traceback" not in res.stderr and "[train] step" not in res.stderr
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))


@pytest.mark.slow
def test_training_refuses_at_start_speaker_embeddings_of_other_clips(moved, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(moved, data)
    with safe_open(str(data / SPEAKER), framework="pt") as fh:
        meta = {**fh.metadata(), "num_clips": "99"}
    save_file(tensors(data / SPEAKER), str(data / SPEAKER), metadata=meta)
    res = train(data, tmp_path / "run")
    assert res.returncode == 2, res.stderr[-3000:]
    (line,) = error_lines(res.stderr)
    assert str(data / SPEAKER) in line and "num_clips 99 vs 4" in line
    assert "[train] step" not in res.stderr


@pytest.mark.slow
def test_a_dataset_without_speaker_embeddings_trains_codes_only_with_one_warning(moved, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(moved, data)
    info = json.loads((data / "dataset_info.json").read_text())
    for key in ("speaker_embeddings", "reference_files"):  # as an older preprocess wrote it
        del info[key]
    (data / "dataset_info.json").write_text(json.dumps(info))
    (data / SPEAKER).unlink()
    res = train(data, tmp_path / "run")
    assert res.returncode == 0, res.stderr[-3000:]
    warnings = [line for line in res.stderr.splitlines() if "codes-only" in line]
    assert len(warnings) == 1 and "warning" in warnings[0]
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["speaker_embeddings"] is None and manifest["reference_clips"] == []
