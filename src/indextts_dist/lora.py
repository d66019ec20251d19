"""LoRA on the GPT stage with PEFT: which modules, how it is saved, how it is merged for inference.

GPT-2's projections are HF `Conv1D` layers stored [in, out], hence `fan_in_fan_out=True`. Targets
are matched by name suffix: `c_attn`, `c_proj` (attention and MLP) and `c_fc`; the heads are optional.
Only the backbone's blocks are targeted, never the conditioning encoders (which the training model
does not even build: with a constant global conditioning they would get no gradient).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from .errors import MissingFileError
from .model import UnifiedVoice

__all__ = ["GPT_TARGETS", "HEAD_TARGETS", "LoraSettings", "apply_lora", "load_merged"]

GPT_TARGETS = ("c_attn", "c_proj", "c_fc")
HEAD_TARGETS = ("text_head", "mel_head")


@dataclass(frozen=True)
class LoraSettings:
    """Defaults are the guide's recommended values (r=32, alpha=64, dropout 0.05)."""

    rank: int = 32
    """LoRA rank r: width of each adapter's low-rank update."""
    alpha: int = 64
    """LoRA alpha: the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    heads: bool = False
    """Also adapt `text_head` and `mel_head`."""

    def peft_config(self) -> LoraConfig:
        targets = list(GPT_TARGETS) + (list(HEAD_TARGETS) if self.heads else [])
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            fan_in_fan_out=True,
            bias="none",
        )

    def to_dict(self) -> dict:
        return asdict(self)


def apply_lora(model: UnifiedVoice, settings: LoraSettings) -> PeftModel:
    """Freeze the base and wrap it; only adapter parameters require grad afterwards."""
    for p in model.parameters():
        p.requires_grad_(False)
    with warnings.catch_warnings():
        # HF Conv1D needs fan_in_fan_out, the nn.Linear heads do not: PEFT corrects it per layer.
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to True")
        return get_peft_model(model, settings.peft_config())


def load_merged(model: UnifiedVoice, adapter_dir: str | Path) -> UnifiedVoice:
    """Base + adapter merged into plain weights: inference runs at base speed, no adapter overhead."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise MissingFileError(f"{adapter_dir}: not a PEFT adapter folder (adapter_config.json missing)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to True")
        return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
