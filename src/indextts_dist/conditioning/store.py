"""`global_conditioning.safetensors`: tensors `gpt_conditioning [R, D]` and `emo_vec [D]` plus metadata
(R = the model's speaker rows: 32 perceiver latents in v2, the one projected CAMPPlus style in 2.5).

Safetensors only (nothing unpickled), written atomically, validated on load against the model it is
meant for, so a conditioning from another model size fails with one line instead of a shape error
deep inside the GPT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..errors import UserError
from ..utils.atomic import atomic_write_bytes

if TYPE_CHECKING:  # only the two sizes are read: the conditioning module needs no model code
    from ..model.config import GPTConfig
    from .sums import ConditioningSums

__all__ = ["ConditioningError", "GlobalConditioning", "load_conditioning", "save_conditioning"]


class ConditioningError(UserError, ValueError):
    """A conditioning file that is missing, unreadable, or does not fit the model."""


@dataclass
class GlobalConditioning:
    gpt_conditioning: torch.Tensor
    """Mean speaker rows without e, [speaker_rows, model_dim]: v2's perceiver latents, or 2.5's
    `spk_emb_proj(style)` (affine, so the mean of the projections is the projection of the mean style)."""
    emo_vec: torch.Tensor
    """Mean emotion vector e (after emo_layer), [model_dim]."""
    metadata: dict[str, str] = field(default_factory=dict)
    """num_clips, method, base-model fingerprint, source digest… (strings, as safetensors requires)."""

    @classmethod
    def from_sums(cls, sums: ConditioningSums, metadata: dict[str, str]) -> GlobalConditioning:
        """The mean over every clip the (all-reduced) `sums` hold; `num_clips` and `method` are
        written here, from the sums, so the file cannot claim another count than it averages."""
        spk, emo = sums.mean_gpt()
        meta = {**metadata, "num_clips": str(sums.count), "method": "mean"}
        return cls(spk.float(), emo.float(), meta)

    def check_fits(self, cfg: GPTConfig, source: str = "conditioning") -> None:
        want = (cfg.speaker_rows, cfg.model_dim)
        if tuple(self.gpt_conditioning.shape) != want:
            raise ConditioningError(
                f"{source}: gpt_conditioning has shape {list(self.gpt_conditioning.shape)}, "
                f"the model needs {list(want)}"
            )
        if tuple(self.emo_vec.shape) != (cfg.model_dim,):
            raise ConditioningError(
                f"{source}: emo_vec has shape {list(self.emo_vec.shape)}, the model needs [{cfg.model_dim}]"
            )


def save_conditioning(cond: GlobalConditioning, path: str | Path) -> Path:
    """Write atomically: a crash leaves either the old file or the new one, never half of one."""
    tensors = {
        "gpt_conditioning": cond.gpt_conditioning.detach().float().cpu().contiguous(),
        "emo_vec": cond.emo_vec.detach().float().cpu().contiguous(),
    }
    data = save(tensors, metadata={k: str(v) for k, v in cond.metadata.items()})
    return atomic_write_bytes(path, data)


def load_conditioning(path: str | Path, cfg: GPTConfig | None = None) -> GlobalConditioning:
    """Read and (when `cfg` is given) validate against the model."""
    path = Path(path)
    if not path.is_file():
        raise ConditioningError(f"{path}: conditioning file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConditioningError(f"{path}: not a safetensors conditioning file ({exc})") from exc
    missing = [k for k in ("gpt_conditioning", "emo_vec") if k not in tensors]
    if missing:
        raise ConditioningError(f"{path}: missing tensor {missing[0]!r}")
    cond = GlobalConditioning(tensors["gpt_conditioning"], tensors["emo_vec"], dict(metadata))
    if cfg is not None:
        cond.check_fits(cfg, str(path))
    return cond
