"""Where inference runs: ONE device and ONE dtype for the GPT, its prefix, KV caches and second stage.

Every door (`infer`, `generate`, `diagnose`, `demo`, `LoadedModel.load`, the MLflow pyfunc)
resolves the user's `--device/--dtype` here, so a typo or a CUDA-less machine is the same one-line
error everywhere instead of a traceback from deep inside the first matmul. Everything created
during decoding takes its device and dtype from the model's parameters (`placement_of`); the only
way back to the host is `to_host`/`host_numpy`, which is also the one place the device-literal grep
of `tests/test_inference_device.py` allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import UserError

__all__ = [
    "DTYPES",
    "Placement",
    "PlacementError",
    "default_device",
    "host_numpy",
    "placement_of",
    "resolve_placement",
    "to_host",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
"""Accepted `--dtype` names. float32 is the default: it is what the reference tests prove exact."""

HOST = torch.device("cpu")
"""Where outputs handed to users live (numpy arrays and CPU tensors)."""


class PlacementError(UserError, ValueError):
    """An unknown dtype, an unparsable device, or a device this machine does not have (CLI exit 2)."""


@dataclass(frozen=True)
class Placement:
    """A torch device and a floating dtype for the model's parameters and activations."""

    device: torch.device
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        """`bfloat16` etc.: the name `resolve_placement` accepts back."""
        return str(self.dtype).removeprefix("torch.")

    def module(self, module: nn.Module) -> nn.Module:
        """Move parameters and floating buffers (integer buffers keep their dtype, as `Module.to`)."""
        return module.to(device=self.device, dtype=self.dtype)

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        """A floating tensor to this device and dtype; an integer one only to the device."""
        if t.is_floating_point():
            return t.to(device=self.device, dtype=self.dtype)
        return t.to(device=self.device)

    def __str__(self) -> str:
        return f"{self.device} {self.dtype_name}"


def default_device() -> str:
    """`cuda` when torch sees a GPU, else the host: inference should use what the user has."""
    return "cuda" if torch.cuda.is_available() else HOST.type


def resolve_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """Parse and check `--device` (any torch device string; default `default_device()`) and `--dtype`
    (float32 | bfloat16 | float16; default float32). Raises a one-line `PlacementError`."""
    name = dtype or "float32"
    if name not in DTYPES:
        raise PlacementError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})")
    spec = device or default_device()
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise PlacementError(f"unknown device {spec!r} ({_first_line(exc)})") from None
    if dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise PlacementError(f"device {spec!r} is not available on this machine ({count} CUDA device(s))")
    try:
        torch.empty(0, device=dev, dtype=DTYPES[name])  # the cheapest proof the device exists
    except Exception as exc:  # AssertionError (torch not compiled with CUDA), RuntimeError, ...
        reason = _first_line(exc)
        raise PlacementError(f"device {spec!r} is not available on this machine ({reason})") from None
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return Placement(dev, DTYPES[name])


def placement_of(module: nn.Module) -> Placement:
    """The device and dtype of a module's (first floating) parameter: where its inputs must be made."""
    for param in module.parameters():
        if param.is_floating_point():
            return Placement(param.device, param.dtype)
    raise ValueError(f"{type(module).__name__} has no floating parameters to take a placement from")


def to_host(t: torch.Tensor) -> torch.Tensor:
    """An output tensor back on the host: floating ones as float32, integer ones unchanged."""
    t = t.detach().to(HOST)
    return t.float() if t.is_floating_point() else t


def host_numpy(t: torch.Tensor, dtype: type[np.generic] | np.dtype | None = None) -> np.ndarray:
    """`to_host(t)` as a numpy array (optionally cast, e.g. codes to int32 for `.npy` files)."""
    array = to_host(t).numpy()
    return array.astype(dtype) if dtype is not None else array


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
