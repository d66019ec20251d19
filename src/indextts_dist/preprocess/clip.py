"""One clip from file to training sample: audio -> transcript -> text ids, features -> codes, latents.

Beside the GPT's conditioning latents each clip gets its second-stage CAMPPlus style (when a second
stage is loaded): both are summed into the same conditioning sums, so the speaker's mean style is
computed here, once, and training never re-reads the audio.

Pauses are measured on the audio for every clip (the VAD of the transcriber), whether its text came
from ASR or from a transcript CSV: the codes inside them are what the dataset's pause codes are made
of. The clip's counts for `evaluate` (its plain-text token count; with ASR, the transcript's counts
from `evaluate.audio_measures`) go into its record, and its own conditioning (and style) into its
sample, for per-clip training and for the data's speaker similarity.

Every failure a user's data can cause raises `ClipRejected` with a short reason code and a one-line
message; the caller records it in `rejects.jsonl` and moves on.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..audio import ClipRejected, PreparedClip, prepare_clip
from ..evaluate.audio_measures import transcript_measures
from ..pattern_markers import PAUSE_S, strip_markers
from ..transcribe.transcriber import speech_segments
from .components import Components
from .listing import ListedClip
from .options import ASR_PACK_GROUP, PreprocessOptions

if TYPE_CHECKING:
    from ..transcribe import Transcript

__all__ = [
    "MARKER_RE",
    "ProcessedClip",
    "StageTimer",
    "count_markers",
    "packed_transcripts",
    "process_clip",
    "sample_key",
]

MARKER_RE = re.compile(r"\[(PAUSE|LONG|UH|UM|HMM|AH|ER)\]", re.IGNORECASE)


def count_markers(text: str) -> Counter[str]:
    return Counter(f"[{m.upper()}]" for m in MARKER_RE.findall(text))


def sample_key(listed: ListedClip) -> str:
    """A webdataset key: no dots or slashes (they would split extensions), unique by content hash."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", listed.relative.rsplit(".", 1)[0]).strip("_")[:80]
    return f"{stem or 'clip'}-{(listed.sha256 or '')[:10]}"


def pause_code_counts(
    codes: list[int], speech: list[tuple[float, float]], code_rate: float
) -> dict[str, int]:
    """Which semantic codes the clip's measured pauses (silences of >= PAUSE_S between speech) map to;
    `code_rate` is the codec's codes per second (`CodecConfig.code_rate`: 50 in v2, 25 in 2.5).

    `diagnose` compares generated code streams against these: the share of generated codes that are
    "pause codes" tells whether the adapter learned the speaker's pausing. Empty without speech.
    """
    counts: Counter[str] = Counter()
    for (_, end), (start, _) in pairwise(speech):
        if start - end >= PAUSE_S:
            counts.update(str(c) for c in codes[round(end * code_rate) : round(start * code_rate)])
    return dict(counts)


@dataclass
class StageTimer:
    """Wall seconds spent per stage (decode, asr, text, features, codec, conditioning, style)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class ProcessedClip:
    key: str
    text_ids: np.ndarray
    codes: np.ndarray
    meta: dict
    spk_latents: torch.Tensor
    emo_vec: torch.Tensor
    style: torch.Tensor | None = None
    """The clip's CAMPPlus style [S] (float64), None without a second stage."""

    def arrays(self) -> dict[str, np.ndarray]:
        """The clip's own conditioning (and style) as the sample's float32 arrays."""
        out = {"cond_latents": self.spk_latents.float().numpy(), "emo_vec": self.emo_vec.float().numpy()}
        if self.style is not None:
            out["style"] = self.style.float().numpy()
        return out


def _decode(listed: ListedClip, opts: PreprocessOptions, timer: StageTimer) -> PreparedClip:
    if listed.reject is not None:
        raise ClipRejected(listed.relative, *listed.reject)
    with timer.stage("decode"):
        return prepare_clip(listed.path, min_seconds=opts.min_seconds, max_seconds=opts.max_seconds)


def packed_transcripts(
    asr_clips: list[ListedClip], comps: Components, opts: PreprocessOptions, timer: StageTimer
) -> dict[int, tuple[PreparedClip, Transcript]]:
    """``--asr-pack``: a block's clips without a ``--transcripts`` text, transcribed in packing groups
    (``ASR_PACK_GROUP`` consecutive listing indices, which the deal keeps on one rank), keyed by
    listing index. A clip that fails to decode is left out: ``process_clip`` then rejects it."""
    groups: dict[int, list[tuple[ListedClip, PreparedClip]]] = {}
    for listed in asr_clips:
        try:
            groups.setdefault(listed.index // ASR_PACK_GROUP, []).append(
                (listed, _decode(listed, opts, timer))
            )
        except ClipRejected:
            continue
    out: dict[int, tuple[PreparedClip, Transcript]] = {}
    transcriber = comps.transcriber_for(opts.language)
    for members in groups.values():
        with timer.stage("asr"):
            transcripts = transcriber.transcribe_many([c.samples for _, c in members], pack=True)
        for (listed, clip), transcript in zip(members, transcripts, strict=True):
            out[listed.index] = (clip, transcript)
    return out


def _speaker_rows(
    comps: Components, feats: torch.Tensor, lengths: torch.Tensor, style: torch.Tensor | None
) -> torch.Tensor:
    """The clip's GPT speaker rows: v2's 32 perceiver latents of its features, or 2.5's one
    `spk_emb_proj` row of its CAMPPlus style (16 kHz Kaldi fbank, mean-subtracted: SPEC_2_5 §3.1;
    the second stage's CAMPPlus, which 2.5 shares with S2Mel)."""
    gpt = comps.gpt
    if not gpt.cfg.is_v25:
        return gpt.get_conditioning(feats[None], lengths)[0]
    if style is None:  # load_components refuses a 2.5 preset without CAMPPlus; never reached
        raise RuntimeError("a 2.5 clip needs its CAMPPlus style")
    weight = gpt.spk_emb_proj.weight
    return gpt.project_style(style.to(weight.device, weight.dtype)[None])[0]


@torch.no_grad()
def process_clip(
    listed: ListedClip,
    comps: Components,
    opts: PreprocessOptions,
    override: str | None,
    timer: StageTimer | None = None,
    transcribed: tuple[PreparedClip, Transcript] | None = None,
) -> ProcessedClip:
    """``transcribed``: the clip already decoded and transcribed (``packed_transcripts``)."""
    timer = timer or StageTimer()
    clip = transcribed[0] if transcribed is not None else _decode(listed, opts, timer)
    audio_counts = None
    if override is None:
        if transcribed is not None:
            transcript = transcribed[1]
        else:
            with timer.stage("asr"):
                transcript = comps.transcriber_for(opts.language).transcribe(clip.samples)
        raw_text, speech = transcript.text, transcript.speech
        audio_counts = transcript_measures(transcript)
    else:
        raw_text = override
        with timer.stage("vad"):  # the pauses are in the audio whoever wrote the text
            speech = speech_segments(clip.samples)
    text = " ".join(raw_text.split())
    if not text:
        raise ClipRejected(listed.relative, "empty_transcript", "the transcript is empty (no speech found)")
    ids = comps.tokenizer.encode(text)
    if not ids:
        raise ClipRejected(listed.relative, "empty_transcript", "the transcript has no tokens")
    unk_share = comps.tokenizer.unk_share(ids)
    if unk_share > opts.max_unk_share:
        raise ClipRejected(
            listed.relative, "unknown_tokens", f"{unk_share:.0%} of the transcript's pieces are <unk>"
        )
    cfg = comps.gpt.cfg
    if len(ids) > cfg.max_text_tokens:
        raise ClipRejected(
            listed.relative,
            "text_too_long",
            f"{len(ids)} text tokens exceed the model's {cfg.max_text_tokens}",
        )
    device = next(comps.gpt.parameters()).device
    with timer.stage("features"):
        feats = comps.features(clip.samples).to(device)
    with timer.stage("codec"):
        codes = comps.codec.quantize(feats[None])[0][0]
    style = None
    if comps.second_stage is not None:
        with timer.stage("style"):  # the second stage reads the file its own way (22.05 kHz, 15 s cut)
            style = comps.second_stage.clip_style(listed.path).double().cpu()
    with timer.stage("conditioning"):
        lengths = torch.tensor([feats.size(0)], device=device)
        spk = _speaker_rows(comps, feats, lengths, style)
        emo = comps.gpt.get_emo_vec(feats[None], lengths)[0]
    meta = {
        "id": sample_key(listed),
        "source": listed.relative,
        "sha256": listed.sha256,
        "duration_s": round(clip.duration_s, 4),
        "text": text,
        "text_normalized": comps.tokenizer.prepare(text),
        "text_len": len(ids),
        "code_len": int(codes.numel()),
        "transcript_source": "csv" if override is not None else "asr",
        "unk_share": round(unk_share, 4),
        "markers": dict(count_markers(text)),
        "pause_codes": pause_code_counts(codes.tolist(), speech, comps.codec.cfg.code_rate),
        "plain_text_len": len(comps.tokenizer.encode(strip_markers(text))),
    }
    if audio_counts is not None:
        meta["audio_measures"] = audio_counts
    return ProcessedClip(
        meta["id"],
        np.asarray(ids, dtype=np.int32),
        codes.cpu().numpy().astype(np.int32),
        meta,
        spk.double().cpu(),
        emo.double().cpu(),
        style,
    )
