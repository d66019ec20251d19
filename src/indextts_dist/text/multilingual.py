"""IndexTTS-2.5's text front end: the tiktoken vocabulary `multilingual_zh_ja_yue_char_del.tiktoken`.

SPEC_2_5 §4. The vocabulary file holds 58,836 `base64 rank` lines; 1,673 special tokens follow in a
fixed order (60,509 ids, the GPT's `number_text_tokens`). A text becomes ids in the order of the
official `infer_v2_5.py`: punctuation map, normalization (en/zh through the same WeTextProcessing
path as our v2 front end), lower-casing (ja/zh/zhen/en) or upper-casing (es), pronunciation
annotations, `<|x|>` tags upper-cased, then `encode('<|lang|> ' + text, allowed_special='all')`.

What the GPT sees between its start and stop ids is that encoding with every id 0 (`!`) and 1 (`"`)
deleted (`prepare_gpt_inputs` deletes the start/stop ids 0 and 1 wherever they occur). `encode`
returns exactly that, so training data and generation agree with the official prompt; the official
encoding itself is `official_ids`.

The markers (`[PAUSE]`, `[UH]`, ...) get no special treatment: the punctuation map turns the brackets
into `'`, casing lowers the word, and tiktoken spells it with ordinary pieces, as the 2.5 front end
does with any bracketed word.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

from .normalizer import TextNormalizer, apply_char_map, default_normalizer
from .tokenizer import TokenizerError

__all__ = [
    "COMMON_LANGUAGE",
    "LANGUAGE_DICT",
    "OFFICIAL_TIKTOKEN_SHA256",
    "LanguageTokenizer",
    "MultilingualTokenizer",
    "apply_pronunciation_annotations",
    "language_id",
    "special_tokens",
]

log = logging.getLogger(__name__)

OFFICIAL_TIKTOKEN_SHA256 = "747979631e813193436aabcff7c1c235d37de8097b71c563ec8b63b7a515c718"
"""sha256 of the released `multilingual_zh_ja_yue_char_del.tiktoken` (CosyVoice's file, SPEC_2_5 §4.1)."""

COMMON_LANGUAGE = "common"
"""The language every unknown code maps to (LANGUAGE_DICT index 105)."""

LANGUAGE_DICT: dict[str, int] = {
    code: i
    for i, code in enumerate(
        # Whisper's 100 codes in order (en 0, zh 1, es 3, ja 7, ar 13, su 98, yue 99: SPEC_2_5 §4.2),
        # then CosyVoice's five additions (their names are not covered by an official reference),
        # then IndexTTS-2.5's `common`: 106 entries, so `lang_embedding` has 107 rows.
        [*WHISPER_LANGUAGES, "minnan", "wuyu", "dialect", "zh/en", "en/zh", COMMON_LANGUAGE]
    )
}
"""Language code -> `lang_embedding` row (the official `LANGUAGE_DICT`)."""

_SPECIAL_LANGUAGES = 99
"""Only the first 99 language codes get a `<|xx|>` special token (`yue` and later encode as text)."""

_AUDIO_EVENTS = ("ASR", "AED", "SER", "Speech", "/Speech", "BGM", "/BGM", "Laughter", "/Laughter",
                 "Applause", "/Applause")  # fmt: skip
_EMOTIONS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL")
_TASKS = ("translate", "transcribe", "startoflm", "startofprev", "nospeech", "notimestamps")
_TTS_TOKENS = ("B", "O", "Q", "A", "CO", "CL", "H", *(f"SP{i:02d}" for i in range(1, 14)))

_NORMALIZED = ("zh", "zhen", "en")
"""Languages normalized by WeTextProcessing (`TextNormalizer`), as the official front end does."""
_NEMO_NORMALIZED = ("ja", "es")
"""Languages the official front end normalizes with NeMo, which this project does not ship."""
_LOWER = ("ja", "zh", "zhen", "en")
_UPPER = ("es",)

_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_KANA_RE = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]+")
_ANNOTATION_RE = re.compile(r"<([^<>|]+)\|([^<>|]+)>")
"""`<word|pronunciation>`; `<|tag|>` never matches (the word part cannot start with `|`)."""
_TAG_RE = re.compile(r"<\|[^<>|]*\|>")
_SPECIAL_1, _SPECIAL_2 = "<|SPECIAL_TOKEN_1|>", "<|SPECIAL_TOKEN_2|>"


def special_tokens() -> list[str]:
    """The 1,673 special tokens in id order after the ranks (SPEC_2_5 §4.1)."""
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in list(LANGUAGE_DICT)[:_SPECIAL_LANGUAGES]),
        *(f"<|{name}|>" for name in (*_AUDIO_EVENTS, *_EMOTIONS, *_TASKS)),
        *(f"<|SPECIAL_TOKEN_{i}|>" for i in range(1, 31)),
        *(f"<|TTS/{name}|>" for name in _TTS_TOKENS),
        *(f"<|{i * 0.02:.2f}|>" for i in range(1501)),
    ]


def language_id(language: str) -> int:
    """`lang_embedding` row of a language code; unknown codes are `common` (105), as officially."""
    return LANGUAGE_DICT.get(language.lower(), LANGUAGE_DICT[COMMON_LANGUAGE])


def apply_pronunciation_annotations(text: str) -> str:
    """`<word|pron>` -> the pronunciation between two marker tokens: `SPECIAL_TOKEN_2` when the word
    has Han characters (pinyin), else `SPECIAL_TOKEN_1` (phonemes); the pronunciation is upper-cased.
    A kana reading replaces the word inline, without markers."""

    def repl(m: re.Match[str]) -> str:
        word, pron = m.group(1), m.group(2).strip()
        if _KANA_RE.fullmatch(pron):
            return pron
        mark = _SPECIAL_2 if _HAN_RE.search(word) else _SPECIAL_1
        return f"{mark}{pron.upper()}{mark}"

    return _ANNOTATION_RE.sub(repl, text)


def _read_ranks(path: Path) -> tuple[dict[bytes, int], str]:
    """Ranks and sha256 from the bytes read once. (tiktoken's own loader keeps a copy keyed by the
    path in a temp cache, which could serve a stale vocabulary after the file is replaced.)"""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc.strerror})"
        raise TokenizerError(f"tiktoken vocabulary {reason}: {path}") from None
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(blob.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)  # not validated: the file has a "=" line (b"")
        except (ValueError, binascii.Error):
            raise TokenizerError(f"not a tiktoken vocabulary: {path} (line {number})") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerError(f"not a tiktoken vocabulary: {path} (ranks are not 0..{len(ranks) - 1})")
    return ranks, hashlib.sha256(blob).hexdigest()


class MultilingualTokenizer:
    """The 2.5 front end on `tiktoken` with the official vocabulary file."""

    def __init__(
        self,
        vocab_path: str | os.PathLike[str],
        normalizer: TextNormalizer | None = None,
        normalize: bool = True,
    ) -> None:
        self.vocab_path = Path(vocab_path)
        ranks, self._sha256 = _read_ranks(self.vocab_path)
        specials = special_tokens()
        self._encoding = tiktoken.Encoding(
            name=self.vocab_path.stem,
            pat_str=r50k_pat_str,  # the GPT-2 pre-tokenizer, as Whisper's tokenizer uses
            mergeable_ranks=ranks,
            special_tokens={token: len(ranks) + i for i, token in enumerate(specials)},
        )
        self.normalizer = normalizer if normalizer is not None else default_normalizer()
        self.normalize = normalize

    # -- text -> ids --------------------------------------------------------------------------
    def prefix(self, language: str) -> str:
        """`<|lang|> `: a special token for the first 99 codes, plain text otherwise (yue, zhen)."""
        return f"<|{language.lower()}|> "

    def prepare(self, text: str, language: str) -> str:
        """The segment text the official front end encodes after the prefix (steps 2-7 of §4.2,
        without the ja segmentation, warned about, and the splitting into segments)."""
        lang = language.lower()
        text = apply_char_map(text)
        if self.normalize and lang in _NORMALIZED:
            text = self.normalizer.normalize(text)
        elif self.normalize and lang in _NEMO_NORMALIZED:
            log.warning("no %s text normalization (NeMo) in this project: numbers stay as written", lang)
        if lang == "ja":
            log.warning(
                "no Japanese word segmentation (fugashi) in this project: ids differ from the official"
            )
        if lang in _LOWER:
            text = text.lower()
        elif lang in _UPPER:
            text = text.upper()
        text = apply_pronunciation_annotations(text)
        return _TAG_RE.sub(lambda m: m.group(0).upper(), text)

    def official_ids(self, prepared: str, language: str) -> list[int]:
        """`encode(prefix + prepared, allowed_special='all')`, before the appended 1 and before the
        GPT deletes its 0s and 1s."""
        return self._encoding.encode(self.prefix(language) + prepared, allowed_special="all")

    def encode_prepared(self, prepared: str, language: str) -> list[int]:
        """The ids the GPT sees between its start and stop ids: 0s and 1s deleted."""
        return [i for i in self.official_ids(prepared, language) if i not in (0, 1)]

    def encode(self, text: str, language: str) -> list[int]:
        return self.encode_prepared(self.prepare(text, language), language)

    def tokenize(self, text: str, language: str) -> list[str]:
        """Pieces of the official encoding (including the language prefix)."""
        return self.pieces(self.official_ids(self.prepare(text, language), language))

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._encoding.decode_single_token_bytes(int(i)).decode("utf-8", "replace") for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode([int(i) for i in ids])

    # -- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """60,509 with the official file: the 2.5 GPT's `number_text_tokens`."""
        return self._encoding.n_vocab

    @property
    def mergeable_ranks(self) -> int:
        return self._encoding.n_vocab - len(self._encoding.special_tokens_set)

    def special_id(self, token: str) -> int:
        return self._encoding.encode_single_token(token)

    def is_special(self, token: str) -> bool:
        return token in self._encoding.special_tokens_set

    @property
    def sha256(self) -> str:
        return self._sha256

    def __repr__(self) -> str:
        return f"MultilingualTokenizer({str(self.vocab_path)!r}, vocab_size={self.vocab_size})"


class LanguageTokenizer:
    """The 2.5 front end bound to one language: the interface every pipeline stage already uses for
    v2's `TextTokenizer` (`prepare`, `encode`, `encode_prepared`, `unk_share`, `sha256`,
    `vocab_size`), plus the language's `lang_embedding` row (`language_id`) the 2.5 GPT needs.

    A dataset is one speaker in one language (`preprocess --language`), so binding the language
    once keeps every stage's text handling the same call for both model versions."""

    def __init__(self, tokenizer: MultilingualTokenizer, language: str) -> None:
        self.tokenizer = tokenizer
        self.language = language.lower()
        self.language_id = language_id(self.language)

    @classmethod
    def from_file(cls, vocab_path: str | os.PathLike[str], language: str) -> LanguageTokenizer:
        return cls(MultilingualTokenizer(vocab_path), language)

    def prepare(self, text: str) -> str:
        return self.tokenizer.prepare(text, self.language)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, self.language)

    def encode_prepared(self, prepared: str) -> list[int]:
        """The ids the GPT sees between its start and stop ids (language prefix included)."""
        return self.tokenizer.encode_prepared(prepared, self.language)

    def unk_share(self, ids: Sequence[int]) -> float:
        """Always 0: a byte-level vocabulary spells every text, there is no `<unk>` to count."""
        return 0.0

    @property
    def prefix_length(self) -> int:
        """Ids the `<|lang|>` prefix takes before the text (its trailing space joins the first word):
        what a segment's token limit leaves out for it."""
        return len(self.tokenizer.official_ids("", self.language)) - 1

    def body_ids(self, prepared: str) -> list[int]:
        """The official encoding of `prefix + prepared` without the prefix ids (0s and 1s kept, so
        `!` still marks a sentence end when splitting)."""
        return self.tokenizer.official_ids(prepared, self.language)[self.prefix_length :]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.pieces(ids)

    def encode_body(self, ids: Sequence[int]) -> list[int]:
        """One segment (a slice of `body_ids`) as the GPT sees it: its text encoded again behind
        the language prefix, as the official front end encodes each segment."""
        return self.encode_prepared(self.tokenizer.decode(ids).strip())

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def sha256(self) -> str:
        return self.tokenizer.sha256

    def __repr__(self) -> str:
        return f"LanguageTokenizer({self.tokenizer!r}, language={self.language!r})"
