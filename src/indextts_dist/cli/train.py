"""`indextts-dist train` (and `launch/train.py` under `accelerate launch`): the training job."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..lora import LoraSettings
from ..train import OptimSettings, TrackingSettings, TrainOptions
from .dataclass_args import add_dataclass_arguments, dataclass_from_args

LAUNCH = """examples:
  # 2 processes, DeepSpeed ZeRO-2 on CPU (gloo): what the tests and the demo run
  accelerate launch --config_file accelerate_config.cpu.yaml launch/train.py --data data/ --out run/
  # all GPUs of a workstation, DeepSpeed ZeRO-2, bf16
  accelerate launch --config_file accelerate_config.yaml --num_processes 8 \\
      launch/train.py --data data/ --out run/
  # register the result in MLflow
  ... --mlflow-uri http://mlflow:5000 --register-name speaker-patterns --alias candidate
"""


NESTED = ("lora", "optim", "tracking")
"""TrainOptions fields that are dataclasses: each is its own argument group below."""
CHECKPOINTS = ("save_every", "keep_epochs", "resume")
"""TrainOptions fields shown under "checkpoints" in `--help`."""
LORA_PREFIX = "lora-"
"""`--lora-rank`, `--lora-heads`, ...: `rank` alone would say nothing next to the optimizer's flags."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    job_fields = [f.name for f in fields(TrainOptions)]
    add_dataclass_arguments(p, TrainOptions, exclude=(*NESTED, *CHECKPOINTS))
    add_dataclass_arguments(p.add_argument_group("LoRA"), LoraSettings, prefix=LORA_PREFIX)
    add_dataclass_arguments(p.add_argument_group("optimization"), OptimSettings)
    checkpoints = p.add_argument_group("checkpoints")
    add_dataclass_arguments(
        checkpoints, TrainOptions, exclude=[n for n in job_fields if n not in CHECKPOINTS]
    )
    add_dataclass_arguments(p.add_argument_group("MLflow"), TrackingSettings)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return dataclass_from_args(
        TrainOptions,
        args,
        lora=dataclass_from_args(LoraSettings, args, prefix=LORA_PREFIX),
        optim=dataclass_from_args(OptimSettings, args),
        tracking=dataclass_from_args(TrackingSettings, args),
    )


# duplicates: the same argparse registration as `cli/preprocess.py` (name, help, epilog): each
# command module registers itself; a helper would only rename these four calls.
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
