"""`indextts-dist train` (and `launch/train.py` under `accelerate launch`): the training job."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..lora import LoraSettings
from ..train import OptimSettings, TrackingSettings, TrainOptions

LAUNCH = """examples:
  # 2 processes, DeepSpeed ZeRO-2 on CPU (gloo): what the tests and the demo run
  accelerate launch --config_file accelerate_config.cpu.yaml launch/train.py --data data/ --out run/
  # all GPUs of a workstation, DeepSpeed ZeRO-2, bf16
  accelerate launch --config_file accelerate_config.yaml --num_processes 8 \
      launch/train.py --data data/ --out run/
  # register the result in MLflow
  ... --mlflow-uri http://mlflow:5000 --register-name speaker-patterns --alias candidate
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    lora, optim, track = LoraSettings(), OptimSettings(), TrackingSettings()
    p.add_argument("--data", required=True, type=Path, help="preprocess output folder")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, packaged model)")
    p.add_argument("--preset", choices=["tiny", "official-v2"], default="tiny")
    p.add_argument("--weights-dir", type=Path, help="official weights folder (gpt.pth, bpe.model)")
    g = p.add_argument_group("LoRA")
    g.add_argument("--lora-rank", type=int, default=lora.rank)
    g.add_argument("--lora-alpha", type=int, default=lora.alpha)
    g.add_argument("--lora-dropout", type=float, default=lora.dropout)
    g.add_argument("--lora-heads", action="store_true", help="also adapt text_head and mel_head")
    g = p.add_argument_group("optimization")
    g.add_argument("--learning-rate", type=float, default=optim.learning_rate)
    g.add_argument("--weight-decay", type=float, default=optim.weight_decay)
    g.add_argument("--warmup-steps", type=int, default=optim.warmup_steps)
    g.add_argument("--epochs", type=int, default=optim.epochs)
    g.add_argument("--grad-accum", type=int, default=optim.grad_accum)
    g.add_argument("--max-grad-norm", type=float, default=optim.max_grad_norm)
    g.add_argument("--max-tokens-per-batch", type=int, default=optim.max_tokens_per_batch)
    g.add_argument("--text-weight", type=float, default=optim.text_weight)
    g.add_argument("--mel-weight", type=float, default=optim.mel_weight)
    g.add_argument("--max-bad-steps", type=int, default=optim.max_bad_steps)
    g.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (smoke runs)")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--save-every", type=int, default=0, help="also checkpoint every K steps")
    g.add_argument("--keep-epochs", type=int, default=3)
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    g = p.add_argument_group("MLflow")
    g.add_argument("--mlflow-uri", default=track.mlflow_uri)
    g.add_argument("--experiment", default=track.experiment)
    g.add_argument("--register-name", default=track.register_name)
    g.add_argument("--alias", default=track.alias)
    g.add_argument("--select", choices=["best", "last"], default=track.select)
    g.add_argument("--register-retries", type=int, default=track.register_retries)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        data=args.data,
        out=args.out,
        preset=args.preset,
        weights_dir=args.weights_dir,
        lora=LoraSettings(args.lora_rank, args.lora_alpha, args.lora_dropout, args.lora_heads),
        optim=OptimSettings(
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            epochs=args.epochs,
            grad_accum=args.grad_accum,
            max_grad_norm=args.max_grad_norm,
            max_tokens_per_batch=args.max_tokens_per_batch,
            text_weight=args.text_weight,
            mel_weight=args.mel_weight,
            max_bad_steps=args.max_bad_steps,
        ),
        tracking=TrackingSettings(
            args.mlflow_uri,
            args.experiment,
            args.register_name,
            args.alias,
            args.select,
            args.register_retries,
        ),
        save_every=args.save_every,
        keep_epochs=args.keep_epochs,
        resume=args.resume,
        num_workers=args.num_workers,
        seed=args.seed,
        max_steps=args.max_steps,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="LoRA training with the global conditioning (accelerate-aware)",
        epilog=LAUNCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.job import run_training

    run_training(options_from_args(args))
    return 0
