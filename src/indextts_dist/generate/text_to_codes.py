"""Text in, semantic codes out: tokenizer + GPT stage + global conditioning, loaded once, batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..conditioning import GlobalConditioning
from ..inference.placement import placement_of
from ..model import UnifiedVoice
from ..text import TextTokenizer
from .decoding import DecodingConfig, generate_codes

__all__ = ["CodeGenerator", "CodesForText"]


@dataclass
class CodesForText:
    text: str
    normalized: str
    text_ids: list[int]
    codes: torch.Tensor
    stopped: bool


class CodeGenerator:
    """Holds the model, the tokenizer and the 34-row prefix built once from the global conditioning.

    The model runs where it is (move it first, e.g. with `inference.placement.Placement.module`); the
    prefix is built on the model's device in float32 from the stored float32 conditioning, then
    rounded once to the model's dtype, so a half-precision model sees the nearest prefix it can hold.
    """

    def __init__(
        self, model: UnifiedVoice, tokenizer: TextTokenizer, conditioning: GlobalConditioning
    ) -> None:
        conditioning.check_fits(model.cfg)
        if tokenizer.vocab_size > model.cfg.number_text_tokens:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} pieces, the model only {model.cfg.number_text_tokens}"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        place = placement_of(model)
        with torch.no_grad():
            prefix = model.build_prefix(
                conditioning.gpt_conditioning.to(place.device), conditioning.emo_vec.to(place.device)
            )
        self.prefix = place.tensor(prefix)

    def __call__(
        self, texts: Sequence[str], decoding: DecodingConfig | None = None, batch_size: int = 8
    ) -> list[CodesForText]:
        results: list[CodesForText] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            for text in chunk:
                if not text.strip():
                    raise ValueError("empty text: nothing to synthesize")
            prepared = [self.tokenizer.prepare(t) for t in chunk]
            ids = [self.tokenizer.encode_prepared(p) for p in prepared]
            out = generate_codes(self.model, self.prefix, ids, decoding)
            for text, normalized, text_ids, codes, stopped in zip(
                chunk, prepared, ids, out.codes, out.stopped, strict=True
            ):
                results.append(CodesForText(text, normalized, text_ids, codes, stopped))
        return results
