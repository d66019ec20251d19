"""Semantic features: 16 kHz audio -> normalized w2v-BERT 2.0 layer-17 hidden states [T, 1024] at 50 Hz.

Uses transformers' own `SeamlessM4TFeatureExtractor` and `Wav2Vec2BertModel` (REFERENCE_CODEC.md
"The w2v-BERT 2.0 feature path"): the attention mask is passed (an odd frame count leaves a masked
last frame, which is kept), `hidden_states[layer]` is taken, and the result is normalized as
(h - mean) / sqrt(var) with the stats file, no epsilon. The same tensor feeds the GPT conditioning
encoders and the semantic codec. Layers above `layer` are dropped at load time: their output is
never used, and at the official size that saves 7 of 24 conformer layers per clip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

from ..errors import InputError, MissingFileError
from ..weights_layout import WeightsLayout

__all__ = ["FeatureStats", "SemanticFeatures", "load_stats", "tiny_w2v_bert_config"]

# duplicates: module constants look alike elsewhere (audio/validate.py); they are this model's own.
OFFICIAL_LAYER = 17
FEATURE_DIM = 1024
SAMPLE_RATE = 16000


@dataclass
class FeatureStats:
    """Per-channel mean and variance of the layer's hidden states (`wav2vec2bert_stats.pt`)."""

    mean: torch.Tensor
    var: torch.Tensor

    def normalize(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden - self.mean.to(hidden)) / torch.sqrt(self.var.to(hidden))


def load_stats(path: str | Path) -> FeatureStats:
    """Read the official stats dict {mean: [1024], var: [1024]} without unpickling anything else."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: w2v-BERT stats file not found")
    data = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not {"mean", "var"} <= set(data):
        raise InputError(f"{path}: expected a dict with 'mean' and 'var' tensors")
    return FeatureStats(data["mean"].float().reshape(-1), data["var"].float().reshape(-1))


def tiny_w2v_bert_config(layers: int = 2) -> Wav2Vec2BertConfig:
    """A tiny random `Wav2Vec2BertModel`: the real class and feature width (1024), few small layers."""
    return Wav2Vec2BertConfig(
        hidden_size=FEATURE_DIM,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=256,
        conv_depthwise_kernel_size=7,
        layerdrop=0.0,
        apply_spec_augment=False,
        add_adapter=False,
    )


class SemanticFeatures:
    """Feature extractor + truncated w2v-BERT encoder + stats; load once, call per clip or per batch."""

    def __init__(
        self,
        extractor: SeamlessM4TFeatureExtractor,
        model: Wav2Vec2BertModel,
        stats: FeatureStats,
        layer: int,
        fingerprint: str,
    ) -> None:
        if not 1 <= layer <= len(model.encoder.layers):
            raise ValueError(f"feature layer {layer} outside the model's {len(model.encoder.layers)} layers")
        model.encoder.layers = model.encoder.layers[:layer]
        self.extractor = extractor
        self.model = model.eval()
        self.stats = stats
        self.layer = layer
        self.fingerprint = fingerprint

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def tiny(cls, seed: int = 0, layers: int = 2) -> SemanticFeatures:
        """Seeded random weights and stats: the tiny preset (not a speech model)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Wav2Vec2BertModel(tiny_w2v_bert_config(layers))
            gen = torch.Generator().manual_seed(seed + 1)
            stats = FeatureStats(
                0.05 * torch.randn(FEATURE_DIM, generator=gen),
                1.0 + 0.2 * torch.rand(FEATURE_DIM, generator=gen),
            )
        return cls(SeamlessM4TFeatureExtractor(), model, stats, layers, f"tiny-w2v-bert-seed{seed}-l{layers}")

    @classmethod
    def official(cls, weights_dir: str | Path, layer: int = OFFICIAL_LAYER) -> SemanticFeatures:
        """`weights_dir/w2v-bert-2.0/` (a local snapshot of facebook/w2v-bert-2.0) and
        `weights_dir/wav2vec2bert_stats.pt`; nothing is fetched from a hub."""
        layout = WeightsLayout(Path(weights_dir))
        model_dir = layout.w2v_bert_dir
        if not (model_dir / "config.json").is_file():
            raise MissingFileError(f"{model_dir}: no local w2v-BERT 2.0 snapshot (config.json missing)")
        extractor = SeamlessM4TFeatureExtractor.from_pretrained(str(model_dir), local_files_only=True)
        model = Wav2Vec2BertModel.from_pretrained(str(model_dir), local_files_only=True)
        stats_path = layout.w2v_bert_stats
        digest = hashlib.sha256(stats_path.read_bytes()).hexdigest()[:16] if stats_path.is_file() else "none"
        return cls(extractor, model, load_stats(stats_path), layer, f"w2v-bert-2.0-l{layer}-stats{digest}")

    @torch.no_grad()
    def batch(self, clips: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Normalized features per clip, [T_i, 1024] each (T_i = ceil(F_i / 2), masked last frame kept)."""
        inputs = self.extractor(
            [np.asarray(c, dtype=np.float32) for c in clips],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            padding=True,
            return_attention_mask=True,
        )
        features = inputs["input_features"].to(self.device)
        mask = inputs["attention_mask"].to(self.device)
        out = self.model(input_features=features, attention_mask=mask, output_hidden_states=True)
        hidden = self.stats.normalize(out.hidden_states[self.layer].float())
        lengths = [self._frames(len(c)) for c in clips]
        return [hidden[i, :n].cpu() for i, n in enumerate(lengths)]

    def __call__(self, clip: np.ndarray) -> torch.Tensor:
        return self.batch([clip])[0]

    @staticmethod
    def _frames(samples: int) -> int:
        """Stacked frames of one clip: F = 1 + (N - 400) // 160 fbank frames, stacked in pairs."""
        fbank = 1 + (samples - 400) // 160
        return (fbank + 1) // 2
