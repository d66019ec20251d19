"""The text front end must reproduce the official IndexTTS2 one exactly (FRONTEND.md).

Reference items come from running the official front end with the real bpe.model. Chinese-path items
need the Chinese TN FSTs (about 36 s to build); the session fixture builds them once, into a fresh temp
dir unless ``INDEXTTS_DIST_CACHE`` points at a persistent cache. They are marked ``slow`` but always run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import shared_dir

from indextts_dist.text import (
    CACHE_ENV,
    OFFICIAL_BPE_SHA256,
    PATTERN_MARKERS,
    TINY_CORPUS,
    TINY_VOCAB_SIZE,
    TextNormalizer,
    TextTokenizer,
    TokenizerError,
    prepare_for_tokenizer,
    tiny_model_path,
    tiny_tokenizer,
    tokenize_by_cjk_char,
    train_tiny_bpe,
    uses_chinese_path,
)
from indextts_dist.text.normalizer import ZH_FST_FILES, build_dir_atomically


def _require_shared() -> Path:
    return shared_dir() / "indextts2"


def _load_items() -> list[dict]:
    """The official front end's reference items. A missing file is a collection error, not a
    silently empty parametrization (which would pass by running nothing)."""
    path = _require_shared() / "reference_frontend.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference items missing (set INDEXTTS_SHARED_DIR)")
    return json.loads(path.read_text(encoding="utf-8"))["items"]


ITEMS = _load_items()


def _item_params() -> list:
    params = []
    for i, item in enumerate(ITEMS):
        marks = [pytest.mark.slow] if uses_chinese_path(item["input"]) else []
        params.append(pytest.param(item, id=f"{i:02d}-{item['input'][:24]}", marks=marks))
    return params


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def normalizer(zh_cache_path: Path) -> TextNormalizer:
    """Loads the Chinese TN only when a Chinese-path text needs it (English items stay fast)."""
    return TextNormalizer(cache_dir=zh_cache_path)


def _needs_zh(request: pytest.FixtureRequest, text: str) -> None:
    if uses_chinese_path(text):
        request.getfixturevalue("zh_cache_dir")


@pytest.fixture(scope="session")
def bpe_model() -> Path:
    path = _require_shared() / "official" / "bpe.model"
    assert path.is_file(), f"official bpe.model missing: {path}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == OFFICIAL_BPE_SHA256, f"{path} is not the official bpe.model (sha256 {digest})"
    return path


@pytest.fixture(scope="session")
def official(bpe_model: Path, normalizer: TextNormalizer) -> TextTokenizer:
    return TextTokenizer(bpe_model, normalizer)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return tiny_tokenizer(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("item", _item_params())
def test_reference_normalized(item: dict, normalizer: TextNormalizer, request: pytest.FixtureRequest) -> None:
    _needs_zh(request, item["input"])
    assert prepare_for_tokenizer(item["input"], normalizer) == item["normalized"]


@pytest.mark.parametrize("item", _item_params())
def test_reference_pieces_and_ids(
    item: dict, official: TextTokenizer, request: pytest.FixtureRequest
) -> None:
    _needs_zh(request, item["input"])
    assert official.tokenize(item["input"]) == item["pieces"]
    assert official.encode(item["input"]) == item["ids"]


def test_official_model_properties(official: TextTokenizer) -> None:
    assert official.sha256 == OFFICIAL_BPE_SHA256
    assert official.vocab_size == 12000
    assert (official.bos_id, official.eos_id, official.unk_id) == (0, 1, 2)
    assert official.encode("") == []
    assert official.piece_to_id("XVAN4") != official.unk_id


# -- markers --------------------------------------------------------------------------------------

MARKER_TABLE = {
    "[PAUSE]": (["▁", "'", "PA", "USE", "'"], [10201, 10206, 11300, 11470, 10206]),
    "[LONG]": (["▁", "'", "L", "ON", "G", "'"], [10201, 10206, 10438, 10387, 10381, 10206]),
    "[UH]": (["▁", "'", "U", "H", "'"], [10201, 10206, 10635, 10539, 10206]),
    "[UM]": (["▁", "'", "UM", "'"], [10201, 10206, 10657, 10206]),
    "[HMM]": (["▁", "'", "H", "MM", "'"], [10201, 10206, 10539, 11803, 10206]),
    "[AH]": (["▁", "'", "AH", "'"], [10201, 10206, 10962, 10206]),
    "[ER]": (["▁", "'", "ER", "'"], [10201, 10206, 10385, 10206]),
}


def test_pattern_markers_constant() -> None:
    assert set(PATTERN_MARKERS) == set(MARKER_TABLE)
    assert len(PATTERN_MARKERS) == 7


@pytest.mark.parametrize("marker", list(MARKER_TABLE))
def test_marker_table(marker: str, official: TextTokenizer) -> None:
    pieces, ids = MARKER_TABLE[marker]
    assert prepare_for_tokenizer(marker, official.normalizer) == f"'{marker[1:-1]}'"
    assert official.tokenize(marker) == pieces
    assert official.encode(marker) == ids
    assert official.encode(marker.lower()) == ids
    # After a space the marker keeps its leading "▁".
    assert official.encode(f"Okay {marker}")[-len(ids) :] == ids


def test_glued_marker_loses_leading_space_piece(official: TextTokenizer) -> None:
    pause_ids = MARKER_TABLE["[PAUSE]"][1]
    glued = official.encode("Right.[PAUSE]Okay.")
    assert pause_ids[1:] == glued[2:6] and glued[1] == official.piece_to_id(".")
    assert official.encode("[LONG][PAUSE]") == MARKER_TABLE["[LONG]"][1] + pause_ids[1:]


# -- normalizer rules (FRONTEND.md) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "chinese"),
    [
        ("hello there", False),
        ("我觉得 okay", True),
        ("123", True),
        ("!!!", True),
        ("john@gmail.com", True),
        ("mail john.doe@gmail.com", False),
        ("a1 steak", True),
        ("call ME2 now", True),
        ("time2 go", False),
        ("F5-TTS and GPT-5", False),
        ("안녕 hello", False),
        ("こんにちは hi", False),
    ],
)
def test_routing(text: str, chinese: bool) -> None:
    assert uses_chinese_path(text) is chinese


ENGLISH_CASES = [
    # 's rule: no word boundary, ASCII apostrophe only, case-insensitive
    ("spirit's here", "SPIRIT IS HERE"),
    ("it’s ok", "IT'S OK"),
    ("let's see John's dog", "LET'S SEE JOHN'S DOG"),
    ("HERE'S It'S", "HERE IS IT IS"),
    # hyphen protection
    ("b-b-but I-I-I Mm-hmm", "B-B-BUT I-I-I MM-HMM"),
    ("GPT-5 COVID-19 F5-TTS", "GPT-FIVE COVID-NINETEEN F FIVE-TTS"),
    # the pinned English TN
    ("in 2024 we", "IN TWENTY TWENTY FOUR WE"),
    ("about 1000000 people", "ABOUT ONE MILLION PEOPLE"),
    ("it is $1,200 now", "IT IS ONE THOUSAND TWO HUNDRED DOLLARS NOW"),
    ("it was 12.5 kg", "IT WAS TWELVE POINT FIVE KILOGRAMS"),
    ("it is -5 outside", "IT IS NEGATIVE FIVE OUTSIDE"),
    ("add 1/2 cup", "ADD ONE HALF CUP"),
    ("score 3-2 today", "SCORE THREE TO TWO TODAY"),
    ("call 555-1234", "CALL FIVE HUNDRED AND FIFTY FIVE TO ONE THOUSAND TWO HUNDRED AND THIRTY FOUR"),
    ("on 12/25/2023 we", "ON THE TWENTY FIFTH OF DECEMBER TWENTY TWENTY THREE WE"),
    ("on Jan. 5th, 2010 we", "ON THE FIFTH OF JANUARY , TWENTY TEN WE"),
    ("the 1990s and '90s", "THE NINETEEN NINETIES AND NINETIES"),
    ("#1 fan", "NUMBER ONE F AN"),
    ("you & me", "YOU AND ME"),
    ("Mrs. Ms. U.S. I'M here", "MISSES MISS US I'M HERE"),
    ("St. Prof. etc. e.g. i.e. vs. ok", "ST. PROF. ETC. E.G. I.E. VS. OK"),
    ("write to bob@example.com now", "WRITE TO BOB AT EXAMPLE DOT COM NOW"),
    # character map
    ("... [UH] yes", "…  'UH' YES"),
    ("so.... ok", "SO…. OK"),
    ("line one\nline two", "LINE ONE LINE TWO"),
    ("hi 😂", "HI 😂"),
]


@pytest.mark.parametrize(("text", "expected"), ENGLISH_CASES)
def test_english_rules(text: str, expected: str) -> None:
    assert prepare_for_tokenizer(text) == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42%", "百 分 之 四 十 二"),
        ("xuan4 ju2 我", "XVAN4 JV2 我"),
        ("克里斯托弗·诺兰", "克 里 斯 托 弗 - 诺 兰"),
        ("你好！真的吗？", "你 好 ! 真 的 吗 ?"),
        ("好，，，吧", "好 … 吧"),
        ("《书》", "' 书 '"),
    ],
)
def test_chinese_rules(text: str, expected: str, normalizer: TextNormalizer, zh_cache_dir: Path) -> None:
    assert prepare_for_tokenizer(text, normalizer) == expected


def test_single_character_and_empty_shortcuts() -> None:
    assert prepare_for_tokenizer("") == ""
    assert prepare_for_tokenizer(" \n  ") == ""
    assert prepare_for_tokenizer("a") == "a"
    assert prepare_for_tokenizer("  a ") == "  a "


def test_tokenize_by_cjk_char() -> None:
    assert tokenize_by_cjk_char(" 我觉得 okay 吧 ") == "我 觉 得 OKAY 吧"
    assert tokenize_by_cjk_char("hi  there") == "HI  THERE"
    assert tokenize_by_cjk_char("안녕 ok") == "안 녕 OK"


@pytest.mark.slow
def test_chinese_cache_published(zh_cache_dir: Path) -> None:
    assert all((zh_cache_dir / name).is_file() for name in ZH_FST_FILES)
    if os.environ.get(CACHE_ENV):
        return  # a persistent cache may hold temp dirs of killed runs; only a fresh build is checked
    assert not [p for p in zh_cache_dir.parent.iterdir() if p.name.startswith(f".{zh_cache_dir.name}.")]


def _write_files(names: tuple[str, ...]):
    def build(path: Path) -> str:
        for name in names:
            (path / name).write_text(name)
        return "built"

    return build


def _complete(path: Path) -> bool:
    return (path / "a").is_file() and (path / "b").is_file()


def test_build_dir_atomically(tmp_path: Path) -> None:
    final = tmp_path / "cache"
    assert build_dir_atomically(final, _write_files(("a", "b")), _complete) == "built"
    assert _complete(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_build_dir_atomically_loses_race_and_replaces_partial(tmp_path: Path) -> None:
    final = tmp_path / "cache"

    def build_while_other_publishes(path: Path) -> str:
        _write_files(("a", "b"))(path)
        final.mkdir()
        _write_files(("a", "b", "winner"))(final)
        return "built"

    assert build_dir_atomically(final, build_while_other_publishes, _complete) == "built"
    assert (final / "winner").is_file()
    # A partial dir (one file missing) is replaced by a complete build.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "a").write_text("a")
    build_dir_atomically(partial, _write_files(("a", "b")), _complete)
    assert _complete(partial)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "partial"]


# -- tokenizer errors -------------------------------------------------------------------------------


def test_missing_model_raises_tokenizer_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "bpe.model"
    with pytest.raises(TokenizerError, match="not found") as info:
        TextTokenizer(missing)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_garbage_model_raises_tokenizer_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(TokenizerError) as info:
        TextTokenizer(bad)
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)


# -- tiny BPE -------------------------------------------------------------------------------------


def test_tiny_training_is_deterministic(tmp_path: Path) -> None:
    first = train_tiny_bpe(TINY_CORPUS, tmp_path / "one" / "tiny.model")
    second = train_tiny_bpe(TINY_CORPUS, tmp_path / "two" / "tiny.model")
    assert first.read_bytes() == second.read_bytes()
    assert [p.name for p in first.parent.iterdir()] == ["tiny.model"]


def test_tiny_vocab_and_special_ids(tiny: TextTokenizer) -> None:
    assert TINY_VOCAB_SIZE == 256
    assert tiny.vocab_size == TINY_VOCAB_SIZE
    assert [tiny.id_to_piece(i) for i in range(3)] == ["<s>", "</s>", "<unk>"]
    assert not any(c.islower() for i in range(3, tiny.vocab_size) for c in tiny.id_to_piece(i))


@pytest.mark.parametrize("marker", PATTERN_MARKERS)
def test_tiny_markers_round_trip(marker: str, tiny: TextTokenizer) -> None:
    normalized = prepare_for_tokenizer(marker)
    assert normalized == f"'{marker[1:-1]}'"
    ids = tiny.encode(marker)
    assert tiny.unk_id not in ids
    assert tiny.decode(ids) == normalized
    sentence = f"Well, {marker.lower()} b-b-but okay."
    assert tiny.decode(tiny.encode(sentence)) == prepare_for_tokenizer(sentence)


def test_tiny_corpus_has_no_unk(tiny: TextTokenizer) -> None:
    assert not any(uses_chinese_path(t) for t in TINY_CORPUS)
    ids = [i for text in TINY_CORPUS for i in tiny.encode(text)]
    assert tiny.unk_share(ids) == 0.0
    assert tiny.unk_share([tiny.unk_id, 5, 6, 7]) == 0.25
    assert tiny.unk_share([]) == 0.0
    space = tiny.piece_to_id("▁")
    assert tiny.unk_share([space, tiny.unk_id, space, 5]) == 0.5  # word boundaries are not content


def test_tiny_cache_hit_does_not_retrain(tmp_path: Path) -> None:
    first = tiny_tokenizer(tmp_path)
    path = tiny_model_path(tmp_path)
    assert first.model_path == path
    before = path.stat()
    second = tiny_tokenizer(tmp_path)
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert second.sha256 == first.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.slow
def test_a_chinese_transcript_takes_the_chinese_path_in_preprocess(
    tmp_path, normalizer, zh_cache_dir
) -> None:
    """Issue 13: non-English text (here a `--transcripts` row; a multilingual Whisper writes the same)
    is normalized by the official front end's Chinese path, exactly as inference prepares it."""
    import subprocess

    from indextts_dist.preprocess import PreprocessOptions
    from indextts_dist.preprocess.clip import process_clip
    from indextts_dist.preprocess.components import load_components
    from indextts_dist.preprocess.listing import list_clips

    (tmp_path / "clips").mkdir()
    subprocess.run(["espeak-ng", "-w", str(tmp_path / "clips" / "a.wav"), "one clip of speech"], check=True)
    comps = load_components("tiny", None, None)
    comps.tokenizer.normalizer = normalizer  # this session's FST cache
    opts = PreprocessOptions(audio_dir=tmp_path / "clips", out=tmp_path / "out", max_unk_share=1.0)
    text = "我有3个苹果，你呢？"
    sample = process_clip(list_clips(tmp_path / "clips")[0], comps, opts, text)
    assert sample.meta["text_normalized"] == "我 有 三 个 苹 果 , 你 呢 ?"  # numbers read in Chinese
    assert sample.meta["text_normalized"] == prepare_for_tokenizer(text, normalizer)  # inference's path
    assert sample.text_ids.tolist() == comps.tokenizer.encode(text)
