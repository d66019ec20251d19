"""IndexTTS2 text normalization, reproducing the official v2.0.0 front end (see FRONTEND.md).

The official tokenizer never sees raw text: it sees ``tokenize_by_cjk_char(normalize(text))``. Every
rule below exists because the official front end applies it, and the released ``bpe.model`` only
covers what those rules produce (upper-case Latin, single CJK characters, upper-case pinyin+tone).
Matching it byte for byte is what lets a fine-tune reuse the released text embedding unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "INDEXTTS_DIST_CACHE"
ZH_FST_FILES = ("zh_tn_tagger.fst", "zh_tn_verbalizer.fst")

# --- routing -------------------------------------------------------------------------------------

# Valid pinyin syllables (those the released bpe.model has tone pieces for), with j/q/x written both
# with u and with v. Any of them directly followed by a tone digit sends the text to the Chinese path.
_PINYIN_SYLLABLES = " ".join(
    (
        "a ai an ang ao",
        "ba bai ban bang bao bei ben beng bi bian biao bie bin bing bo bu",
        "ca cai can cang cao ce cen ceng cha chai chan chang chao che chen cheng chi chong chou chu chua",
        "chuai chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo",
        "da dai dan dang dao de dei deng di dia dian diao die ding diu dong dou du duan dui dun duo",
        "e ei en er",
        "fa fan fang fei fen feng fo fou fu",
        "ga gai gan gang gao ge gei gen geng gong gou gu gua guai guan guang gui gun guo",
        "ha hai han hang hao he hei hen heng hong hou hu hua huai huan huang hui hun huo",
        "ji jia jian jiang jiao jie jin jing jiong jiu ju juan jue jun jv jvan jve jvn",
        "ka kai kan kang kao ke ken keng kong kou ku kua kuai kuan kuang kui kun kuo",
        "la lai lan lang lao le lei leng li lia lian liang liao lie lin ling liu long lou lu luan lun luo",
        "lv lve",
        "ma mai man mang mao me mei men meng mi mian miao mie min ming miu mo mou mu",
        "na nai nan nang nao ne nei nen neng ni nian niang niao nie nin ning niu nong nu nuan nuo nv nve",
        "o ou",
        "pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu",
        "qi qia qian qiang qiao qie qin qing qiong qiu qu quan que qun qv qvan qve qvn",
        "ran rang rao re ren reng ri rong rou ru rua ruan rui run ruo",
        "sa sai san sang sao se sen seng sha shai shan shang shao she shei shen sheng shi shou shu shua",
        "shuai shuan shuang shui shun shuo si song sou su suan sui sun suo",
        "ta tai tan tang tao te teng ti tian tiao tie ting tong tou tu tuan tui tun tuo",
        "wa wai wan wang wei wen weng wo wu",
        "xi xia xian xiang xiao xie xin xing xiong xiu xu xuan xue xun xv xvan xve xvn",
        "ya yan yang yao ye yi yin ying yo yong you yu yuan yue yun",
        "za zai zan zang zao ze zei zen zeng zha zhai zhan zhang zhao zhe zhen zheng zhi zhong zhou zhu",
        "zhua zhuai zhuan zhuang zhui zhun zhuo zi zong zou zu zuan zui zun zuo",
    )
).split()
# Longest first so a substitution swallows the whole syllable; the look-behind makes the syllable start
# a word (``a1`` and ``me2`` count, the ``me2`` inside ``time2`` does not).
_PINYIN_TONE_RE = re.compile(
    r"(?<![A-Za-z])(?:" + "|".join(sorted(_PINYIN_SYLLABLES, key=len, reverse=True)) + r")[1-5]",
    re.IGNORECASE,
)
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_ASCII_LETTER_RE = re.compile(r"[A-Za-z]")
_EMAIL_RE = re.compile(r"[A-Za-z0-9]+@[A-Za-z0-9]+\.[A-Za-z]+")


def uses_chinese_path(text: str) -> bool:
    """Whether the official router sends ``text`` to the Chinese TN (Han, no ASCII letter, bare e-mail,
    or pinyin+tone). Hangul/kana without Han characters stay on the English path."""
    return bool(
        _HAN_RE.search(text)
        or not _ASCII_LETTER_RE.search(text)
        or _EMAIL_RE.fullmatch(text)
        or _PINYIN_TONE_RE.search(text)
    )


# --- rules shared by both paths ------------------------------------------------------------------

# No word boundary on purpose: the official rule also turns "spirit's" into "spirit is". ASCII ' only.
_APOSTROPHE_S_RE = re.compile(r"(what|where|who|which|how|here|there|it|he|she|that|this)'s", re.IGNORECASE)
# Stutters and tech terms (b-b-but, GPT-5, F5-TTS): the TN would read "-5" as "negative five".
_HYPHEN_RUN_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+")
# Names such as 克里斯托弗·诺兰 are kept away from the Chinese TN (no traditional->simplified rewrite).
_NAME_RE = re.compile(r"[\u4e00-\u9fff]+(?:·[\u4e00-\u9fff]+)+")
_JQX_U_RE = re.compile(r"^([JQX])U")

# Placeholders come from the Private Use Area: both TNs pass these characters through untouched.
_HYPHEN_MARK = "\ue000"
_SPAN_MARK_BASE = 0xE100
_SPAN_MARK_LIMIT = 0xF8FF
_PLACEHOLDER_RE = re.compile(r"[\ue000-\uf8ff]")
_HYPHEN_RESTORE_RE = re.compile(r"\s*" + _HYPHEN_MARK + r"\s*")


def expand_apostrophe_s(text: str) -> str:
    """``it's`` -> ``it is`` for the official word list (case-insensitive, no word boundary)."""
    return _APOSTROPHE_S_RE.sub(r"\1 is", text)


def _protect_hyphens(text: str) -> str:
    return _HYPHEN_RUN_RE.sub(lambda m: m.group(0).replace("-", _HYPHEN_MARK), text)


def _restore_hyphens(text: str) -> str:
    return _HYPHEN_RESTORE_RE.sub("-", text)


_CHAR_MAP: dict[str, str] = {
    "...": "…",
    ",,,": "…",
    "，，，": "…",
    "……": "…",
    **dict.fromkeys("：；;，:、", ","),
    "。": ".",
    "！": "!",
    "？": "?",
    **dict.fromkeys('"“”‘’()（）《》【】[]「」', "'"),
    **dict.fromkeys("—～~·", "-"),
    "\n": " ",
}
_ZH_CHAR_MAP: dict[str, str] = {**_CHAR_MAP, "$": "."}


def _alternation(mapping: dict[str, str]) -> re.Pattern[str]:
    # Longest key first: "，，，" must win over "，"; one left-to-right pass, so "...." -> "….".
    return re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))


_CHAR_MAP_RE = _alternation(_CHAR_MAP)
_ZH_CHAR_MAP_RE = _alternation(_ZH_CHAR_MAP)


def apply_char_map(text: str, chinese: bool = False) -> str:
    """Map punctuation onto the few forms the bpe.model knows (brackets and quotes become ``'``)."""
    mapping, pattern = (_ZH_CHAR_MAP, _ZH_CHAR_MAP_RE) if chinese else (_CHAR_MAP, _CHAR_MAP_RE)
    return pattern.sub(lambda m: mapping[m.group(0)], text)


_CJK_CHAR_RE = re.compile(
    "([\u1100-\u11ff\u2e80-\ua4cf\ua840-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff65-\uffdc\U00020000-\U0002ffff])"
)


def tokenize_by_cjk_char(text: str) -> str:
    """Space-separate every CJK character and upper-case the rest (bpe.model has no lower-case pieces).

    Inner runs of spaces in a non-CJK part are kept; SentencePiece collapses them itself.
    """
    parts = _CJK_CHAR_RE.split(text.strip())
    return " ".join(p.strip().upper() for p in parts if p.strip())


# --- WeTextProcessing loading --------------------------------------------------------------------


def default_cache_root() -> Path:
    """Root of this package's caches: ``$INDEXTTS_DIST_CACHE`` or ``~/.cache/indextts_dist``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "indextts_dist"


def default_zh_cache_dir() -> Path:
    """Where the Chinese TN FSTs are kept once built (about 36 s the first time)."""
    return default_cache_root() / "tn_zh"


def _zh_cache_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in ZH_FST_FILES)


def build_dir_atomically(
    final_dir: Path, build: Callable[[Path], Any], is_complete: Callable[[Path], bool]
) -> Any:
    """Run ``build(tmp_dir)`` in a sibling temp dir, then rename it to ``final_dir``.

    Other processes therefore see either no cache or a complete one. When two processes race, the
    loser keeps what it built in memory (it is identical) and drops its temp dir. Returns build's result.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        result = build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the published cache should be readable
        if final_dir.exists() and not is_complete(final_dir):
            # A partial dir left by something else: move it aside rather than rename over it.
            stale = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.stale-", dir=final_dir.parent))
            with contextlib.suppress(OSError):
                os.rename(final_dir, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final_dir)
        except OSError:
            if not is_complete(final_dir):
                raise
            log.info("another process published %s first; using its copy", final_dir)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_LOAD_LOCK = threading.Lock()
_EN_TN: Any = None
_ZH_TN: dict[Path, Any] = {}


def _quiet_wetext(name: str) -> logging.Logger:
    # WeTextProcessing attaches a fresh stderr handler on every construction; keep it silent.
    logger = logging.getLogger(f"wetext-{name}")
    logger.disabled = True
    return logger


def _english_tn() -> Any:
    global _EN_TN
    with _LOAD_LOCK:
        if _EN_TN is None:
            from tn.english.normalizer import Normalizer

            logger = _quiet_wetext("en_normalizer")
            try:
                # Default cache dir: the prebuilt en_tn_*.fst shipped inside the wheel are loaded.
                _EN_TN = Normalizer(overwrite_cache=False)
            finally:
                logger.disabled = False
        return _EN_TN


def _make_zh_tn(cache_dir: Path) -> Any:
    from tn.chinese.normalizer import Normalizer

    logger = _quiet_wetext("zh_normalizer")
    try:
        return Normalizer(
            cache_dir=str(cache_dir), remove_interjections=False, remove_erhua=False, overwrite_cache=False
        )
    finally:
        logger.disabled = False


def chinese_tn(cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The official Chinese TN, built once into ``cache_dir`` (atomically) and reused after that."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_zh_cache_dir()
    path = path.absolute()
    with _LOAD_LOCK:
        if path not in _ZH_TN:
            if _zh_cache_complete(path):
                _ZH_TN[path] = _make_zh_tn(path)
            else:
                log.warning("building the Chinese text-normalization FSTs into %s (about 36 s, once)", path)
                _ZH_TN[path] = build_dir_atomically(path, _make_zh_tn, _zh_cache_complete)
        return _ZH_TN[path]


# --- the normalizer ------------------------------------------------------------------------------


class _Spans:
    """Replaces protected spans with one placeholder character each and puts them back later."""

    def __init__(self) -> None:
        self.originals: list[str] = []

    def protect(self, pattern: re.Pattern[str], text: str, restored_as: Callable[[str], str]) -> str:
        def repl(m: re.Match[str]) -> str:
            if _SPAN_MARK_BASE + len(self.originals) > _SPAN_MARK_LIMIT:
                return m.group(0)
            self.originals.append(restored_as(m.group(0)))
            return chr(_SPAN_MARK_BASE + len(self.originals) - 1)

        return pattern.sub(repl, text)

    def restore(self, text: str) -> str:
        if not self.originals:
            return text
        end = chr(_SPAN_MARK_BASE + len(self.originals) - 1)
        return re.sub(
            f"[{chr(_SPAN_MARK_BASE)}-{end}]",
            lambda m: self.originals[ord(m.group(0)) - _SPAN_MARK_BASE],
            text,
        )


def _pinyin_form(syllable: str) -> str:
    return _JQX_U_RE.sub(r"\1V", syllable.upper())


class TextNormalizer:
    """The official ``TextNormalizer.normalize`` (Linux / WeTextProcessing 1.0.4.1 path, empty glossary).

    The Chinese FSTs are only built or loaded when a text actually takes the Chinese path.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def normalize(self, text: str) -> str:
        """Steps 1-4 of FRONTEND.md: route, protect, TN, restore, character map (no upper-casing)."""
        chinese = uses_chinese_path(text)
        text = expand_apostrophe_s(text)
        # Placeholders would be ambiguous if the text already holds Private Use Area characters.
        protect = _PLACEHOLDER_RE.search(text) is None
        spans = _Spans()
        if protect:
            text = _protect_hyphens(text)
            if chinese:
                text = spans.protect(_NAME_RE, text, lambda s: s)
                text = spans.protect(_PINYIN_TONE_RE, text, _pinyin_form)
        tn = chinese_tn(self.cache_dir) if chinese else _english_tn()
        try:
            result = tn.normalize(text)
        except Exception:  # the official front end falls back to the un-normalized text
            log.warning("text normalization failed; using the text as is: %r", text, exc_info=True)
            result = text
        if protect:
            result = _restore_hyphens(spans.restore(result))
        return apply_char_map(result, chinese=chinese)

    def prepare(self, text: str) -> str:
        """The exact string the official tokenizer hands to SentencePiece (the ``normalized`` field)."""
        if not text:
            return ""
        stripped = text.strip()
        if not stripped:
            # Whitespace would take the Chinese path and come back empty; skip the FST load.
            return ""
        if len(stripped) == 1:
            # The official encode() skips normalization and upper-casing here: "a" stays lower-case.
            return text
        return tokenize_by_cjk_char(self.normalize(text))


_DEFAULT: TextNormalizer | None = None


def default_normalizer() -> TextNormalizer:
    """Shared instance using the default cache dir; the TN FSTs themselves are loaded lazily."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TextNormalizer()
    return _DEFAULT


def prepare_for_tokenizer(text: str, normalizer: TextNormalizer | None = None) -> str:
    """``tokenize_by_cjk_char(normalize(text))`` with the official empty / one-character shortcuts."""
    return (normalizer or default_normalizer()).prepare(text)
