"""`indextts-dist diagnose`: the guide's "Troubleshooting" for a registered (or local) pattern model.

    indextts-dist diagnose --model models:/NAME@ALIAS [--texts FILE] [--json] [--mlflow-uri URI]

A registry URI is fetched into a temporary folder that is removed afterwards; a local package
folder is read in place. Exit code 0 whatever the findings (a diagnosis is a report, and `make demo`
prints it), unless `--strict` asks for 1 when a problem is found.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ..errors import InputError, MissingFileError
from ..tracking import PackageError, fetch_model
from .generate import add_decoding_args, add_placement_args, decoding_from_args, placement_from_args

DEFAULT_TEXTS = (
    "Well [UH] I think [PAUSE] we should go now.",
    "So [UM] where were we? [LONG] Right, let's start again.",
    "Life finds a way.",
    "I mean [HMM] it's not that simple, [AH] you know.",
)
"""Built-in texts: plain sentences and sentences with the markers patterns are made of."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="check a pattern model: adapter norms, conditioning, dataset, base vs adapted statistics",
        description="Per-layer adapter norms, whether the conditioning and the dataset are the ones "
        "the adapter was trained with, and base vs adapted statistics on the same texts and seed.",
    )
    p.add_argument(
        "--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a package folder"
    )
    p.add_argument("--texts", help="file with one text per line (default: a few built-in sentences)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--mlflow-uri", help="tracking server (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--weights-dir", help="folder with the official gpt.pth (official-v2 packages)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a problem is found")
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def read_texts(path: str | None) -> list[str]:
    """One text per non-blank line; an empty file is an error, not a silent default."""
    if path is None:
        return list(DEFAULT_TEXTS)
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{path}: texts file not found")
    texts = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise InputError(f"{path}: no texts in the file (one text per line)")
    return texts


def run(args: argparse.Namespace) -> int:
    from ..inference.diagnose import diagnose, format_table

    placement = placement_from_args(args)
    texts = read_texts(args.texts)
    decoding = decoding_from_args(args)
    with tempfile.TemporaryDirectory(prefix="indextts-diagnose-") as tmp:
        if args.model.startswith("models:/"):
            package = fetch_model(args.model, tmp, tracking_uri=args.mlflow_uri)
        else:
            package = Path(args.model)
            if not package.is_dir():
                raise PackageError(f"{args.model}: no such package folder (or use models:/NAME@ALIAS)")
        report = diagnose(package, texts, decoding, weights_dir=args.weights_dir, placement=placement)
    if args.model.startswith("models:/"):
        report["package"] = args.model  # the temporary folder is gone
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else format_table(report))
    return 1 if args.strict and report["problems"] else 0
