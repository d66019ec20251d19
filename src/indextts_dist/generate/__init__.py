"""Autoregressive decoding of semantic codes (greedy, sampling, official beam-sample), KV-cached."""

from .decoding import DecodingConfig, GenerationResult, generate_codes, prepare_prompt

__all__ = ["DecodingConfig", "GenerationResult", "generate_codes", "prepare_prompt"]
