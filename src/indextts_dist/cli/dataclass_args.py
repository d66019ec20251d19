"""Command-line flags derived from typed option dataclasses: each option is written once, as a field.

The field is the single source of truth: its name gives the flag (`max_tokens_per_batch` ->
`--max-tokens-per-batch`), its annotation the parsing (`int`, `Path | None`, `Literal[...]`, ...), its
default the flag's default, and the string literal right after it in the class body the `--help` line.
A field without that docstring raises when the parser is built, so a flag without help cannot ship.

Nested dataclasses are not flattened here: the caller adds each one as its own argument group (with a
prefix when names could clash) and builds the outer instance from the inner ones, which keeps both the
help layout and the naming decisions visible at the call site.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

__all__ = ["add_dataclass_arguments", "dataclass_from_args", "field_docstrings", "flag_name"]

SCALARS: tuple[type, ...] = (str, int, float, Path)
"""Annotations parsed by calling the type on the command-line string."""


@functools.cache
def field_docstrings(cls: type) -> dict[str, str]:
    """Field name -> its docstring (whitespace collapsed), from the source of `cls` and its bases.

    Read with `ast` because Python keeps no trace of these string literals at run time; cached since
    every parser build (each CLI start, every test) would otherwise re-read and re-parse the source.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # subclasses override their bases' docstrings
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def flag_name(field: str, *, prefix: str = "", rename: Mapping[str, str] | None = None) -> str:
    """`--` + prefix + field name with `_` -> `-`, unless `rename` gives the field another name."""
    name = (rename or {}).get(field, field.replace("_", "-"))
    return f"--{prefix}{name}"


def _dest(field: str, prefix: str, rename: Mapping[str, str] | None) -> str:
    """The Namespace attribute argparse derives from the flag (so `args.<dest>` reads as the flag)."""
    return flag_name(field, prefix=prefix, rename=rename)[2:].replace("-", "_")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(`X`, True) for `X | None` / `Optional[X]`, else (annotation, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value)) or "none"
    return str(value)


def _parsing(cls: type, name: str, annotation: Any, default: Any) -> dict[str, Any]:
    """`add_argument` keywords for one field's annotation; unsupported annotations raise (build time)."""
    inner, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if inner is bool and not optional:
        return {"action": argparse.BooleanOptionalAction if default is True else "store_true"}
    if inner in SCALARS:
        return {"type": inner}
    if origin is Literal:
        choices = typing.get_args(inner)
        return {"type": type(choices[0]), "choices": choices}
    if origin in (tuple, list):
        items = [a for a in typing.get_args(inner) if a is not Ellipsis]
        if len(set(items)) == 1 and items[0] in SCALARS:
            return {"type": items[0], "nargs": "*"}
    raise TypeError(
        f"{cls.__name__}.{name}: no command-line form for {annotation!r}"
        + (
            " (a nested dataclass: add it as its own group and exclude it)"
            if dataclasses.is_dataclass(inner)
            else ""
        )
    )


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
    required: Collection[str] = (),
    positional: Collection[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> list[argparse.Action]:
    """Add one argument per field of dataclass `cls` (except `exclude`) to `parser`; return the actions.

    A field without a default is required; `required` makes others required too. `positional` fields
    become positional arguments. `defaults` replaces a field's default on the command line only
    (e.g. a fixed seed for a command whose runs should repeat, where the API's default is None).
    Raises TypeError for a field without a docstring or whose type has no command-line form, so the
    mistake surfaces on the first `--help`, not in a user's hands.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docstrings(cls)
    defaults = dict(defaults or {})
    named = set(exclude) | set(required) | set(positional) | set(defaults)
    unknown = named - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    actions = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        if not docs.get(f.name):
            raise TypeError(
                f"{cls.__name__}.{f.name} has no docstring: write one (the string literal after the field), "
                "it is the flag's --help line"
            )
        default = defaults.get(f.name, _default(f))
        kwargs = _parsing(cls, f.name, hints[f.name], default)
        help_text = docs[f.name].replace("%", "%%")  # argparse %-formats help strings
        if default is not dataclasses.MISSING and default is not None and "action" not in kwargs:
            help_text += f" (default: {_show(default)})".replace("%", "%%")
        kwargs["help"] = help_text
        if f.name in positional:
            if default is not dataclasses.MISSING:
                kwargs.update(nargs="?", default=default)
            actions.append(parser.add_argument(_dest(f.name, prefix, rename), **kwargs))
            continue
        if default is dataclasses.MISSING or f.name in required:
            kwargs["required"] = True
        if default is not dataclasses.MISSING:
            kwargs["default"] = default
        actions.append(parser.add_argument(flag_name(f.name, prefix=prefix, rename=rename), **kwargs))
    return actions


def dataclass_from_args(
    cls: type,
    args: argparse.Namespace,
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
    **given: Any,
) -> Any:
    """An instance of `cls` from the parsed `args` (same `prefix`/`rename` as when adding them).

    `given` supplies fields that are not flags, typically the nested dataclasses the caller built from
    their own groups; fields that are neither in `args` nor `given` keep their dataclass default.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in given or not f.init:
            continue
        dest = _dest(f.name, prefix, rename)
        if hasattr(args, dest):
            value = getattr(args, dest)
            inner, _ = _unwrap_optional(hints[f.name])
            if typing.get_origin(inner) is tuple and isinstance(value, list):
                value = tuple(value)  # nargs gives a list; the frozen dataclass wants its tuple
            values[f.name] = value
    return cls(**values, **given)
