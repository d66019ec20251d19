"""`indextts-dist register`: put a model package on disk into the MLflow registry, with an alias.

The trainer registers its package itself; this is the command it prints when the tracking server was
unreachable at the end of training, and the way to (re-)register any package by hand.
"""

from __future__ import annotations

import argparse
import sys

from ..tracking.registry import RegistrationError, register_package


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register", help="register a model package folder in MLflow under a name and alias")
    p.add_argument("--package", required=True, help="package folder (has manifest.json)")
    p.add_argument("--mlflow-uri", required=True, help="tracking server, e.g. http://127.0.0.1:5055")
    p.add_argument("--register-name", required=True, help="registered model name")
    p.add_argument(
        "--alias", default="candidate", help="alias to point at the new version (default: candidate)"
    )
    p.add_argument("--run-id", default=None, help="MLflow run to attach the logged model to")
    p.add_argument(
        "--retries", type=int, default=5, help="retries on connection errors (exponential backoff)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        registered = register_package(
            args.package,
            tracking_uri=args.mlflow_uri,
            name=args.register_name,
            alias=args.alias,
            run_id=args.run_id,
            retries=getattr(args, "retries", 5),
        )
    except RegistrationError as exc:
        print(f"indextts-dist register: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"registered {registered.name} version {registered.version} as @{registered.alias}: "
        f"{registered.alias_uri} ({registered.model_uri})"
    )
    return 0
