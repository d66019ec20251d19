"""IndexTTS2 text front end: the official normalization rules and the SentencePiece tokenizer.

``prepare_for_tokenizer(text)`` is the exact string the official front end hands to SentencePiece;
``TextTokenizer(bpe_model).encode(text)`` gives the official token ids (no start/stop ids).
"""

from ..pattern_markers import PATTERN_MARKERS
from .normalizer import (
    CACHE_ENV,
    TextNormalizer,
    apply_char_map,
    chinese_tn,
    default_cache_root,
    default_normalizer,
    default_zh_cache_dir,
    expand_apostrophe_s,
    prepare_for_tokenizer,
    tokenize_by_cjk_char,
    uses_chinese_path,
)
from .tokenizer import (
    OFFICIAL_BPE_SHA256,
    TINY_CORPUS,
    TINY_VOCAB_SIZE,
    TextTokenizer,
    TokenizerError,
    tiny_model_path,
    tiny_tokenizer,
    train_tiny_bpe,
)

__all__ = [
    "CACHE_ENV",
    "OFFICIAL_BPE_SHA256",
    "PATTERN_MARKERS",
    "TINY_CORPUS",
    "TINY_VOCAB_SIZE",
    "TextNormalizer",
    "TextTokenizer",
    "TokenizerError",
    "apply_char_map",
    "chinese_tn",
    "default_cache_root",
    "default_normalizer",
    "default_zh_cache_dir",
    "expand_apostrophe_s",
    "prepare_for_tokenizer",
    "tiny_model_path",
    "tiny_tokenizer",
    "tokenize_by_cjk_char",
    "train_tiny_bpe",
    "uses_chinese_path",
]
