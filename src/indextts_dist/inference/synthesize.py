"""The Python API of a pattern model: load once, call many times, batched.

    from indextts_dist.inference.synthesize import PatternInference
    tts = PatternInference.load("models:/my-speaker@candidate")      # or a local package folder
    for r in tts(["Life finds a way.", "Well, [UH] I think so."]):
        r.codes, r.latents                                           # semantic codes, GPT latents for S2Mel
    PatternInference.load(uri, device="cuda:1", dtype="bfloat16")    # default: CUDA if present, float32

Long texts are split into segments as the official inference does (SPEC §c.4); each segment is
generated on its own (segments of all texts share batches) and the results are joined in order.
The latents are what the official forward returns for (text, codes) at batch size 1: S2Mel's input.
The GPT and the second stage run on the placement given to `load` (`inference.placement`); codes and
latents always come back as host tensors (int64 / float32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..generate import DecodingConfig, generate_codes
from ..tracking import fetch_model, load_package
from ..tracking.package import PatternModel
from .placement import Placement, placement_of, resolve_placement, to_host
from .segment import MAX_SEGMENT_TOKENS, split_segments

__all__ = ["PatternInference", "Synthesis"]


@dataclass
class Synthesis:
    text: str
    normalized: str
    segments: list[list[int]]
    """Text ids of each segment (no start/stop)."""
    codes: torch.Tensor
    """Semantic codes of all segments, joined [N] (int64, on the host)."""
    latents: torch.Tensor
    """GPT latents [N, model_dim] (float32, on the host), one row per code."""
    stopped: list[bool]
    """Per segment: ended with the stop code (False: hit the cap)."""
    segment_codes: list[int]
    """Codes per segment (the second stage renders segments separately and joins them)."""


class PatternInference:
    def __init__(self, pattern: PatternModel, segment_tokens: int = MAX_SEGMENT_TOKENS) -> None:
        self.pattern = pattern
        self.model = pattern.model.eval()
        self.tokenizer = pattern.tokenizer
        self.prefix = pattern.generator.prefix
        self.segment_tokens = min(segment_tokens, self.model.cfg.max_text_tokens)
        self._renderer = None

    @classmethod
    def load(
        cls,
        model: str | Path,
        *,
        tracking_uri: str | None = None,
        cache_dir: str | Path = ".cache/indextts-dist-models",
        weights_dir: str | Path | None = None,
        segment_tokens: int = MAX_SEGMENT_TOKENS,
        device: str | None = None,
        dtype: str | None = None,
    ) -> PatternInference:
        """`models:/NAME@ALIAS`, `models:/NAME/VERSION`, or a local package folder, loaded onto
        `device` (any torch device; default CUDA when present) in `dtype` (float32 | bfloat16 |
        float16; default float32). A bad device or dtype fails before anything is downloaded."""
        placement = resolve_placement(device, dtype)
        if str(model).startswith("models:/"):
            folder = fetch_model(str(model), cache_dir, tracking_uri=tracking_uri)
        else:
            folder = Path(model)
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: no such model folder (or use a models:/NAME@ALIAS URI)")
        return cls(load_package(folder, weights_dir=weights_dir, placement=placement), segment_tokens)

    @property
    def label(self) -> str | None:
        return self.pattern.label

    @property
    def placement(self) -> Placement:
        """Where the GPT runs (and where `speak` puts the second stage)."""
        return self.pattern.placement

    def segment(self, prepared: str) -> list[list[int]]:
        """Text ids per segment of an already normalized text."""
        pieces = self.tokenizer.tokenize_prepared(prepared)
        segments = split_segments(pieces, self.segment_tokens)
        return [[self.tokenizer.piece_to_id(p) for p in seg] for seg in segments]

    @torch.no_grad()
    def latents(self, text_ids: list[int], codes: torch.Tensor) -> torch.Tensor:
        """The official forward at batch size 1: final-normed hidden states of the mel block [N, D],
        computed in the model's dtype (as the official half-precision inference does), returned as
        float32 on the host."""
        device = placement_of(self.model).device
        ids = torch.tensor([text_ids], device=device)
        out = self.model(self.prefix, ids, torch.tensor([len(text_ids)], device=device),
                         codes[None].to(device), torch.tensor([codes.numel()], device=device))  # fmt: skip
        return to_host(out.mel_latents[0])

    def __call__(
        self, texts: Sequence[str], decoding: DecodingConfig | None = None, batch_size: int = 8
    ) -> list[Synthesis]:
        decoding = decoding or DecodingConfig()
        if any(not t.strip() for t in texts):
            raise ValueError("empty text: nothing to synthesize")
        prepared = [self.tokenizer.prepare(t) for t in texts]
        per_text = [self.segment(p) for p in prepared]
        flat = [(i, seg) for i, segs in enumerate(per_text) for seg in segs]
        codes: list[torch.Tensor] = []
        stopped: list[bool] = []
        for start in range(0, len(flat), batch_size):
            chunk = [seg for _, seg in flat[start : start + batch_size]]
            result = generate_codes(self.model, self.prefix, chunk, decoding)
            codes.extend(result.codes)
            stopped.extend(result.stopped)
        out = []
        for i, text in enumerate(texts):
            rows = [k for k, (owner, _) in enumerate(flat) if owner == i]
            seg_codes = [codes[k] for k in rows]
            seg_latents = [self.latents(flat[k][1], codes[k]) for k in rows]
            out.append(
                Synthesis(
                    text=text,
                    normalized=prepared[i],
                    segments=per_text[i],
                    codes=torch.cat(seg_codes) if seg_codes else torch.zeros(0, dtype=torch.long),
                    latents=torch.cat(seg_latents)
                    if seg_latents
                    else torch.zeros(0, self.model.cfg.model_dim),
                    stopped=[stopped[k] for k in rows],
                    segment_codes=[int(c.numel()) for c in seg_codes],
                )
            )
        return out

    def speak(
        self,
        texts: Sequence[str],
        decoding: DecodingConfig | None = None,
        weights_dir: str | Path | None = None,
    ) -> list[tuple[Synthesis, np.ndarray]]:
        """Codes, latents AND the 22.05 kHz waveform per text, through the package's second stage
        (segments joined with 200 ms of silence). The tiny preset's waveforms are noise, not speech."""
        from .speech_output import SpeechRenderer

        if self._renderer is None:
            self._renderer = SpeechRenderer(
                self.pattern.path, self.pattern.manifest, weights_dir, placement=self.placement
            )
        seed = (decoding.seed if decoding else None) or 0
        return [(r, self._renderer.render(r, seed=seed)) for r in self(texts, decoding)]
