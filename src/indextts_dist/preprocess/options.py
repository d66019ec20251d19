"""Settings of one preprocess run (what `preprocess/run.py` and `indextts-dist preprocess` parse)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputError

__all__ = ["ASR_PACK_GROUP", "PreprocessOptions"]

ASR_PACK_GROUP = 8
"""Clips (consecutive in the listing) transcribed together with `--asr-pack`: several 28 s windows'
worth for typical 3-6 s clips, few enough that a group's audio is decoded in one batch."""


# duplicates: field declarations look alike across the config dataclasses (typed fields with
# docstrings); each holds its own model's settings, so there is no logic to share.
@dataclass(frozen=True)
class PreprocessOptions:
    audio_dir: Path
    """Folder of clips (wav/flac/mp3/ogg/m4a, searched recursively)."""
    out: Path
    """Output folder: shards, rejects.jsonl, dataset_info.json, global_conditioning.safetensors."""
    transcripts: Path | None = None
    """CSV `file,text` whose rows override ASR for those files."""
    preset: Literal["tiny", "mini", "official-v2", "tiny-v2.5", "official-v2.5"] = "tiny"
    """`tiny` (random weights, tests/demo), `mini` (the size that learns on CPUs; trained here on
    synthetic speech, not IndexTTS2 quality), `official-v2` (real weights from `--weights-dir`), or
    the IndexTTS-2.5 ones: `tiny-v2.5` (random weights; `--weights-dir` holds the tiktoken file)
    and `official-v2.5`."""
    weights_dir: Path | None = None
    """Official weights folder (see README): gpt.pth, bpe.model, wav2vec2bert_stats.pt, w2v-bert-2.0/,
    semantic_codec/model.safetensors (2.5: codec.pth and the tiktoken file instead of the last
    and bpe.model; `tiny-v2.5` reads only the tiktoken file from it). For `mini`: a folder with a
    pretrained mini base as `gpt.pth`
    (its conditioning encoders compute the conditioning; default: the seeded random base)."""
    whisper_model: str | None = None
    """faster-whisper model name (`large-v3`, `small.en`, ...) or a local CTranslate2 folder; default:
    the bundled tiny.en (English only, small: real data wants a larger model)."""
    language: str | None = None
    """Language of the clips for ASR (a Whisper code: `en`, `zh`, `de`, ...); default: what the
    Whisper model implies (`en` for an English-only `*.en` model, detected per clip otherwise).
    The 2.5 presets also take from it the `<|lang|>` token and language row (default `en`)."""
    asr_pack: bool = False
    """Transcribe short clips packed together (up to 28 s of audio per Whisper window, windows decoded
    in batches): 2.6-5x faster ASR on CPU, but fewer fillers and repetitions kept (see
    benchmarks/markers.py). Clips are then dealt to ranks in runs of `ASR_PACK_GROUP`."""
    min_seconds: float = 1.0
    """Shortest clip kept (after trimming silence at the ends)."""
    max_seconds: float = 15.0
    """Longest clip kept (IndexTTS2 prompts are cut at 15 s)."""
    max_unk_share: float = 0.5
    """Reject a clip when more than this share of its text pieces are `<unk>`."""
    clips_per_shard: int = 64
    """Clips (accepted or not) handled per shard: the unit of resumption after a crash."""
    val_fraction: float = 0.1
    """Share of accepted clips held out for validation loss (at least one when there are two or more)."""
    seed: int = 0
    """Seed of the tiny preset's random weights and of the validation split."""

    @property
    def deal_group(self) -> int:
        """Consecutive clips that go to the same rank: a packing group with `asr_pack`, else 1."""
        return ASR_PACK_GROUP if self.asr_pack else 1

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds < self.max_seconds:
            raise InputError(
                f"need 0 < min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.clips_per_shard < 1:
            raise InputError("clips_per_shard must be >= 1")
        if self.asr_pack and self.clips_per_shard % ASR_PACK_GROUP:
            raise InputError(
                f"--asr-pack needs clips_per_shard to be a multiple of {ASR_PACK_GROUP} (its packing "
                f"group), got {self.clips_per_shard}"
            )
        if not 0 <= self.val_fraction < 1:
            raise InputError("val_fraction must be in [0, 1)")
        if self.preset in ("official-v2", "tiny-v2.5", "official-v2.5") and self.weights_dir is None:
            raise InputError(f"preset {self.preset!r} needs --weights-dir")
