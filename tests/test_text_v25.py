"""The IndexTTS-2.5 text front end on tiktoken: every id of reference_tokenizer_v25.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from indextts_dist.model import LANGUAGE_ROWS, preset
from indextts_dist.pattern_markers import PATTERN_MARKERS
from indextts_dist.text import (
    LANGUAGE_DICT,
    OFFICIAL_TIKTOKEN_SHA256,
    MultilingualTokenizer,
    TextNormalizer,
    TokenizerError,
    apply_char_map,
    language_id,
)

VOCAB = "official/multilingual_zh_ja_yue_char_del.tiktoken"


@pytest.fixture(scope="module")
def reference(indextts25_dir: Path) -> dict:
    return json.loads((indextts25_dir / "reference_tokenizer_v25.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(indextts25_dir: Path) -> MultilingualTokenizer:
    # The reference ran every step except normalization (REFERENCE_2_5 §4).
    return MultilingualTokenizer(indextts25_dir / VOCAB, normalize=False)


def test_vocabulary_and_special_ids(tokenizer, reference):
    assert tokenizer.sha256 == reference["vocab_sha256"] == OFFICIAL_TIKTOKEN_SHA256
    assert tokenizer.mergeable_ranks == reference["mergeable_ranks"] == 58_836
    assert tokenizer.vocab_size == reference["n_vocab"] == preset("official-v2.5").number_text_tokens
    assert preset("tiny-v2.5").number_text_tokens >= tokenizer.vocab_size
    assert {t: tokenizer.special_id(t) for t in reference["special_ids"]} == reference["special_ids"]
    assert not any(tokenizer.is_special(t) for t in reference["not_special"])
    assert {p: tokenizer.pieces(ids) for p, ids in reference["plain_ids"].items()} == {
        p: [p] for p in reference["plain_ids"]
    }
    assert len(LANGUAGE_DICT) == reference["language_dict_size"] == LANGUAGE_ROWS - 1


def _case_id(case: dict) -> str:
    return f"{case['lang']}-{case['raw'][:12]}"


def test_every_case(tokenizer, reference):
    for case in reference["cases"]:
        lang = case["lang"]
        assert apply_char_map(case["raw"]) == case["after_char_rep_map"], _case_id(case)
        prepared = tokenizer.prepare(case["raw"], lang)
        assert prepared == case["after_annotations"], _case_id(case)
        official = tokenizer.official_ids(prepared, lang)
        assert official == case["ids"], _case_id(case)
        assert [*official, 1] == case["ids_passed_to_gpt"], _case_id(case)
        assert [0, *tokenizer.encode(case["raw"], lang), 1] == case["gpt_text_sequence"], _case_id(case)
        assert tokenizer.pieces(official) == case["pieces"], _case_id(case)
        assert language_id(lang) == case["lang_id"], _case_id(case)


@pytest.mark.parametrize(("lang", "word"), [("en", "pause"), ("zh", "pause"), ("es", "PAUSE")])
def test_markers_are_ordinary_pieces(tokenizer, lang, word):
    """`[PAUSE]` -> `'pause'` (brackets mapped to `'`, then the language's casing): no special id."""
    for marker in PATTERN_MARKERS:
        spelled = f"'{marker[1:-1].lower() if word.islower() else marker[1:-1]}'"
        assert tokenizer.prepare(marker, lang) == spelled
        ids = tokenizer.encode(f"wait {marker} now", lang)
        assert ids == tokenizer.encode(f"wait {spelled} now", lang)
        assert all(i < tokenizer.mergeable_ranks for i in ids[1:])  # only the language token is special
    pieces = tokenizer.tokenize("[PAUSE]", lang)
    assert pieces[0] == f"<|{lang}|>" and "".join(pieces[1:]) == f" '{word}'"


def test_normalization_goes_through_the_v2_path(indextts25_dir, caplog):
    normalizing = MultilingualTokenizer(indextts25_dir / VOCAB, TextNormalizer())
    text = "It's 2 o'clock, Dr. Smith!"
    expected = TextNormalizer().normalize(apply_char_map(text)).lower()
    assert normalizing.prepare(text, "en") == expected and "two" in expected
    with caplog.at_level(logging.WARNING):
        assert normalizing.prepare("tengo 2 gatos", "es") == "TENGO 2 GATOS"
    assert "no es text normalization (NeMo)" in caplog.text


@pytest.mark.slow
def test_chinese_normalization(indextts25_dir, zh_cache_dir):
    normalizing = MultilingualTokenizer(indextts25_dir / VOCAB, TextNormalizer(zh_cache_dir))
    prepared = normalizing.prepare("我有2个苹果，<行|xing2>！", "zh")
    assert prepared.startswith("我有两个苹果,") and "<|SPECIAL_TOKEN_2|>XING2<|SPECIAL_TOKEN_2|>" in prepared


def test_unknown_language_is_common_and_unreadable_files_are_one_line(tmp_path):
    assert language_id("xx") == language_id("zhen") == 105 and language_id("EN") == 0
    (tmp_path / "bad.tiktoken").write_text("not base64 at all\n")
    with pytest.raises(TokenizerError, match=r"not a tiktoken vocabulary: .*bad\.tiktoken \(line 1\)"):
        MultilingualTokenizer(tmp_path / "bad.tiktoken")
    with pytest.raises(TokenizerError, match="tiktoken vocabulary not found"):
        MultilingualTokenizer(tmp_path / "missing.tiktoken")
