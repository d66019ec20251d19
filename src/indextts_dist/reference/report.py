"""Reading a reference file pair (`X.safetensors` + `X.json`) and comparing recomputed outputs.

The format is shared by every stage: `model.*` tensors (the official state dict), `input.*`
tensors, `output.*` tensors, and a JSON whose `config` rebuilds the model. Each stage supplies a
function that recomputes outputs from inputs; this module compares and reports, one line per output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import UserError

__all__ = ["ReferenceCheck", "ReferenceError", "compare_outputs", "load_reference"]


class ReferenceError(UserError, ValueError):
    """A reference file pair that cannot be read or does not have the expected format."""


@dataclass
class ReferenceFile:
    model: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    meta: dict[str, Any]


@dataclass
class ReferenceCheck:
    """One output's verdict."""

    name: str
    max_abs_diff: float
    ok: bool
    note: str = ""

    def line(self) -> str:
        text = f"{self.name} {self.max_abs_diff:.3e} {'ok' if self.ok else 'FAIL'}"
        return f"{text} ({self.note})" if self.note else text


def load_reference(tensors: str | Path, config: str | Path) -> ReferenceFile:
    """Split the safetensors file by prefix and read the JSON (which must hold a `config` object)."""
    tensors, config = Path(tensors), Path(config)
    for path in (tensors, config):
        if not path.is_file():
            raise ReferenceError(f"{path}: file not found")
    try:
        data = load_file(str(tensors))
    except Exception as exc:
        raise ReferenceError(f"{tensors}: not a safetensors file ({exc})") from exc
    try:
        meta = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise ReferenceError(f"{config}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ReferenceError(f"{config}: no 'config' object to rebuild the model from")

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}

    ref = ReferenceFile(part("model."), part("input."), part("output."), meta)
    if not ref.model or not ref.outputs:
        raise ReferenceError(f"{tensors}: needs model.* and output.* tensors")
    return ref


def compare_outputs(
    expected: Mapping[str, torch.Tensor],
    computed: Mapping[str, torch.Tensor],
    atol: float,
    notes: Mapping[str, str] | None = None,
) -> list[ReferenceCheck]:
    """Floats within `atol`, integers exactly; an output we could not recompute is a failure."""
    checks = []
    for name in sorted(expected):
        want = expected[name]
        got = computed.get(name)
        if got is None:
            note = (notes or {}).get(name, "not recomputable by this kind")
            checks.append(ReferenceCheck(name, float("inf"), False, note))
            continue
        if tuple(got.shape) != tuple(want.shape):
            checks.append(
                ReferenceCheck(name, float("inf"), False, f"shape {list(got.shape)} != {list(want.shape)}")
            )
            continue
        diff = (got.detach().double().cpu() - want.double()).abs()
        worst = float(diff.max()) if diff.numel() else 0.0
        exact = not want.is_floating_point()
        checks.append(ReferenceCheck(name, worst, worst == 0.0 if exact else worst <= atol))
    return checks
