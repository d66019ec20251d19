"""The whole training job: metrics to MLflow (main process), train, then package and register.

Registration is the end of a run, not a side effect of it: the packaged model is always written to
`OUT/model/` first. If the registry cannot be reached, the job fails with one line holding the
command that registers that package later; a restarted job (`--resume`) finds training finished and
only retries the registration.

Everything packaged comes from the dataset folder: the conditioning, the second stage's speaker
embeddings and the reference clip's copy, all written there by preprocess. Training reads no audio
and loads no second stage, so a dataset can be moved (or its clips deleted) after preprocessing.
They are found and checked before the first step, so a bad file fails at start, not after training.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..conditioning import check_speaker_embeddings, load_conditioning
from ..dataset import SPEAKER_EMBEDDINGS_FILE, DatasetError, DatasetManifest
from ..model import is_random_preset, preset, preset_label
from ..text import tiny_model_path
from ..tracking import MetricsLogger, package_model, register_package
from ..weights_layout import WeightsLayout, WeightsLayoutV25
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


def _speaker_embeddings(manifest: DatasetManifest, main: bool) -> Path | None:
    """The dataset's speaker embeddings, checked against its conditioning (same clips); None, with
    one warning, for a dataset that has none (older datasets, or no second-stage weights)."""
    name = manifest.info.get("speaker_embeddings")
    if not name:
        if main:
            print(f"[train] warning: {manifest.root} has no {SPEAKER_EMBEDDINGS_FILE} (older dataset, or "
                  "preprocessed without second-stage weights); the package will be codes-only",
                  file=sys.stderr)  # fmt: skip
        return None
    path = manifest.root / name
    if not path.is_file():
        raise DatasetError(f"{path}: listed in the dataset's info but missing; re-run preprocess")
    cond_path = manifest.conditioning_path
    check_speaker_embeddings(path, load_conditioning(cond_path), str(cond_path))
    return path


def _reference_clips(manifest: DatasetManifest) -> list[Path]:
    """The dataset's copy of its reference clip; an older dataset has none and names the clip in
    the audio folder it was made from, used only if it is still there."""
    info = manifest.info
    if "reference_files" in info:
        return [manifest.root / f for f in info["reference_files"]]
    old = [Path(info.get("audio_dir", ".")) / c for c in info.get("reference_clips", [])[:1]]
    return [p for p in old if p.is_file()]


def _tokenizer_file(opts: TrainOptions) -> Path:
    """The vocabulary the dataset's text ids were made with: 2.5's tiktoken file, the tiny BPE, or
    the official bpe.model."""
    if preset(opts.preset).is_v25:
        return WeightsLayoutV25(Path(str(opts.weights_dir))).tiktoken
    if is_random_preset(opts.preset):
        return tiny_model_path()
    return WeightsLayout(Path(str(opts.weights_dir))).bpe


def _package(
    opts: TrainOptions, trainer: Trainer, result: TrainResult, speaker: Path | None, clips: list[Path]
) -> Path:
    chosen, selection = choose_checkpoint(result, opts.tracking.select)
    info = trainer.manifest.info
    tokenizer = _tokenizer_file(opts)
    path = package_model(
        opts.out / "model",
        adapter_dir=chosen / "adapter",
        conditioning_path=trainer.manifest.conditioning_path,
        tokenizer_path=tokenizer,
        gpt_config=preset(opts.preset),
        preset=opts.preset,
        seed=opts.seed,
        base_fingerprint=result.base_fingerprint,
        params={**opts.to_params(), **({"lora": opts.lora.to_dict()} if opts.method == "lora" else {})},
        selection=selection,
        reference_clips=clips,
        dataset_info=info,
        speaker_embeddings=speaker,
        label=preset_label(opts.preset),
        method=opts.method,
        conditioning_kind=opts.conditioning,
        language=info.get("text_language"),
    )
    print(f"[train] packaged {chosen.name} ({selection['why']}, val loss {selection['val_loss']}) -> {path}",
          file=sys.stderr)  # fmt: skip
    return path


def run_training(opts: TrainOptions) -> TrainResult:
    trainer = Trainer(opts)
    speaker, clips = _speaker_embeddings(trainer.manifest, trainer.main), _reference_clips(trainer.manifest)
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
    package = _package(opts, trainer, result, speaker, clips)
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
