"""What stands between a global conditioning and `generate_codes`: the prefix, built once per model.

The texts themselves (normalization, segmentation, batching) are the loaded model's job
(`inference.loaded.LoadedModel`), so every door into a model turns the same text into the same
segments and the same batches. This module only holds the rule that every one of them shares: the
conditioning prefix (34 rows in v2, 3 in 2.5) from the stored conditioning, and that the tokenizer
fits the model.
"""

from __future__ import annotations

import torch

from ..conditioning import GlobalConditioning
from ..errors import InputError
from ..model import UnifiedVoice
from ..placement import placement_of
from ..text import TextTokenizer

__all__ = ["check_tokenizer_fits", "conditioning_prefix"]


def check_tokenizer_fits(model: UnifiedVoice, tokenizer: TextTokenizer) -> None:
    """A tokenizer with more pieces than the model's text embedding would index past it."""
    if tokenizer.vocab_size > model.cfg.number_text_tokens:
        raise InputError(
            f"tokenizer has {tokenizer.vocab_size} pieces, the model only {model.cfg.number_text_tokens}"
        )


@torch.no_grad()
def conditioning_prefix(model: UnifiedVoice, conditioning: GlobalConditioning) -> torch.Tensor:
    """The [1, prefix_rows, D] prefix for `model`: the speaker rows (v2: 32 latents; 2.5: the
    projected style) plus the emotion vector, then the two tail rows (`UnifiedVoice.build_prefix`).

    Built on the model's device in float32 from the stored float32 conditioning, then rounded once
    to the model's dtype, so a half-precision model sees the nearest prefix it can hold. Move the
    model first (`indextts_dist.placement.Placement.module`)."""
    conditioning.check_fits(model.cfg)
    place = placement_of(model)
    prefix = model.build_prefix(
        conditioning.gpt_conditioning.to(place.device), conditioning.emo_vec.to(place.device)
    )
    return place.tensor(prefix)
