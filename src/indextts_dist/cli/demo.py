"""`indextts-dist demo`: what `make demo` runs — the whole pipeline on the tiny preset.

Synthesizes an espeak-ng speaker corpus, starts a local MLflow server (sqlite), preprocesses with 2
ranks under torchrun (transcripts with pause/filler markers, shards, ONE global conditioning), trains
with 2 processes under DeepSpeed ZeRO-2 (CPU, gloo), registers the model with an alias, pulls it back
by alias, generates codes and GPT latents for three texts, diagnoses it, and stops the server.
Random weights: nothing here is speech.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MissingFileError
from ..generate import DecodingConfig
from ..model import TINY_LABEL
from ..utils.atomic import atomic_write_text
from .generate import add_placement_args, placement_from_args

if TYPE_CHECKING:
    from ..inference.loaded import LoadedModel

DEMO_TEXTS = (
    "Life finds a way.",
    "Well, [UH] I think we should, [UM] go to the store today.",
    "b-b-but I didn't mean it [PAUSE] really.",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the tiny preset (random weights)")
    p.add_argument("--out", default="demo_out", type=Path, help="output directory")
    p.add_argument("--clips", type=int, default=8, help="espeak-ng clips in the demo corpus")
    p.add_argument("--ranks", type=int, default=2, help="preprocess ranks (torchrun processes)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs")
    p.add_argument("--accelerate-config", default="accelerate_config.cpu.yaml",
                   help="accelerate config of the training step (2-process CPU DeepSpeed)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus, the tiny weights and decoding")
    add_placement_args(p)  # where steps 5-6 (generation, diagnose) run; training follows its config
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_torchrun_preprocess(audio: Path, data: Path, ranks: int) -> None:
    """The same command a user runs; one thread per rank so 2 ranks share 2 cores fairly."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
           "--master_port", str(_free_port()), "-m", "indextts_dist.cli.main", "preprocess",
           "--audio-dir", str(audio), "--out", str(data)]  # fmt: skip
    print(
        "$ torchrun --nproc_per_node",
        ranks,
        "preprocess/run.py --audio-dir",
        audio,
        "--out",
        data,
        flush=True,
    )
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def run_accelerate_train(config: Path, data: Path, run_dir: Path, uri: str, name: str, epochs: int) -> None:
    """The user's `accelerate launch … launch/train.py …`, with the tiny preset's quick settings."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                "--main_process_port", str(_free_port()), "-m", "indextts_dist.cli.main",
                "train"]  # fmt: skip
    job = ["--data", str(data), "--out", str(run_dir), "--epochs", str(epochs), "--lora-rank", "8",
           "--lora-alpha", "16", "--learning-rate", "5e-3", "--warmup-steps", "4",
           "--max-tokens-per-batch", "1500"]  # fmt: skip
    registry = [
        "--mlflow-uri",
        uri,
        "--experiment",
        "indextts-demo",
        "--register-name",
        name,
        "--alias",
        "candidate",
    ]
    print(f"$ accelerate launch --config_file {config} launch/train.py {' '.join(job)} ...", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    subprocess.run([*launcher, *job, *registry], check=True, env=env)


def run(args: argparse.Namespace) -> int:
    from ..corpus import synthesize_corpus
    from ..inference.loaded import LoadedModel
    from ..inference.outputs import write_synthesis
    from ..tracking import LocalMlflowServer

    placement = placement_from_args(args)
    out: Path = args.out.resolve()
    config = Path(args.accelerate_config).resolve()
    if not config.is_file():
        raise MissingFileError(f"{config}: accelerate config not found (run from the repository root)")
    start = time.perf_counter()
    name = "demo-speaker"
    print(f"indextts-dist demo — {TINY_LABEL}")
    step(f"1. synthesize an espeak-ng speaker corpus ({args.clips} clips)")
    audio = out / "audio"
    clips = synthesize_corpus(audio, n_clips=args.clips, seed=args.seed)
    print(f"{len(clips)} clips in {audio}/ (ground truth in corpus.json)")

    step("2. start a local MLflow tracking server (sqlite)")
    with LocalMlflowServer(out / "mlflow") as server:
        print(f"MLflow at {server.uri} (log: {server.log_path})")

        step(f"3. preprocess with {args.ranks} ranks")
        data = out / "data"
        run_torchrun_preprocess(audio, data, args.ranks)

        step("4. train with 2 processes (DeepSpeed ZeRO-2 on CPU), register as @candidate")
        run_dir = out / "run"
        run_accelerate_train(config, data, run_dir, server.uri, name, args.epochs)

        step(f"5. pull models:/{name}@candidate back and generate")
        tts = LoadedModel.load(
            f"models:/{name}@candidate", tracking_uri=server.uri, cache_dir=out / "pulled",
            device=str(placement.device), dtype=placement.dtype_name,
        )  # fmt: skip
        decoding = DecodingConfig(seed=args.seed, max_new_tokens=200)
        results = tts(list(DEMO_TEXTS), decoding)
        written = write_synthesis(results, decoding, out / "codes", f"models:/{name}@candidate", tts.label)
        renderer = tts.renderer
        summary = []
        for path, r in zip(written, results, strict=True):
            renderer.write(path.with_suffix(".wav"), renderer.render(r, seed=args.seed))
            shape = list(r.latents.shape)
            print(f"  {r.text!r}\n    -> {r.normalized!r}: {r.codes.numel()} codes, latents {shape}")
            summary.append({"json": str(path), "text": r.text, "codes": int(r.codes.numel())})
        diagnosis = _diagnose(tts, name, server.uri, out, args.seed)
        evaluation = _evaluate(tts, name, server.uri, out, args.seed)
    report = {
        "label": TINY_LABEL,
        "data": str(data),
        "run": str(run_dir),
        "outputs": summary,
        "diagnose": diagnosis,
        "evaluate": evaluation,
    }
    atomic_write_text(out / "summary.json", json.dumps(report, indent=1))
    step("done (MLflow server stopped)")
    print(f"corpus        {audio}/")
    print(f"dataset       {data}/ (shards, dataset_info.json, rejects.jsonl, transcripts_verbatim.csv)")
    print(f"training run  {run_dir}/ (checkpoints/, model/ = the registered package)")
    print(f"codes         {out / 'codes'}/ (codes, GPT latents, JSON and a 22.05 kHz wav per text)")
    print("              the tiny preset's random weights make NOISE in those wavs, not speech")
    print(f"MLflow UI     mlflow ui --backend-store-uri sqlite:///{out / 'mlflow' / 'mlflow.db'} --port 5000")
    print(f"{time.perf_counter() - start:.0f} s. Reminder: {TINY_LABEL}.")
    return 0


def _diagnose(tts: LoadedModel, name: str, uri: str, out: Path, seed: int) -> dict | None:
    """Base vs adapted statistics of the pulled model (skipped if the diagnose module is absent)."""
    step("6. diagnose")
    try:
        from ..inference.diagnose import diagnose, format_table
    except ImportError:
        print("(diagnose is not available in this build)")
        return None
    decoding = DecodingConfig(seed=seed, max_new_tokens=200)
    report = diagnose(tts.package, list(DEMO_TEXTS), decoding, placement=tts.placement)
    print(format_table(report))
    atomic_write_text(out / "diagnose.json", json.dumps(report, indent=1))
    return {"json": str(out / "diagnose.json")}


def _evaluate(tts: LoadedModel, name: str, uri: str, out: Path, seed: int) -> dict:
    """Held-out plain texts, adapted vs base vs the training data, logged as an MLflow evaluation
    run: the tiny preset's random-weight numbers (the machinery, not pattern transfer)."""
    from ..evaluate.evaluation import REPORT_JSON, REPORT_MD, EvaluateOptions, evaluate_model
    from ..evaluate.report import format_markdown
    from ..tracking.evaluation_run import log_evaluation, model_reference

    step("7. evaluate (the tiny preset's RANDOM-weight numbers: they test the instrument, not transfer)")
    alias = f"models:/{name}@candidate"
    opts = EvaluateOptions(
        out=out / "evaluation", decoding=DecodingConfig(seed=seed, max_new_tokens=200), seeds=2, uri=alias
    )
    report = evaluate_model(tts, opts)
    run_id = log_evaluation(
        report, [opts.out / REPORT_JSON, opts.out / REPORT_MD], tracking_uri=uri,
        reference=model_reference(alias, uri),
    )  # fmt: skip
    print(format_markdown(report))
    files = {"json": str(opts.out / REPORT_JSON), "markdown": str(opts.out / REPORT_MD)}
    return {**files, "mlflow_run_id": run_id}
