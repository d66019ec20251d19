"""`indextts-dist evaluate`: does the speaker's pattern come back? Adapted vs base vs training data.

    indextts-dist evaluate --model models:/NAME@ALIAS|DIR [--texts FILE] [--wavs DIR] [--seeds N] [--json]

A registry URI is fetched into a temporary folder (removed afterwards). The report is written to
`--out` (`evaluation.json`, `evaluation.md`), printed (the Markdown table, or the JSON with
`--json`) and, when a tracking server is given (`--mlflow-uri` or `$MLFLOW_TRACKING_URI`), logged
as an evaluation run tagged with the model's name, version and alias. Logic: `indextts_dist.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ..errors import InputError
from .generate import add_decoding_args, add_placement_args, add_reference_clip_arg, decoding_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure pattern transfer: held-out texts, adapted vs base vs the training data",
        description="Generates held-out plain texts with the adapted model and its base (same "
        "conditioning, seeds and decoding) and sets each statistic beside the training data's, "
        "with bootstrap intervals and the transfer ratio (adapted - base) / (data - base).",
    )
    p.add_argument(
        "--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a package folder"
    )
    p.add_argument("--texts", help="file with one text per line (default: built-in held-out plain sentences)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per text, from --seed on (default 3)")
    p.add_argument("--wavs", help="folder of the adapted model's wavs made elsewhere (NAME.wav + NAME.txt)")
    p.add_argument("--base-wavs", help="folder of the base model's wavs for the same texts")
    p.add_argument(
        "--render",
        action="store_true",
        help="speak the generated codes with the package's second stage and measure them "
        "(speech only with official weights; the tiny/mini second stage makes noise)",
    )
    p.add_argument("--out", default="evaluation", help="folder for evaluation.json and evaluation.md")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    p.add_argument("--mlflow-uri", help="tracking server (default: $MLFLOW_TRACKING_URI; none: not logged)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default indextts-dist-evaluate)")
    p.add_argument("--weights-dir", help="official weights (official-v2), or a mini base folder (gpt.pth)")
    p.add_argument("--whisper-model", help="ASR for audio space (default: the one preprocess used)")
    p.add_argument("--language", help="ASR language (default: the one preprocess used)")
    p.add_argument("--batch-size", type=int, default=8, help="segments decoded together (default 8)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    add_reference_clip_arg(p)
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate.evaluation import REPORT_JSON, REPORT_MD, EvaluateOptions, evaluate_model
    from ..evaluate.report import format_markdown
    from ..evaluate.texts import read_texts
    from ..inference.loaded import LoadedModel
    from ..tracking.evaluation_run import EVALUATION_EXPERIMENT, log_evaluation, model_reference

    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    opts = EvaluateOptions(
        out=Path(args.out),
        texts=read_texts(args.texts),
        decoding=decoding_from_args(args),
        seeds=args.seeds,
        wavs=Path(args.wavs) if args.wavs else None,
        base_wavs=Path(args.base_wavs) if args.base_wavs else None,
        render=args.render,
        batch_size=args.batch_size,
        resamples=args.resamples,
        whisper_model=args.whisper_model,
        language=args.language,
        uri=args.model,
        reference_clip=args.reference_clip,
    )
    tracking_uri = args.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory(prefix="indextts-evaluate-") as tmp:
        model = LoadedModel.load(
            args.model,
            tracking_uri=tracking_uri,
            cache_dir=tmp,
            weights_dir=args.weights_dir,
            device=args.device,
            dtype=args.dtype,
        )
        report = evaluate_model(model, opts)
        if tracking_uri:
            reference = model_reference(args.model, tracking_uri)
            run_id = log_evaluation(
                report,
                [opts.out / REPORT_JSON, opts.out / REPORT_MD],
                tracking_uri=tracking_uri,
                reference=reference,
                experiment=args.experiment or EVALUATION_EXPERIMENT,
            )
            report["mlflow_run_id"] = run_id
            print(f"[evaluate] logged as MLflow run {run_id} at {tracking_uri}", file=sys.stderr)
        else:
            print(
                "[evaluate] no tracking server (--mlflow-uri / $MLFLOW_TRACKING_URI): not logged",
                file=sys.stderr,
            )
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else format_markdown(report))
    print(f"[evaluate] wrote {opts.out / REPORT_JSON} and {opts.out / REPORT_MD}", file=sys.stderr)
    return 0
