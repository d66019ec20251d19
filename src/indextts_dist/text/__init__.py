"""IndexTTS2 text front ends: the official normalization rules, v2's SentencePiece tokenizer and
2.5's tiktoken one.

``prepare_for_tokenizer(text)`` is the exact string the official v2 front end hands to SentencePiece;
``TextTokenizer(bpe_model).encode(text)`` gives the official v2 token ids (no start/stop ids);
``MultilingualTokenizer(tiktoken_file).encode(text, language)`` the ids the 2.5 GPT sees.
"""

from ..pattern_markers import PATTERN_MARKERS
from .multilingual import (
    LANGUAGE_DICT,
    OFFICIAL_TIKTOKEN_SHA256,
    LanguageTokenizer,
    MultilingualTokenizer,
    apply_pronunciation_annotations,
    language_id,
)
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
    "LANGUAGE_DICT",
    "OFFICIAL_BPE_SHA256",
    "OFFICIAL_TIKTOKEN_SHA256",
    "PATTERN_MARKERS",
    "TINY_CORPUS",
    "TINY_VOCAB_SIZE",
    "LanguageTokenizer",
    "MultilingualTokenizer",
    "TextNormalizer",
    "TextTokenizer",
    "TokenizerError",
    "apply_char_map",
    "apply_pronunciation_annotations",
    "chinese_tn",
    "default_cache_root",
    "default_normalizer",
    "default_zh_cache_dir",
    "expand_apostrophe_s",
    "language_id",
    "prepare_for_tokenizer",
    "tiny_model_path",
    "tiny_tokenizer",
    "tokenize_by_cjk_char",
    "train_tiny_bpe",
    "uses_chinese_path",
]
