"""The whole training job: metrics to MLflow (main process), train, then package and register.

Registration is the end of a run, not a side effect of it: the packaged model is always written to
`OUT/model/` first. If the registry cannot be reached, the job fails with one line holding the
command that registers that package later; a restarted job (`--resume`) finds training finished and
only retries the registration.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..model import preset
from ..text import tiny_model_path
from ..tracking import MetricsLogger, package_model, register_package
from .loop import Trainer, TrainResult
from .options import TrainOptions

__all__ = ["choose_checkpoint", "run_training"]


def choose_checkpoint(result: TrainResult, select: str) -> tuple[Path, dict]:
    """The checkpoint to register and why: lowest validation loss (`best`) or the newest (`last`)."""
    state = result.state
    last = max(p for p in result.checkpoint_root.glob("step-*") if (p / "adapter").is_dir())
    best = result.checkpoint_root / state.best_checkpoint if state.best_checkpoint else None
    if select == "best" and best is not None and best.is_dir():
        chosen, why = best, "lowest validation loss"
    else:
        chosen, why = last, "last checkpoint" if select == "last" else "last checkpoint (no validation loss)"
    record = next((r for r in state.val_history if f"step-{r['step']:08d}" == chosen.name), {})
    selection = {
        "select": select,
        "checkpoint": chosen.name,
        "step": int(chosen.name.split("-")[1]),
        "epoch": record.get("epoch"),
        "val_loss": record.get("val_loss"),
        "why": why,
    }
    return chosen, selection


def _speaker_embeddings(
    opts: TrainOptions, trainer: Trainer, audio_dir: Path, reference: list[Path]
) -> Path | None:
    """The second stage's speaker features, computed once here and shipped in the package."""
    from ..speech.second_stage import SecondStage, save_speaker_embeddings

    try:
        stage = (
            SecondStage.tiny(opts.seed) if opts.preset == "tiny" else SecondStage.official(opts.weights_dir)
        )
    except FileNotFoundError as exc:
        print(f"[train] warning: no second stage ({exc}); the package will be codes-only", file=sys.stderr)
        return None
    # The recipe's point: one global conditioning over ALL the speaker's accepted clips, for the
    # second stage's style as for the GPT's conditioning (not a sample of the first few by name).
    sources = sorted({s.source for s in trainer.manifest.samples})
    emb = stage.speaker_embeddings(
        [audio_dir / s for s in sources], reference=reference[0] if reference else None
    )
    return save_speaker_embeddings(emb, opts.out / "speaker_embeddings.safetensors")


def _package(opts: TrainOptions, trainer: Trainer, result: TrainResult) -> Path:
    chosen, selection = choose_checkpoint(result, opts.tracking.select)
    info = trainer.manifest.info
    audio_dir = Path(info.get("audio_dir", "."))
    clips = [audio_dir / c for c in info.get("reference_clips", [])[:1]]
    tokenizer = tiny_model_path() if opts.preset == "tiny" else opts.weights_dir / "bpe.model"
    speaker = _speaker_embeddings(opts, trainer, audio_dir, clips)
    path = package_model(
        opts.out / "model",
        adapter_dir=chosen / "adapter",
        conditioning_path=trainer.manifest.conditioning_path,
        tokenizer_path=tokenizer,
        gpt_config=preset(opts.preset),
        preset=opts.preset,
        seed=opts.seed,
        base_fingerprint=result.base_fingerprint,
        params={**opts.to_params(), "lora": opts.lora.to_dict()},
        selection=selection,
        reference_clips=clips,
        dataset_info=info,
        speaker_embeddings=speaker,
    )
    print(f"[train] packaged {chosen.name} ({selection['why']}, val loss {selection['val_loss']}) -> {path}",
          file=sys.stderr)  # fmt: skip
    return path


def run_training(opts: TrainOptions) -> TrainResult:
    trainer = Trainer(opts)
    track = opts.tracking
    metrics = MetricsLogger(
        track.mlflow_uri, track.experiment, opts.out.name, enabled=trainer.main and bool(track.mlflow_uri)
    )
    if opts.resume:
        trainer.resume()
    metrics.start(opts.to_params(), run_id=trainer.state.mlflow_run_id)
    trainer.metrics = metrics
    try:
        result = trainer.run()
    except BaseException:
        metrics.finish("FAILED")
        raise
    if result.stopped_by_signal:
        metrics.finish("KILLED")
        return result
    if not trainer.main:
        return result
    package = _package(opts, trainer, result)
    metrics.finish()
    print(f"[train] done: step {result.state.step}, best val {result.state.best_val}", file=sys.stderr)
    if track.register_name and track.mlflow_uri:
        version = register_package(
            package,
            tracking_uri=track.mlflow_uri,
            name=track.register_name,
            alias=track.alias,
            run_id=metrics.run_id,
            retries=track.register_retries,
        )
        print(f"[train] registered {version.name} version {version.version} as @{track.alias}: "
              f"models:/{version.name}@{track.alias}", file=sys.stderr)  # fmt: skip
    return result
