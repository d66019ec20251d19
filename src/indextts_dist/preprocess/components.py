"""The models preprocessing runs, loaded once per rank, and their fingerprints.

Tiny preset: seeded random GPT encoders, w2v-BERT and codec, and the tiny BPE, so tests and the demo
run the real code in seconds. Official: the release files from one local folder, nothing fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..codec import RepCodec, build_codec, codec_fingerprint, load_codec
from ..features import SemanticFeatures
from ..model import UnifiedVoice, base_fingerprint, build_model, file_sha256
from ..text import TextTokenizer, tiny_tokenizer

__all__ = ["Components", "load_components"]


@dataclass
class Components:
    preset: str
    tokenizer: TextTokenizer
    features: SemanticFeatures
    codec: RepCodec
    gpt: UnifiedVoice
    fingerprints: dict[str, str] = field(default_factory=dict)
    whisper_model: str | None = None
    _transcriber: object | None = None

    @property
    def transcriber(self):
        """Whisper is loaded only when a clip actually needs ASR (a full CSV override needs none)."""
        if self._transcriber is None:
            from ..transcribe import Transcriber

            self._transcriber = Transcriber(model=self.whisper_model)
        return self._transcriber

    def to(self, device: torch.device) -> Components:
        self.features.model.to(device)
        self.codec.to(device)
        self.gpt.to(device)
        return self


def load_components(
    preset: str, weights_dir: Path | None, whisper_model: str | None, seed: int = 0
) -> Components:
    if preset == "tiny":
        gpt = build_model("tiny", seed=seed)
        codec = build_codec("tiny", seed=seed)
        comps = Components(preset, tiny_tokenizer(), SemanticFeatures.tiny(seed), codec, gpt)
        comps.fingerprints = {
            "gpt": base_fingerprint("tiny", seed=seed),
            "codec": codec_fingerprint(codec),
        }
    else:
        if weights_dir is None:
            raise ValueError(f"preset {preset!r} needs a weights folder")
        weights_dir = Path(weights_dir)
        gpt = build_model(preset, weights_dir / "gpt.pth")
        codec_path = weights_dir / "semantic_codec" / "model.safetensors"
        codec = load_codec(codec_path, preset)
        comps = Components(
            preset,
            TextTokenizer(weights_dir / "bpe.model"),
            SemanticFeatures.official(weights_dir),
            codec,
            gpt,
        )
        comps.fingerprints = {
            "gpt": file_sha256(weights_dir / "gpt.pth"),
            "codec": file_sha256(codec_path),
        }
    comps.fingerprints["features"] = comps.features.fingerprint
    comps.fingerprints["tokenizer"] = comps.tokenizer.sha256
    comps.whisper_model = whisper_model
    return comps
