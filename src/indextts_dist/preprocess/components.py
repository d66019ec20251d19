"""The models preprocessing runs, loaded once per rank, and their fingerprints.

Tiny preset: seeded random GPT encoders, w2v-BERT and codec, and the tiny BPE, so tests and the demo
run the real code in seconds. Official: the release files from one local folder, nothing fetched.

The second stage (`SecondStage`) is loaded too: preprocess computes each clip's CAMPPlus style and
rank 0 the reference's ref_mel / prompt_condition, so that training never needs the raw audio. The
official preset without the second-stage files warns and goes on without it (the dataset then has
no speaker embeddings; its models are codes-only). Its CAMPPlus fingerprint is part of every unit
key (`speaker_style`, "none" without a second stage): a unit summed without styles, or with another
CAMPPlus, is recomputed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..codec import RepCodec, build_codec, codec_fingerprint, load_codec
from ..errors import InputError
from ..features import SemanticFeatures
from ..model import (
    UnifiedVoice,
    base_fingerprint,
    base_weights_file,
    build_model,
    file_sha256,
    is_random_preset,
)
from ..model import preset as gpt_preset
from ..model.checkpoint import state_dict_fingerprint
from ..speech.s2mel_config import s2mel_preset
from ..speech.second_stage import SecondStage
from ..text import LanguageTokenizer, TextTokenizer, tiny_tokenizer
from ..weights_layout import WeightsLayout, WeightsLayoutV25, weights_layout

__all__ = ["Components", "asr_warning", "load_components"]


@dataclass
class Components:
    preset: str
    tokenizer: TextTokenizer | LanguageTokenizer
    features: SemanticFeatures
    codec: RepCodec
    gpt: UnifiedVoice
    second_stage: SecondStage | None = None
    """None: no speaker styles are computed (official preset without the second-stage files)."""
    style_dim: int = 0
    """Width of the CAMPPlus style the sums carry: the preset's, with or without a second stage, so
    every rank reduces vectors of the same layout even when one of them lacks the weights."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    whisper_model: str | None = None
    _transcriber: object | None = None
    _by_language: dict = field(default_factory=dict)

    @property
    def transcriber(self):
        """Whisper is loaded only when a clip actually needs ASR (a full CSV override needs none)."""
        return self.transcriber_for(None)

    def transcriber_for(self, language: str | None):
        """The transcriber for ``language`` (None: what the model implies); one Whisper model is
        loaded once and shared whatever the language."""
        from ..transcribe import Transcriber

        if self._transcriber is None:
            self._transcriber = Transcriber(model=self.whisper_model)
        base = self._transcriber
        if language is None or language == base.language:
            return base
        if language not in self._by_language:
            self._by_language[language] = Transcriber(model=base.model, language=language)
        return self._by_language[language]

    def text_language(self) -> dict[str, object]:
        """The 2.5 tokenizer's language (code and `lang_embedding` row) for dataset_info; {} in v2."""
        tok = self.tokenizer
        if isinstance(tok, LanguageTokenizer):
            return {"text_language": tok.language, "text_language_id": tok.language_id}
        return {}

    def to(self, device: torch.device) -> Components:
        self.features.model.to(device)
        self.codec.to(device)
        self.gpt.to(device)
        if self.second_stage is not None:
            self.second_stage.to(device, torch.float32)
        return self


def _second_stage(preset: str, weights_dir: Path | None, seed: int) -> SecondStage | None:
    v25 = gpt_preset(preset).is_v25
    if is_random_preset(preset):
        return SecondStage.tiny(seed, gpt_preset(preset).model_dim, preset)
    try:
        return SecondStage.official(weights_dir, preset)
    except FileNotFoundError as exc:
        if v25:  # 2.5's GPT speaker row IS the CAMPPlus style: no CAMPPlus, no conditioning
            raise InputError(f"preset {preset!r} needs CAMPPlus for its speaker row ({exc})") from None
        print(f"[preprocess] warning: no second stage ({exc}); the dataset gets no speaker embeddings "
              "and its models will be codes-only", file=sys.stderr)  # fmt: skip
        return None


def _tokenizer(
    preset: str, weights_dir: Path | None, language: str | None
) -> TextTokenizer | LanguageTokenizer:
    """v2: the tiny BPE (random presets) or `bpe.model`; 2.5: the tiktoken file of the weights
    folder (tiny-v2.5 too: the real vocabulary), bound to `language` (default en)."""
    if gpt_preset(preset).is_v25:
        if weights_dir is None:
            raise InputError(f"preset {preset!r} needs --weights-dir holding the tiktoken vocabulary")
        return LanguageTokenizer.from_file(WeightsLayoutV25(Path(weights_dir)).tiktoken, language or "en")
    if is_random_preset(preset):
        return tiny_tokenizer()
    return TextTokenizer(WeightsLayout(Path(weights_dir or ".")).bpe)


def load_components(
    preset: str,
    weights_dir: Path | None,
    whisper_model: str | None,
    seed: int = 0,
    language: str | None = None,
) -> Components:
    """`language`: the 2.5 tokenizer's `<|lang|>` (ignored by v2's BPE)."""
    tokenizer = _tokenizer(preset, weights_dir, language)
    if is_random_preset(preset):  # seeded random parts; mini may bring a pretrained base GPT
        weights = base_weights_file(preset, weights_dir)
        gpt = build_model(preset, weights, seed=seed)
        codec = build_codec(preset, seed=seed)
        comps = Components(preset, tokenizer, SemanticFeatures.tiny(seed), codec, gpt)
        comps.fingerprints = {
            "gpt": base_fingerprint(preset, weights, seed=seed),
            "codec": codec_fingerprint(codec),
        }
    else:
        if weights_dir is None:
            raise InputError(f"preset {preset!r} needs a weights folder")
        weights_dir = Path(weights_dir)
        layout = weights_layout(preset, weights_dir)
        gpt = build_model(preset, layout.gpt)
        codec_path = layout.codec if isinstance(layout, WeightsLayoutV25) else layout.semantic_codec
        codec = load_codec(codec_path, preset)
        comps = Components(
            preset,
            tokenizer,
            SemanticFeatures.official(weights_dir),
            codec,
            gpt,
        )
        comps.fingerprints = {
            "gpt": file_sha256(layout.gpt),
            "codec": file_sha256(codec_path),
        }
    comps.second_stage = _second_stage(preset, weights_dir, seed)
    stage = comps.second_stage
    comps.style_dim = stage.s2mel.cfg.style_dim if stage is not None else s2mel_preset(preset).style_dim
    comps.fingerprints["speaker_style"] = (
        state_dict_fingerprint(stage.campplus.state_dict()) if stage is not None else "none"
    )
    comps.fingerprints["features"] = comps.features.fingerprint
    comps.fingerprints["tokenizer"] = comps.tokenizer.sha256
    comps.whisper_model = whisper_model
    warning = asr_warning(preset, whisper_model)
    if warning is not None:
        print(warning, file=sys.stderr)
    return comps


def asr_warning(preset: str, whisper_model: str | None) -> str | None:
    """The one-line warning for real weights transcribed by the bundled tiny.en, else None."""
    if is_random_preset(preset) or whisper_model is not None:
        return None
    return (
        "[preprocess] warning: ASR uses the bundled Whisper tiny.en (English only, error-prone); "
        "real data wants a larger model: --whisper-model large-v3 (or a local CTranslate2 folder)"
    )
