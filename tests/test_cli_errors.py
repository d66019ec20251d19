"""Only the project's own error types are one-line user errors (exit 2); anything else is a bug and
keeps its traceback."""

from __future__ import annotations

import argparse

import pytest

from indextts_dist.cli import main as cli
from indextts_dist.errors import DivergedError, InputError, MissingFileError, UserError


def _run_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> int:
    def fail(args: argparse.Namespace) -> int:
        raise exc

    real = cli.build_parser

    def parser() -> argparse.ArgumentParser:
        p = real()
        p.set_defaults(func=fail)
        for action in p._subparsers._group_actions:  # every subcommand runs `fail`
            for sub in action.choices.values():
                sub.set_defaults(func=fail)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    return cli.main(["verify-reference", "x.safetensors", "--config", "x.json", "--kind", "gpt"])


@pytest.mark.parametrize(
    "error",
    [InputError("bad --top-p"), MissingFileError("clips/: audio folder not found"), DivergedError("nan")],
)
def test_project_errors_are_one_line_exit_2(monkeypatch, capsys, error):
    assert isinstance(error, UserError)
    assert _run_raising(monkeypatch, error) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"indextts-dist verify-reference: error: {error}"]


@pytest.mark.parametrize("error", [ValueError("a bug"), FileNotFoundError("a bug"), KeyError("a bug")])
def test_any_other_exception_is_a_bug_with_its_traceback(monkeypatch, error):
    with pytest.raises(type(error)):
        _run_raising(monkeypatch, error)


def test_a_real_user_error_is_one_line(tmp_path, capsys):
    code = cli.main(["generate", "--conditioning", str(tmp_path / "none.safetensors"), "--text", "Hi.",
                     "--out", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.safetensors" in err[0], err
