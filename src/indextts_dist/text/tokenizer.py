"""SentencePiece tokenizer behind the IndexTTS2 front end, plus a tiny deterministic model for tests.

``TextTokenizer`` mirrors the official ``TextTokenizer.encode``: normalize (see ``normalizer``), then
SentencePiece, with no start/stop ids (the GPT adds those itself). ``tiny_tokenizer`` trains a 256-piece
model on normalized English so that small presets and demos tokenize markers like the real model does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import sentencepiece as spm

from ..errors import UserError
from .normalizer import TextNormalizer, default_cache_root, default_normalizer, uses_chinese_path

TINY_VOCAB_SIZE = 256
"""Vocabulary of the tiny model; tiny GPT presets use it as ``number_text_tokens``."""

OFFICIAL_BPE_SHA256 = "b2a5ce8090d32da3642cc4f81fdc996376bc6dd3f4cd5e3d165f71120d9f2bc8"


class TokenizerError(UserError, ValueError):
    """A SentencePiece model file is missing or cannot be parsed."""


class TextTokenizer:
    """Normalizing SentencePiece tokenizer, equivalent to the official ``TextTokenizer``."""

    language_id: int | None = None
    """v2 has no language embedding (2.5's `LanguageTokenizer` carries its row here)."""

    def __init__(self, model_path: str | os.PathLike[str], normalizer: TextNormalizer | None = None) -> None:
        self.model_path = Path(model_path)
        try:
            blob = self.model_path.read_bytes()
        except OSError as exc:
            reason = "not found" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc.strerror})"
            raise TokenizerError(f"SentencePiece model {reason}: {self.model_path}") from None
        sp = spm.SentencePieceProcessor()
        try:
            # Loading from the bytes we hashed keeps ``sha256`` true to the model actually in use.
            sp.LoadFromSerializedProto(blob)
        except Exception as exc:  # sentencepiece raises RuntimeError/OSError depending on version
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TokenizerError(f"not a valid SentencePiece model: {self.model_path} ({msg})") from None
        self._sp = sp
        self._sha256 = hashlib.sha256(blob).hexdigest()
        self.normalizer = normalizer if normalizer is not None else default_normalizer()

    # -- text -> ids --------------------------------------------------------------------------

    def prepare(self, text: str) -> str:
        """The string SentencePiece sees (official normalization, upper-casing, CJK splitting)."""
        return self.normalizer.prepare(text)

    def encode(self, text: str) -> list[int]:
        """Token ids without start/stop ids, identical to the official ``encode``."""
        return self.encode_prepared(self.prepare(text))

    def tokenize(self, text: str) -> list[str]:
        """Pieces, identical to the official ``tokenize``."""
        return self.tokenize_prepared(self.prepare(text))

    def encode_prepared(self, prepared: str) -> list[int]:
        """Ids of an already `prepare`d string: normalization is the slow part (~60 ms per sentence),
        so callers that also need the normalized text run it once."""
        return list(self._sp.encode(prepared, out_type=int))

    def tokenize_prepared(self, prepared: str) -> list[str]:
        return list(self._sp.encode(prepared, out_type=str))

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([int(i) for i in ids])

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(int(token_id))

    def piece_to_id(self, piece: str) -> int:
        return self._sp.piece_to_id(piece)

    def unk_share(self, ids: Sequence[int]) -> float:
        """Fraction of ``<unk>`` among the content pieces: how much of a transcript the vocabulary
        cannot represent. Bare word-boundary pieces (``▁``) carry no content and are not counted, so
        "😂 👍 ok" is 2/3 unknown, not 2/5."""
        space = self._sp.piece_to_id("▁")
        content = [int(i) for i in ids if int(i) != space or space == self.unk_id]
        if not content:
            return 0.0
        return sum(1 for i in content if i == self.unk_id) / len(content)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the model file, to tie cached token ids to the exact model."""
        return self._sha256

    def __repr__(self) -> str:
        return f"TextTokenizer({str(self.model_path)!r}, vocab_size={self.vocab_size})"


# -- tiny model -------------------------------------------------------------------------------------

_TRAINER_SETTINGS: dict[str, object] = {
    "model_type": "bpe",
    "bos_id": 0,
    "eos_id": 1,
    "unk_id": 2,
    "pad_id": -1,
    "normalization_rule_name": "nmt_nfkc",
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": True,
    "byte_fallback": False,
    "character_coverage": 1.0,
    "num_threads": 1,
    "shuffle_input_sentence": False,
    "minloglevel": 2,
}
_TRAINER_SEED = 1234


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cached model should be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_tiny_bpe(
    texts: Iterable[str],
    out_path: str | os.PathLike[str],
    vocab_size: int = TINY_VOCAB_SIZE,
    normalizer: TextNormalizer | None = None,
) -> Path:
    """Train a small BPE SentencePiece model on the *normalized* texts and write it atomically.

    Training on normalized text means markers, stutters and numbers split the way the official front
    end presents them (``'PAUSE'``, ``B-B-BUT``, ``NINETEEN``). Special ids match the official model.
    Single-threaded with a fixed seed, so the same input gives a byte-identical file.
    """
    norm = normalizer if normalizer is not None else default_normalizer()
    sentences = [s for s in (norm.prepare(t) for t in texts) if s.strip()]
    if not sentences:
        raise ValueError("train_tiny_bpe needs at least one non-empty text")
    spm.set_random_generator_seed(_TRAINER_SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size, **_TRAINER_SETTINGS
    )
    out = Path(out_path)
    _write_atomically(out, buf.getvalue())
    return out


TINY_CORPUS: tuple[str, ...] = (
    "[PAUSE] Okay, so where were we?",
    "[LONG] Well, that's a long story.",
    "[UH] I think we should go.",
    "[UM] Maybe tomorrow, maybe not.",
    "[HMM] Let me think about that.",
    "[AH] Now I see what you mean.",
    "[ER] Sorry, what was the question?",
    "Right.[PAUSE]Okay, let's start again.",
    "We waited [LONG][PAUSE] and then nothing happened.",
    "I was like [uh] [um] I don't know.",
    "So [hmm] that could work [ah] maybe.",
    "B-b-but I didn't mean it like that!",
    "I-I-I just wanted to say thank you.",
    "W-w-wait, what did you just say?",
    "Mm-hmm, yeah, I hear you.",
    "No no no no, that's not it.",
    "Yeah, yeah, yeah, I get it.",
    "Like, you know, it's kind of weird.",
    "Uh, well, I mean, sort of.",
    "Um, okay, so basically, here's the thing.",
    "Hmm, I guess that's fair.",
    "Oh! Really? I had no idea.",
    "Ah, there it is.",
    "Wow, that's amazing, honestly.",
    "It was back in 1999.",
    "It costs $5.99 at the store.",
    "Meet me at 3:30 pm.",
    "About 50% of people agree.",
    "She finished 1st and I was 2nd, he came 23rd.",
    "We sold 1,200 copies in 2024.",
    "The score was 3-2 at half time.",
    "Call me at 555-1234 tomorrow.",
    "It weighs 12.5 kg, give or take.",
    "Add 1/2 a cup of sugar.",
    "He was born on 12/25/2023.",
    "That was in the 1990s, I think.",
    "Chapter 7 starts on page 42.",
    "I have 3 dogs and 2 cats.",
    "Dr. Smith lives on Elm St. near Mr. Jones.",
    "Mrs. Brown and Ms. Green met Prof. White.",
    "I'm sure you're right.",
    "It's fine, that's true, what's up?",
    "Who's there? How's it going?",
    "Where's the remote? This's mine.",
    "He's late again, and she's upset.",
    "There's no way we can't fix this.",
    "You'll see, we'd better hurry, they've left.",
    "Wait... what?",
    "So,,, anyway, moving on.",
    'He said "hello" to me.',
    "(laughs) okay, fine.",
    "It's a long - very long - story.",
    "Email me at john.doe@gmail.com please.",
    "Check out GPT-5 and F5-TTS today.",
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "Sphinx of black quartz, judge my vow.",
    "How vexingly quick daft zebras jump!",
    "Jackdaws love my big sphinx of quartz.",
    "I never thought it would end this way.",
    "Can you believe what happened yesterday?",
    "Honestly, I was not expecting that at all.",
    "Let me tell you about my grandmother.",
    "She used to bake bread every Sunday morning.",
    "The kitchen always smelled of cinnamon and butter.",
    "We would sit by the window and watch the rain.",
    "Sometimes the simplest things matter the most.",
    "I remember the first time I saw the ocean.",
    "The water was cold, but I didn't care.",
    "My brother laughed so hard he fell over.",
    "We were young, and everything felt possible.",
    "Anyway, that's enough about me.",
    "What do you think we should do next?",
    "Let's take a break and grab some coffee.",
    "The meeting starts in ten minutes, hurry up.",
    "Please speak slowly and clearly.",
    "Thank you so much for listening.",
    "Good morning, everyone, and welcome back.",
    "Quiet, please; the show is about to begin.",
    "Exactly! That's what I've been saying.",
    "Is it just me, or is it cold in here?",
    "Your voice sounds different today.",
    "The project deadline is next Friday.",
    "Zero, one, two, three, four, five, six, seven, eight, nine.",
    "X-ray, yankee, zulu, quebec, juliet, victor.",
)
"""Varied English lines for the tiny model: markers, stutters, fillers, numbers, contractions."""


def _corpus_key(texts: Sequence[str], vocab_size: int) -> str:
    try:
        tn_version = metadata.version("WeTextProcessing")
    except metadata.PackageNotFoundError:
        tn_version = "unknown"
    payload = {
        "texts": list(texts),
        "vocab_size": vocab_size,
        "settings": _TRAINER_SETTINGS,
        "seed": _TRAINER_SEED,
        "sentencepiece": spm.__version__,
        "wetextprocessing": tn_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def tiny_model_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Cache location of the tiny model for the current corpus, settings and library versions."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root() / "tiny_bpe"
    return root / f"tiny_bpe_{TINY_VOCAB_SIZE}_{_corpus_key(TINY_CORPUS, TINY_VOCAB_SIZE)}.model"


def tiny_tokenizer(cache_dir: str | os.PathLike[str] | None = None) -> TextTokenizer:
    """A 256-piece tokenizer trained once on ``TINY_CORPUS`` and cached (English path only, fast)."""
    path = tiny_model_path(cache_dir)
    if not path.is_file():
        assert not any(uses_chinese_path(t) for t in TINY_CORPUS), "tiny corpus must stay on the English path"
        train_tiny_bpe(TINY_CORPUS, path, TINY_VOCAB_SIZE)
    return TextTokenizer(path)
