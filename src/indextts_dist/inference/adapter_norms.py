"""How much a LoRA adapter changes each layer, read straight from `adapter_model.safetensors`.

A fresh PEFT adapter has every `lora_B` at zero, so it changes nothing; a training run that never
updated the adapter (frozen by mistake, learning rate 0, NaN-skipped steps) ships exactly that.
The effective update of a module is `scale · B·A` (scale = alpha/r, or alpha/√r with rsLoRA); its
Frobenius norm is computed through the r×r Gram matrices (‖BA‖² = Σ (BᵀB) ∘ (AAᵀ)), which is exact
and never builds the full [out, in] update, so it stays cheap on the official model too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..errors import UserError

__all__ = ["NOTHING_LEARNED", "AdapterError", "AdapterNorms", "ModuleNorm", "adapter_norms", "lora_scale"]

NOTHING_LEARNED = "this adapter learned nothing"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")
_LAYER = re.compile(r"\.h\.(?P<layer>\d+)\.(?P<kind>.+)$")


class AdapterError(UserError, ValueError):
    """The adapter folder cannot be read (one line)."""


@dataclass(frozen=True)
class ModuleNorm:
    module: str
    """Module path inside the model, e.g. `gpt.h.0.attn.c_attn`."""
    layer: int | None
    """Transformer block index; None for modules outside the blocks (the heads)."""
    kind: str
    """Module within its block (`attn.c_attn`, `mlp.c_fc`, …) or the module path."""
    rank: int
    scale: float
    norm_a: float
    norm_b: float
    norm_delta: float
    """‖scale · B·A‖_F: how far the merged weight moves from the base."""

    @property
    def zero(self) -> bool:
        return self.norm_delta == 0.0

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.norm_a, self.norm_b, self.norm_delta))


@dataclass(frozen=True)
class AdapterNorms:
    modules: list[ModuleNorm]
    config: dict[str, Any]

    @property
    def total_norm(self) -> float:
        return math.sqrt(sum(m.norm_delta**2 for m in self.modules))

    def by_layer(self) -> dict[str, float]:
        """Layer ("0", "1", … or the module path) -> ‖update‖ over its modules."""
        sums: dict[str, float] = {}
        for m in self.modules:
            key = m.module if m.layer is None else str(m.layer)
            sums[key] = sums.get(key, 0.0) + m.norm_delta**2
        return {k: math.sqrt(v) for k, v in sums.items()}

    def problems(self) -> list[str]:
        """One line per finding: every update zero, some zero, or non-finite weights."""
        found = []
        bad = [m.module for m in self.modules if not m.finite]
        if bad:
            found.append(f"adapter has NaN/Inf weights in {len(bad)} module(s), first {bad[0]}")
        zero = [m.module for m in self.modules if m.zero]
        if not self.modules:
            found.append(f"adapter holds no LoRA weights: {NOTHING_LEARNED}")
        elif len(zero) == len(self.modules):
            found.append(f"every LoRA update B·A is zero ({len(zero)} modules): {NOTHING_LEARNED}")
        elif zero:
            found.append(
                f"{len(zero)} of {len(self.modules)} LoRA updates are zero (first {zero[0]}): "
                f"{NOTHING_LEARNED} there"
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "total_norm": self.total_norm,
            "by_layer": self.by_layer(),
            "zero_modules": [m.module for m in self.modules if m.zero],
            "modules": [{**asdict(m), "zero": m.zero} for m in self.modules],
        }


def lora_scale(module: str, config: dict[str, Any]) -> tuple[int, float]:
    """(rank, scale) of one module, honouring PEFT's `rank_pattern`/`alpha_pattern` and rsLoRA."""
    rank = int(_pattern_value(module, config.get("rank_pattern") or {}, config.get("r", 8)))
    alpha = float(_pattern_value(module, config.get("alpha_pattern") or {}, config.get("lora_alpha", 8)))
    return rank, alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _pattern_value(module: str, patterns: dict[str, Any], default: Any) -> Any:
    """PEFT's rule: a pattern key applies when it matches the end of the module path."""
    for key, value in patterns.items():
        if module == key or re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def adapter_norms(adapter_dir: str | Path) -> AdapterNorms:
    """Norms of A, B and the effective update for every LoRA pair, in file order."""
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    try:
        config = json.loads(config_path.read_text())
        with safe_open(str(weights_path), framework="pt") as fh:
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, ValueError, SafetensorError) as exc:
        raise AdapterError(f"{adapter_dir}: unreadable adapter ({_first_line(exc)})") from None
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match:
            pairs.setdefault(match["module"], {})[match["which"]] = tensor
    modules = []
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise AdapterError(f"{weights_path}: {module} has lora_{next(iter(pair))} without its partner")
        modules.append(_module_norm(module, pair["A"], pair["B"], config))
    summary = {
        k: config.get(k)
        for k in ("r", "lora_alpha", "use_rslora", "use_dora", "target_modules", "peft_version")
    }
    return AdapterNorms(modules, summary)


def _module_norm(module: str, a: torch.Tensor, b: torch.Tensor, config: dict[str, Any]) -> ModuleNorm:
    a, b = a.double(), b.double()
    if a.dim() != 2 or b.dim() != 2 or a.size(0) != b.size(1):
        raise AdapterError(f"{module}: lora_A {list(a.shape)} and lora_B {list(b.shape)} do not pair up")
    rank, scale = lora_scale(module, config)
    gram = float(((b.T @ b) * (a @ a.T)).sum())
    norm_delta = abs(scale) * math.sqrt(max(gram, 0.0)) if math.isfinite(gram) else math.nan
    where = _LAYER.search(module)
    layer, kind = (int(where["layer"]), where["kind"]) if where else (None, module)
    return ModuleNorm(module, layer, kind, rank, scale, float(a.norm()), float(b.norm()), norm_delta)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
