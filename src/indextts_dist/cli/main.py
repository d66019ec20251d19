"""Entry point of `indextts-dist`: one subcommand per job; user errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UserError
from . import demo, diagnose, evaluate, generate, infer, preprocess, register, serve, train, verify

USER_ERRORS: tuple[type[Exception], ...] = (UserError,)
"""The project's own error types (`errors.UserError` and its subclasses): printed as one line with
exit code 2. Any other exception is a bug and shows its traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="indextts-dist",
        description="Teach IndexTTS2 a speaker's speaking patterns: LoRA on the GPT stage, one global "
        "conditioning, distributed.",
    )
    sub = parser.add_subparsers(dest="command", required=True, help="the job to run (each has --help)")
    for command in (demo, diagnose, evaluate, generate, infer, preprocess, register, serve, train, verify):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"indextts-dist {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
