"""Options written once: flags derived from the option dataclasses, every flag with a help line."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from indextts_dist.cli import preprocess as preprocess_cli
from indextts_dist.cli import train as train_cli
from indextts_dist.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args, field_docstrings
from indextts_dist.cli.main import build_parser
from indextts_dist.lora import LoraSettings
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.train import OptimSettings, TrackingSettings, TrainOptions


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every parser under `indextts-dist`, nested subcommands included, by their command line."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[f"{path} {name}".strip()] = child
                    walk(child, f"{path} {name}")

    walk(build_parser(), "")
    return found


SUBCOMMANDS = _subcommands()


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_flag_has_help(command: str) -> None:
    missing = [
        "/".join(a.option_strings) or a.dest
        for a in SUBCOMMANDS[command]._actions
        if not isinstance(a.help, str) or not a.help.strip() or a.help == argparse.SUPPRESS
    ]
    assert not missing, f"indextts-dist {command}: no --help line for {', '.join(missing)}"


def test_every_subcommand_is_described() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    undescribed = [c.dest for c in sub._choices_actions if not (c.help or "").strip()]
    assert not undescribed and {"train", "preprocess", "register", "verify-reference"} <= set(sub.choices)


# -- full command lines give the dataclasses one would build by hand --------------------------------

TRAIN_ARGV = [
    "train", "--data", "d", "--out", "o", "--preset", "official-v2", "--weights-dir", "w",
    "--lora-rank", "8", "--lora-alpha", "16", "--lora-dropout", "0.1", "--lora-heads",
    "--learning-rate", "1e-3", "--weight-decay", "0.02", "--warmup-steps", "7", "--epochs", "3",
    "--grad-accum", "2", "--max-grad-norm", "0.5", "--max-tokens-per-batch", "1500",
    "--text-weight", "0.3", "--mel-weight", "0.7", "--max-bad-steps", "9", "--max-steps", "11",
    "--save-every", "4", "--keep-epochs", "2", "--resume",
    "--mlflow-uri", "http://mlflow:5000", "--experiment", "exp", "--register-name", "spk",
    "--alias", "prod", "--select", "last", "--register-retries", "1",
    "--num-workers", "2", "--seed", "5",
]  # fmt: skip

PREPROCESS_ARGV = [
    "preprocess", "--audio-dir", "clips", "--out", "data", "--transcripts", "t.csv",
    "--preset", "official-v2", "--weights-dir", "w", "--whisper-model", "small.en",
    "--min-seconds", "0.5", "--max-seconds", "12", "--max-unk-share", "0.25",
    "--clips-per-shard", "8", "--val-fraction", "0.2", "--seed", "3",
]  # fmt: skip


def test_train_command_line_gives_the_hand_built_options() -> None:
    args = build_parser().parse_args(TRAIN_ARGV)
    assert train_cli.options_from_args(args) == TrainOptions(
        data=Path("d"),
        out=Path("o"),
        preset="official-v2",
        weights_dir=Path("w"),
        lora=LoraSettings(rank=8, alpha=16, dropout=0.1, heads=True),
        optim=OptimSettings(
            learning_rate=1e-3,
            weight_decay=0.02,
            warmup_steps=7,
            epochs=3,
            grad_accum=2,
            max_grad_norm=0.5,
            max_tokens_per_batch=1500,
            text_weight=0.3,
            mel_weight=0.7,
            max_bad_steps=9,
        ),
        tracking=TrackingSettings(
            mlflow_uri="http://mlflow:5000",
            experiment="exp",
            register_name="spk",
            alias="prod",
            select="last",
            register_retries=1,
        ),
        save_every=4,
        keep_epochs=2,
        resume=True,
        num_workers=2,
        seed=5,
        max_steps=11,
    )


def test_preprocess_command_line_gives_the_hand_built_options() -> None:
    args = build_parser().parse_args(PREPROCESS_ARGV)
    assert preprocess_cli.options_from_args(args) == PreprocessOptions(
        audio_dir=Path("clips"),
        out=Path("data"),
        transcripts=Path("t.csv"),
        preset="official-v2",
        weights_dir=Path("w"),
        whisper_model="small.en",
        min_seconds=0.5,
        max_seconds=12.0,
        max_unk_share=0.25,
        clips_per_shard=8,
        val_fraction=0.2,
        seed=3,
    )


def test_defaults_are_the_dataclass_defaults() -> None:
    parser = build_parser()
    train = train_cli.options_from_args(parser.parse_args(["train", "--data", "d", "--out", "o"]))
    assert train == TrainOptions(data=Path("d"), out=Path("o"))
    prep = parser.parse_args(["preprocess", "--audio-dir", "a", "--out", "o"])
    assert preprocess_cli.options_from_args(prep) == PreprocessOptions(audio_dir=Path("a"), out=Path("o"))


@pytest.mark.parametrize("command", ["train", "preprocess"])
def test_required_flags_stay_required(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command])
    assert "the following arguments are required" in capsys.readouterr().err


# -- help lines are the field docstrings -------------------------------------------------------------


def _action(command: str, flag: str) -> argparse.Action:
    return next(a for a in SUBCOMMANDS[command]._actions if flag in a.option_strings)


def test_docstrings_are_read_from_the_class_body() -> None:
    assert field_docstrings(OptimSettings)["grad_accum"] == "Micro-batches per optimizer step."
    assert field_docstrings(LoraSettings)["heads"] == "Also adapt `text_head` and `mel_head`."
    assert "rank" in field_docstrings(LoraSettings)  # the class docstring is not a field's


def test_help_line_is_the_field_docstring() -> None:
    assert _action("train", "--lora-heads").help == field_docstrings(LoraSettings)["heads"]
    assert _action("train", "--data").help == field_docstrings(TrainOptions)["data"]
    assert _action("train", "--mlflow-uri").help == field_docstrings(TrackingSettings)["mlflow_uri"]
    assert _action("train", "--max-tokens-per-batch").help == (
        field_docstrings(OptimSettings)["max_tokens_per_batch"] + " (default: 8192)"
    )
    assert _action("preprocess", "--clips-per-shard").help == (
        field_docstrings(PreprocessOptions)["clips_per_shard"] + " (default: 64)"
    )
    printed = " ".join(SUBCOMMANDS["preprocess"].format_help().split())
    assert field_docstrings(PreprocessOptions)["max_unk_share"] in printed


@pytest.mark.parametrize(
    ("command", "cls", "prefix", "exclude"),
    [
        ("train", TrainOptions, "", {"lora", "optim", "tracking"}),
        ("train", LoraSettings, "lora-", set()),
        ("train", OptimSettings, "", set()),
        ("train", TrackingSettings, "", set()),
        ("preprocess", PreprocessOptions, "", set()),
    ],
)
def test_every_field_is_a_flag_helped_by_its_docstring(
    command: str, cls: type, prefix: str, exclude: set[str]
) -> None:
    for f in dataclasses.fields(cls):
        if f.name not in exclude:
            flag = f"--{prefix}{f.name.replace('_', '-')}"
            assert _action(command, flag).help.startswith(field_docstrings(cls)[f.name]), flag


# -- the mechanism ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Undocumented:
    documented: int = 1
    """Has a help line."""
    forgotten: int = 2


@dataclass(frozen=True)
class Kinds:
    name: str
    """Positional name."""
    fast: bool = True
    """Default on: `--no-fast` turns it off."""
    mode: Literal["a", "b"] = "a"
    """One of two modes."""
    tags: tuple[str, ...] = ()
    """Any number of tags."""
    limit: float | None = None
    """Optional limit."""
    path: Path = Path("x")
    """A path with 100% coverage."""


def test_a_field_without_docstring_raises_at_build_time() -> None:
    with pytest.raises(TypeError, match=r"Undocumented\.forgotten has no docstring"):
        add_dataclass_arguments(argparse.ArgumentParser(), Undocumented)
    add_dataclass_arguments(argparse.ArgumentParser(), Undocumented, exclude=("forgotten",))


def test_unknown_field_names_raise() -> None:
    with pytest.raises(TypeError, match="no field"):
        add_dataclass_arguments(argparse.ArgumentParser(), Undocumented, exclude=("nope",))


def test_nested_dataclass_must_be_excluded() -> None:
    with pytest.raises(TypeError, match="nested dataclass"):
        add_dataclass_arguments(argparse.ArgumentParser(), TrainOptions)


def test_types_prefix_and_rename() -> None:
    parser = argparse.ArgumentParser()
    kw = {"prefix": "k-", "rename": {"limit": "cap"}}
    add_dataclass_arguments(parser, Kinds, positional=("name",), **kw)
    assert dataclass_from_args(Kinds, parser.parse_args(["n"]), **kw) == Kinds(name="n")
    args = parser.parse_args(
        ["n", "--no-k-fast", "--k-mode", "b", "--k-tags", "x", "y", "--k-cap", "2.5", "--k-path", "p"]
    )
    assert dataclass_from_args(Kinds, args, **kw) == Kinds("n", False, "b", ("x", "y"), 2.5, Path("p"))
    with pytest.raises(SystemExit):
        parser.parse_args(["n", "--k-mode", "c"])
    assert "100% coverage" in parser.format_help()  # a % in a docstring does not break argparse
